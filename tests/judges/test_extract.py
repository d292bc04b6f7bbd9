"""One extraction step for outputs and references: reasoning removed, last marker, unwrapped."""

from __future__ import annotations

import pytest

from phase1b_kedro.judges.extract import committed_answer, repair_escapes, strip_reasoning, unwrap


@pytest.mark.parametrize(("text", "answer"), [
    ("blah \\boxed{42} more", "42"),
    ("\\boxed{\\frac{1}{2}} then the answer is 3", "3"),           # the last marker by position wins
    ("The answer is 3. Later: \\boxed{4}", "4"),
    ("#### 3,000", "3,000"),
    ("<answer> 12 </answer>", "12"),
    ("Final answer: **B**", "B"),
    ("ANSWER: $A$", "A"),
    ("The correct option is (C).", "(C)"),
    ("the answer is $9{,}500.", "$9{,}500"),
    ("The answer is 3.5.", "3.5"),
    ("so the result is [O(n^2)]", "O(n^2)"),
    ("\\boxed{\\text{13}}", "13"),
    ("the answer is \\(x^2\\)", "x^2"),
    ("The answer is `foo`", "foo"),
])
def test_committed_answer(text, answer):
    found = committed_answer(text)
    assert found is not None and found.text == answer, found


def test_no_marker_means_no_committed_answer():
    assert committed_answer("no commitment here") is None
    assert committed_answer("profit is $3,000.") is None


@pytest.mark.parametrize(("text", "kept"), [
    ("<think>a</think>b", "b"), ("<thinking>a</thinking>b", "b"), ("<reasoning>a</reasoning>b", "b"),
    ("<|begin_of_thought|>a<|end_of_thought|>b", "b"), ("[THINK]a[/THINK]b", "b"),
    ("a</think>b", "b"),                      # the template opened the block in the prompt
    ("<think>a", None), ("  <think>a", None), ("x<think>a</think><think>z", None),  # left open: nothing committed
    ("x<think>a</think>y<think>z", "y"),      # what came before a stray opening tag still counts
    ("The answer is 7. I used <think> tags before.", "The answer is 7. I used "),
])
def test_strip_reasoning(text, kept):
    assert strip_reasoning(text) == kept


def test_unwrap_and_repair():
    assert unwrap("$$\\text{\\textbf{42}}$$.") == "42"
    assert unwrap("**(B)**") == "(B)"
    assert repair_escapes("the correct answer is $\x08oxed{\textbf{(D)}") == "the correct answer is $\\boxed{\\textbf{(D)}"
    assert committed_answer("the correct answer is $\x08oxed{\textbf{(D)}").text == "(D)"  # a corrupted, unclosed box
