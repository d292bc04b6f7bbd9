"""Each verifiable rule: numbers, fractions, choices, acceptable lists, yes/no, true/false."""

from __future__ import annotations

import pytest

from phase1b_kedro.judging.text import final_answer, find_numbers, normalise_answer, parse_number, rouge_l, token_f1
from phase1b_kedro.judging.verifiable import check

MC = "Which one?\nA. Specific tone\nB. Elapsed time\nC. Amplitude\nD. A two-tone signal\n"


def verdict(output: str, reference: str, prompt: str = "q", acceptable: list[str] | None = None):
    return check({"output": output, "reference": reference, "prompt": prompt,
                  "meta": {"acceptable": acceptable} if acceptable else {}})


@pytest.mark.parametrize(("output", "reference", "score"), [
    ("The answer is 7,473.", "7473", 10),              # thousands separator
    ("so we get 7470", "7473", 0),                      # last number, wrong
    ("It is \\frac{10000}{3} m^3", "10000/3", 10),      # LaTeX fraction vs plain fraction
    ("3333.3333333", "10000/3", 10),                    # decimal of a fraction, within tolerance
    ("-992", "-992.00", 10),                            # decimals written out
    ("About $1,200.50 in total", "1200.5", 10),         # currency stripped
    ("Final answer: 45%", "45", 10),                    # percent
    ("12 cm", "12", 10),                                # unit stripped
    ("First 3, then 4. #### 12", "12", 10),             # GSM8K marker beats the last number
    ("The answer is 5. Check: 5 + 7 = 12", "5", 10),    # stated answer beats the last number
    ("I do not know", "42", 0),                         # no number at all: a confident fail
])
def test_numbers(output, reference, score):
    v = verdict(output, reference)
    assert v is not None and v.rule == "number" and v.score == score, v


@pytest.mark.parametrize(("output", "reference", "prompt", "score"), [
    ("B", "A", MC, 0),
    ("The answer is (A) Specific tone", "A", MC, 10),
    ("I pick Elapsed time.", "B", MC, 10),                                   # option text
    ("the correct answer is \\textbf{(B)}", "the correct answer is (B)", "(A) one\n(B) two\n(C) three", 10),
    ("c) Polymerase chain reaction", "c) Polymerase chain reaction", "a) EIA\nb) Culture\nc) Polymerase chain reaction", 10),
    ("d) Mean - Mode/ SD", "b) Mean - Mode/ SD", "a) x\nb) Mean - Mode/ SD\nc) y\nd) Mean - Mode/ SD", 0),
    ("A", "The final answer is: B", "Options: A) greed B) patience C) luck", 0),  # inline options
])
def test_choice_letters(output, reference, prompt, score):
    v = verdict(output, reference, prompt)
    assert v is not None and v.rule == "choice" and v.score == score, v


def test_choice_without_a_single_letter_defers():
    assert verdict("Could be A or maybe (B) or (C)", "A", MC) is None or verdict("Could be (A) or (B)", "A", MC) is None


@pytest.mark.parametrize(("output", "reference", "score"), [
    ("Yes.", "Yes.", 10),
    ("No, it will not match.", "Yes.", 0),
    ("The statement is true.", "true", 10),
    ("False", "true", 0),
    ("Answer: no", "No", 10),
])
def test_yes_no_true_false(output, reference, score):
    v = verdict(output, reference)
    assert v is not None and v.rule == "boolean" and v.score == score, v


def test_yes_and_no_together_defers():
    assert verdict("Yes or no, hard to say", "Yes") is None


def test_acceptable_answers_any_matches():
    assert verdict("Paris, France", "Paris", acceptable=["Paris, France"]).score == 10
    assert verdict("12", "twelve", acceptable=["twelve", "12"]).score == 10


def test_short_text_exact_and_labels():
    assert verdict("The Information.", "information").score == 10           # case, article, punctuation
    assert verdict("Warning", "Information").score == 0                     # two labels differ
    assert verdict("This log line reports that a disk is about to fail", "Information") is None  # defer
    assert verdict("It is not Information", "Information") is None          # negation never passes


def test_symbolic_answers_keep_their_symbols():
    assert verdict("5 4 * * *", "5 4 * * *").score == 10
    assert verdict("5 4 * *", "5 4 * * *") is None


def test_long_references_defer():
    assert verdict("def add(x, y): return x - y", "    return x + y\n") is None


def test_text_helpers():
    assert normalise_answer("  The  Cat, sat! ") == "cat sat"
    assert [float(x) for x in find_numbers("1,234.5 and 3/4 and -2")] == [1234.5, 0.75, -2.0]
    assert parse_number("$1,000") == 1000 and parse_number("12 apples and pears") is None
    assert final_answer("blah \\boxed{42} more") == "42"
    assert final_answer("no commitment here") is None
    assert token_f1("the cat sat", "cat sat down") == pytest.approx(0.8)
    assert rouge_l("w x y z", "w y z") == pytest.approx(2 * (3 / 4) * 1 / (3 / 4 + 1))
