"""Deterministic checks where the reference allows them; ``None`` when not confident.

The kind of check follows from the reference (and the prompt, for multiple choice):

==========  ===================================================================  ===========
rule        applies when                                                          on mismatch
==========  ===================================================================  ===========
choice      reference names an option letter (``B``, ``(B)``, ``c) text``,        fail
            "the correct answer is (B)") and the prompt lists lettered options
boolean     reference is yes/no or true/false                                     fail
number      every acceptable answer is a number (units, ``$``, ``%`` allowed)     fail
short_text  reference of at most ``short_answer_words`` words                    fail only if the
                                                                                  output is a short
                                                                                  label too; else defer
==========  ===================================================================  ===========

The model's answer is what it commits to (``\\boxed{}``, "the answer is X", ``Answer: X``,
``#### X``, a final ``[X]``) and otherwise, for numbers, the last number it wrote. Every
acceptable answer (``meta.acceptable``) is tried. A pass scores 10, a fail 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from phase1b_kedro.judging.text import final_answer, find_numbers, normalise_answer, numbers_equal, parse_number
from phase1b_kedro.judging.verdict import Verdict

_LETTER_ONLY = re.compile(r"^\s*[\(\[]?([A-Ea-e])[\)\]]?[.):]?\s*$")
_LETTER_WITH_TEXT = re.compile(r"^\s*[\(\[]?([A-Ea-e])[\)\].:]\s+\S")
_ANSWER_LETTER = re.compile(
    r"answer\s*(?:is|:)\s*:?\s*(?:\$?\\boxed\{)?(?:\\textbf\{)?[\(\[]?([A-Ea-e])\b[\)\]]?", re.IGNORECASE)
_OPTION_LINE = re.compile(r"(?m)^\s*[\(\[]?([A-Ea-e])[\)\].:]\s*(?:[A-Ea-e][.)]\s*)?(.+?)\s*$")
_LEADING_LETTER = re.compile(r"^\s*(?:option\s+)?[\(\[]?(?:([A-E])(?:[\)\].:]|\s|$)|([a-e])[\)\].:])")
_INLINE_OPTION = re.compile(r"(?<!\w)\(?([A-E])\)\s+\S")
_PAREN_LETTER = re.compile(r"[\(\[]([A-E])[\)\]]")
_SYMBOLS = re.compile(r"[*/+=<>^%$#@|\\{}\[\]()~`]|(?<=\S)-(?=\S)")
_NEGATION = re.compile(r"\b(not|no|never|neither|nor|isn|aren|wasn|doesn|don|cannot)\b")
_BOOLEANS = {"yes": "yes", "no": "no", "true": "true", "false": "false", "correct": "true", "incorrect": "false"}
_BOOL_PAIRS = {"yes": ("yes", "no"), "no": ("yes", "no"), "true": ("true", "false"), "false": ("true", "false")}


@dataclass(frozen=True)
class VerifiableConfig:
    """Knobs of the verifiable checks."""

    short_answer_words: int = 6
    short_output_words: int = 12
    label_words: int = 3
    rel_tol: float = 1e-6

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> VerifiableConfig:
        """Build from ``judging.verifiable`` (missing keys keep defaults)."""
        params = params or {}
        return cls(**{k: params[k] for k in ("short_answer_words", "short_output_words", "label_words", "rel_tol")
                      if params.get(k) is not None})


def acceptable_answers(record: Mapping[str, Any]) -> list[str]:
    """The reference and every other acceptable answer, without repeats."""
    answers = [record.get("reference") or ""]
    extra = (record.get("meta") or {}).get("acceptable") or []
    answers += [a for a in extra if isinstance(a, str)]
    seen: dict[str, None] = {}
    for a in answers:
        if a.strip():
            seen.setdefault(a.strip(), None)
    return list(seen)


def _options(prompt: str) -> dict[str, str]:
    """Lettered options listed in the prompt (``A. text``, ``(b) text``, ``c) text``)."""
    found: dict[str, str] = {}
    for letter, text in _OPTION_LINE.findall(prompt):
        found.setdefault(letter.upper(), normalise_answer(text))
    if len(found) < 2:  # options written inline: "A) ... B) ... C) ..."
        found = {letter: "" for letter in _INLINE_OPTION.findall(prompt)}
    return found if len(found) >= 2 else {}


def _reference_letter(answer: str, options: Mapping[str, str]) -> str | None:
    for pattern in (_LETTER_ONLY, _ANSWER_LETTER, _LETTER_WITH_TEXT):
        match = pattern.search(answer) if pattern is _ANSWER_LETTER else pattern.match(answer)
        if match and match.group(1).upper() in options:
            return match.group(1).upper()
    return None


def _output_letter(output: str, options: Mapping[str, str]) -> tuple[str | None, str]:
    committed = final_answer(output)
    if committed:
        match = _LETTER_ONLY.match(committed) or _LETTER_WITH_TEXT.match(committed)
        if match:
            return match.group(1).upper(), "stated answer"
    match = _ANSWER_LETTER.search(output)
    if match:
        return match.group(1).upper(), "stated answer"
    match = _LEADING_LETTER.match(output)
    if match and (match.group(1) or match.group(2).upper()) in options:
        return match.group(1) or match.group(2).upper(), "leading letter"
    letters = set(_PAREN_LETTER.findall(output)) & set(options)
    if len(letters) == 1:
        return letters.pop(), "only letter cited"
    said = normalise_answer(output)
    texts = [k for k, v in options.items() if len(v) >= 3 and re.search(rf"\b{re.escape(v)}\b", said)]
    if len(texts) == 1:
        return texts[0], "option text"
    return None, "no single option letter"


def _check_choice(output: str, answers: Sequence[str], prompt: str) -> Verdict | None:
    options = _options(prompt)
    if not options:
        return None
    expected = {letter for a in answers if (letter := _reference_letter(a, options))}
    if not expected:
        return None
    got, how = _output_letter(output, options)
    if got is None:
        return None  # the output names no single option: let the fallback decide
    ok = got in expected
    return Verdict(10.0 if ok else 0.0, "verifiable", rule="choice",
                   rationale=f"expected option {'/'.join(sorted(expected))}, answer {got} ({how})")


def _check_boolean(output: str, answers: Sequence[str]) -> Verdict | None:
    expected = {_BOOLEANS[n] for a in answers if (n := normalise_answer(a)) in _BOOLEANS}
    if not expected or len(expected) != len(answers):
        return None
    pair = _BOOL_PAIRS[next(iter(expected))]
    committed = final_answer(output)
    words = normalise_answer(committed if committed else output).split()
    present = {_BOOLEANS[w] for w in normalise_answer(output).split() if _BOOLEANS.get(w) in pair}
    got = _BOOLEANS.get(words[0]) if words else None
    if got not in pair or (not committed and len(present) > 1):
        got = present.pop() if len(present) == 1 else None  # "yes or no" commits to neither
    if got is None:
        return None
    ok = got in expected
    return Verdict(10.0 if ok else 0.0, "verifiable", rule="boolean",
                   rationale=f"expected {'/'.join(sorted(expected))}, answer {got}")


def _check_number(output: str, answers: Sequence[str], config: VerifiableConfig) -> Verdict | None:
    expected = [parse_number(a) for a in answers]
    if any(v is None for v in expected):
        return None
    committed = final_answer(output)
    candidates = find_numbers(committed) if committed else []
    got: Fraction | None = candidates[0] if candidates else None
    how = "stated answer"
    if got is None:
        found = find_numbers(output)
        got, how = (found[-1], "last number") if found else (None, "no number")
    shown = ", ".join(_show(v) for v in expected if v is not None)
    if got is None:
        return Verdict(0.0, "verifiable", rule="number", rationale=f"expected {shown}; the output has no number")
    ok = any(numbers_equal(got, v, config.rel_tol) for v in expected if v is not None)
    return Verdict(10.0 if ok else 0.0, "verifiable", rule="number",
                   rationale=f"expected {shown}, answer {_show(got)} ({how})")


def _symbolic(text: str) -> bool:
    """Answers like ``5 4 * * *`` or ``x^2+1``, where punctuation carries the meaning."""
    return bool(_SYMBOLS.search(text.strip().rstrip(".")))


def _squash(text: str) -> str:
    return " ".join(text.strip().rstrip(".").split())


def _check_short_text(output: str, answers: Sequence[str], config: VerifiableConfig) -> Verdict | None:
    if any(_symbolic(a) for a in answers):
        squashed = {_squash(a) for a in answers}
        committed = final_answer(output)
        if _squash(output) in squashed or (committed and _squash(committed) in squashed):
            return Verdict(10.0, "verifiable", rule="short_text", rationale="exact match (symbols kept)")
        return None  # symbolic answers can be written many ways: let the fallback decide
    normalised = [n for a in answers if (n := normalise_answer(a))]
    if not normalised or max(len(n.split()) for n in normalised) > config.short_answer_words:
        return None
    said = normalise_answer(output)
    committed = final_answer(output)
    candidates = [said] + ([normalise_answer(committed)] if committed else [])
    for cand in candidates:
        if cand in normalised:
            return Verdict(10.0, "verifiable", rule="short_text", rationale=f"exact match: {cand!r}")
    n_words = len(said.split())
    if n_words <= config.short_output_words and not _NEGATION.search(said):
        hits = [n for n in normalised if re.search(rf"\b{re.escape(n)}\b", said)]
        if hits:
            return Verdict(10.0, "verifiable", rule="short_text", rationale=f"short answer contains {hits[0]!r}")
    if n_words <= config.label_words and max(len(n.split()) for n in normalised) <= config.label_words:
        return Verdict(0.0, "verifiable", rule="short_text",
                       rationale=f"label {said!r} differs from {' / '.join(map(repr, normalised))}")
    return None


def check(record: Mapping[str, Any], config: VerifiableConfig | None = None) -> Verdict | None:
    """A confident verdict for one output record, or ``None`` to defer to another judge.

    Args:
        record: A model output record (``output``, ``reference``, ``prompt``, ``meta``).
        config: Thresholds; defaults when ``None``.

    Returns:
        A :class:`Verdict` with ``source='verifiable'`` (score 10 or 0), or ``None``.
    """
    config = config or VerifiableConfig()
    output = record.get("output") or ""
    answers = acceptable_answers(record)
    if not answers:
        return None
    prompt = record.get("prompt") or ""
    return (_check_choice(output, answers, prompt)
            or _check_boolean(output, answers)
            or _check_number(output, answers, config)
            or _check_short_text(output, answers, config))


def _show(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    for prime in (2, 5):
        while den % prime == 0:
            den //= prime
    return f"{float(value):.12g}" if den == 1 else f"{value} (≈{float(value):.6g})"
