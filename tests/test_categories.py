"""Category decisions: field through aliases, the file's own classifier, source propagation, rules."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from phase1b_kedro.categories import METHODS, CategoryClassifier, InferenceSettings, classifier_text, resolve
from phase1b_kedro.params import ParameterError
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


# ---------------------------------------------------------------- the file's own classifier, sources


def _codes(*cats):
    from phase1b_kedro.records import CATEGORIES

    return np.array([CATEGORIES.index(c) if c else -1 for c in cats], dtype=np.int8)


def test_order_of_trust_field_classifier_source_rules():
    s = InferenceSettings(source_min_records=2, source_min_share=0.6)
    field = _codes("qa", "qa", None, None, None, None)
    clf_cat = _codes(None, None, "math", "code", None, None)
    clf_conf = np.array([0, 0, 0.9, 0.3, 0, 0], dtype=np.float32)   # record 3: not confident
    rule_cat = _codes("other", "other", "other", "reasoning", "reasoning", "creative")
    rule_hit = np.array([0, 0, 0, 1, 1, 1], dtype=bool)
    source = np.array([0, 0, 0, 0, 0, -1])
    cat, method = resolve(field, clf_cat, clf_conf, rule_cat, rule_hit, source, s)
    assert [METHODS[m] for m in method] == ["field", "field", "classifier", "source", "source", "rules"]
    # the confident classifier is the record's own text saying otherwise; the others share the source's
    assert list(cat) == list(_codes("qa", "qa", "math", "qa", "qa", "creative"))


def test_source_without_a_clear_majority_leaves_records_to_their_rules():
    s = InferenceSettings(source_min_records=2, source_min_share=0.6)
    field = _codes("qa", "math", None)
    none = np.zeros(3, dtype=np.float32)
    cat, method = resolve(field, _codes(None, None, None), none, _codes("qa", "math", "code"),
                          np.array([1, 1, 1], dtype=bool), np.array([0, 0, 0]), s)
    assert METHODS[method[2]] == "rules" and cat[2] == _codes("code")[0]


def test_rules_majority_propagates_in_a_source_with_no_labels():
    s = InferenceSettings(source_min_records=3, source_min_share=0.6)
    n = 5
    cat, method = resolve(np.full(n, -1, dtype=np.int8), np.full(n, -1, dtype=np.int8), np.zeros(n, np.float32),
                          _codes("math", "math", "math", "qa", "other"), np.array([1, 1, 1, 1, 0], dtype=bool),
                          np.zeros(n, dtype=int), s)
    assert {METHODS[m] for m in method} == {"source"} and set(cat) == {_codes("math")[0]}


@pytest.mark.parametrize(("layout", "rules"), [("records", False), ("records", True), ("mixed", True),
                                               ("sources", True)])
def test_inferred_categories_on_files_that_mix_sources(project_root, layout, rules):
    """A third of the records carry a category (scripts/category_accuracy.py builds the files)."""
    sys.path.insert(0, str(project_root / "scripts"))
    from category_accuracy import measure

    result = measure(layout, rules)
    assert 0.28 <= result["labelled_share"] <= 0.4
    assert result["accuracy"] >= 0.9, result


def test_unfamiliar_unlabelled_sources_are_not_given_to_a_classifier_that_does_not_generalise(project_root):
    """With the rules off (nothing knows these sources), the held-out-source estimate says the
    classifier fails on unseen sources, so it is not used there: the limit of what a file's own
    labels can do, reported in test_dataset_stats rather than hidden."""
    sys.path.insert(0, str(project_root / "scripts"))
    from category_accuracy import measure

    result = measure("mixed", rules=False)
    assert result["classifier_estimate_held_out_sources"] < 0.5
    assert result["by_method"]["classifier"][0] == result["by_method"]["classifier"][1] > 900  # all right
    assert result["unlabelled_sources_accuracy"] < 0.5


@pytest.mark.parametrize("text", ["Solve 2x+3=7, then print(x_1)!", "naïve café ÉTÉ x²", "straße STRASSE", "\u212a kelvin",
                                  "İstanbul", "tabs\tand\nnew\x00lines\x7f", "emoji😀mid_word", "", "___", "中文abc中文"])
def test_fast_word_split_equals_the_regex(text):
    from phase1b_kedro.categories import _WORD, _words

    assert _words(text.lower()) == _WORD.findall(text.lower())


def test_a_single_string_rule_is_one_rule_not_its_characters():
    clf = CategoryClassifier({"creative": {"keywords": "poem", "phrases": "write a "}})
    assert clf.infer("Let m be a variable and e a constant").category == "other"
    assert clf.infer("A poem about rain").rules == ("poem",)
    assert clf.infer("Please write a song").rules == ("write a ",)


@pytest.mark.parametrize(("rules", "aliases", "message"), [
    ({"math": {"keywords": 5}}, None, r"sampling\.category_rules\.math\.keywords must be a list"),
    ({"math": {"keywords": ["sum", ""]}}, None, r"sampling\.category_rules\.math\.keywords must be a list"),
    ({"math": "sum"}, None, r"sampling\.category_rules\.math must be a mapping"),
    ("math", None, r"sampling\.category_rules must be a mapping"),
    ({}, "code", r"sampling\.category_aliases must be a mapping"),
])
def test_rule_and_alias_parameters_of_the_wrong_shape_are_named(rules, aliases, message):
    with pytest.raises(ParameterError, match=message):
        CategoryClassifier(rules, aliases)


def test_tool_definitions_are_not_read_as_the_task(sampling_params, classifier):
    cfg = FieldConfig.from_params(sampling_params)
    rec = normalise({"messages": [{"role": "user", "content": "What's the weather in Paris?"},
                                  {"role": "assistant", "content": "Sunny."}],
                     "tools": [{"type": "function", "function": {"name": "get_weather", "description": "python code"}}]},
                    cfg)
    system, prompt = classifier_text(rec.messages, rec.prompt)
    assert "<tools>" in rec.messages[0]["content"] and system == ""
    assert classifier.rules(system, prompt).category != "code"


@pytest.mark.parametrize(("field", "category"), [
    ("creative writing", "creative"), ("Creative-Writing", "creative"), ("open-qa", "qa"), ("general_qa", "qa"),
    ("brainstorming", "creative"), ("  MATH ", "math"), ("biology", None),
])
def test_category_field_spellings_map_through_the_aliases(classifier, field, category):
    assert classifier.field_category(field) == category
