"""Category decisions: field through aliases, the file's own classifier, source propagation, rules."""

from __future__ import annotations

import json
import sys

import pytest

from phase1b_kedro.categories import CategoryClassifier
from phase1b_kedro.records import FieldConfig, normalise


@pytest.fixture
def classifier(sampling_params) -> CategoryClassifier:
    return CategoryClassifier(sampling_params["category_rules"], sampling_params["category_aliases"])


@pytest.mark.parametrize(("field", "expected"), [("coding", "code"), ("Math", "math"), (" creative_writing ", "creative"),
                                                 ("qa", "qa"), ("logic", "reasoning")])
def test_field_categories_map_through_aliases(classifier, field, expected):
    decision = classifier.decide(field, [], "irrelevant text")
    assert (decision.category, decision.method) == (expected, "field")


def test_unknown_field_value_falls_back_to_inference(classifier):
    decision = classifier.decide("astrology", [], "Write a haiku about the moon.")
    assert (decision.category, decision.method) == ("creative", "rules")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Calculate the determinant of the matrix [[1, 2], [3, 4]].", "math"),
        ("def add(a, b):\n    \"\"\"Add two numbers.\"\"\"", "code"),
        ("Write a SQL query: SELECT name FROM users", "code"),
        ("Read the passage and deduce whether the conclusion follows. Answer true or false.", "reasoning"),
        ("Write a poem about the sea.", "creative"),
        ("Which of the following is a multiple choice question about anatomy?", "qa"),
        ("Is the following string a food item? apple", "other"),
        ("Hello there", "other"),
    ],
)
def test_rules_infer_categories(classifier, text, expected):
    decision = classifier.infer(text)
    assert decision.category == expected
    assert decision.method == "rules"
    assert bool(decision.rules) == (text != "Hello there")


def test_ties_go_to_the_category_listed_first():
    clf = CategoryClassifier({"math": {"keywords": ["sum"]}, "code": {"phrases": ["sum "]}})
    assert clf.infer("sum it").category == "math"
    clf = CategoryClassifier({"code": {"patterns": [r"\bsum\b"]}, "math": {"keywords": ["sum"]}})
    assert clf.infer("sum it").category == "code"
    assert clf.infer("summary").category == "other"  # keywords are whole words


def test_system_turn_counts_and_decision_lists_rules(classifier):
    messages = [{"role": "system", "content": "You are MathGPT. Calculate precisely."},
                {"role": "user", "content": "[[1, 2], [3, 4]]"}]
    decision = classifier.decide(None, messages, "[[1, 2], [3, 4]]")
    assert decision.category == "math"
    assert set(decision.rules) >= {"mathgpt", "calculate"}


def test_bad_configuration_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown categories"):
        CategoryClassifier({"poetry": {"keywords": ["x"]}})
    with pytest.raises(ValueError, match="not a valid regex"):
        CategoryClassifier({"math": {"patterns": ["("]}})
    with pytest.raises(ValueError, match="unknown keys"):
        CategoryClassifier({"math": {"regexes": ["x"]}})
    with pytest.raises(ValueError, match="aliases"):
        CategoryClassifier({}, {"x": "nonsense"})


def test_classifier_agrees_with_source_datasets_on_bundled_file(classifier, project_root):
    """On the bundled file, inferred categories match each source dataset's known category."""
    sys.path.insert(0, str(project_root / "scripts"))
    from build_bundled_dataset import EXPECTED_CATEGORY

    agree = total = 0
    for line in (project_root / "data" / "01_raw" / "prompts.jsonl").open(encoding="utf-8"):
        obj = json.loads(line)
        rec = normalise(obj, FieldConfig())
        if rec.source_category is not None:
            continue
        total += 1
        agree += classifier.decide(None, rec.messages, rec.prompt).category == EXPECTED_CATEGORY[obj["source"]]
    assert total > 2000
    # 0.9: the rules are keyword-based; the misses are passages whose wording overlaps
    # another category (numbers in event logs, "which" questions about morals).
    assert agree / total >= 0.9, agree / total
