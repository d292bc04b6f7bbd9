"""Deterministic checks where the reference allows them; ``None`` for long free text.

Both sides go through the same extraction (:mod:`.extract`): reasoning blocks removed, the
last committed answer by position, formatting unwrapped. A reference that commits to
nothing (a bare answer) is its own answer. The rule follows from the reference:

==========  =================================================================  ==============
rule        applies when the reference's answer is                             compared by
==========  =================================================================  ==============
choice      an option letter or option text, with lettered options in the     letter (or the
            prompt (``A.``, ``(A)``, ``A)``, ``A:``, ``[A]``; one per line or  option's text)
            inline ``A: ...; B: ...``)
boolean     yes/no or true/false                                               the word
json        a JSON object or array                                             parsed value
math        a number or math expression (:func:`.mathcheck.is_math`)           Math-Verify
text        short (one line, ``short_answer_words`` words at most) or          normalised
            structured (several lines, code-like, symbolic, bracketed)         match / containment
==========  =================================================================  ==============

A pass scores 10 and a fail 0; the verdict carries the extracted ``answer`` and
``expected`` values. A verdict is *confident* when the output committed to a comparable
answer; otherwise (no option named, no JSON found, structured text that differs and might
be an equivalent rewrite) it is a deterministic fail with ``confident=False``, which the
hybrid strategy hands to an LLM fallback when one is configured. Long natural-language
references get ``None``: only they go to a similarity or LLM judge.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from phase1b_kedro.configs import load_config
from phase1b_kedro.judges.extract import committed_answer, fenced_blocks, repair_escapes, strip_reasoning, unwrap
from phase1b_kedro.judges.mathcheck import is_math, math_equal, units_differ
from phase1b_kedro.judges.options import Options, letters_in, parse_options
from phase1b_kedro.judges.text import first_number, last_number, normalise_answer
from phase1b_kedro.judges.verdict import Verdict

_SYMBOLS = re.compile(r"[*/+=<>^%$#@|\\{}\[\]()~`;]|(?<=\S)-(?=\S)")
_CODE_START = re.compile(r"^\s*(?:SELECT|WITH|INSERT|UPDATE|DELETE|CREATE|def|class|import|from\s+\w+\s+import)\b"
                         r"|^(?:[ \t]+(?:return|for|if|while|elif|else|try|with|yield|raise)|return|raise|yield)\b", re.I)
_NEGATION = re.compile(r"\b(not|no|never|neither|nor|isn|aren|wasn|doesn|don|cannot|incorrect|wrong)\b")
_NEGATED = re.compile(r"^\s*(?:not|never|isn'?t|is\s+not|no\s+it\s+is\s+not)\b", re.I)
_BOOLEANS = {"yes": "yes", "no": "no", "true": "true", "false": "false", "correct": "true", "incorrect": "false",
             "yeah": "yes", "yep": "yes", "yup": "yes", "nope": "no", "nah": "no"}
_NEGATED_BOOL = re.compile(r"\b(?:not|isn't|isn t|is not|never)\s+(?:\w+\s+){0,2}?(?:true|false|correct|incorrect)\b")
_BOOL_PAIRS = {"yes": ("yes", "no"), "no": ("yes", "no"), "true": ("true", "false"), "false": ("true", "false")}
_JSON_START = re.compile(r"[\[{]")
_MAX_JSON_STARTS = 200  # positions tried when looking for JSON inside prose (bounds the cost)
_RECORD_LINE = re.compile(r'^\s*["\w.\-\[\]]+\s*[:=]\s*\S')
_CODE_CHARS = re.compile(r"[{}\[\]=<>]|\w\(|\)\s*[:{]|^\s*[#/]{1,2}\s|[;{]\s*$")
_SQL = re.compile(r"^\s*(?:SELECT|WITH|INSERT|UPDATE|DELETE|CREATE)\b", re.I)
_QUOTED = re.compile(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_PUNCT_SPACE = re.compile(r"\s*([(),;=<>+\-*/\[\]{}:|])\s*")


@dataclass(frozen=True)
class VerifiableConfig:
    """Knobs of the verifiable checks (``judging.verifiable``)."""

    #: A one-line reference of at most this many words is a short answer (never similarity).
    short_answer_words: int = 6
    #: A bare output of at most this many words may contain the short answer and pass.
    short_output_words: int = 12
    #: A committed answer of at most this many words that differs from a short reference is
    #: a confident fail; a longer one is a fail an LLM fallback may overturn.
    label_words: int = 4
    #: Seconds Math-Verify may spend on one parse or comparison.
    math_timeout_s: int = 5

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> VerifiableConfig:
        """Build from ``judging.verifiable`` (missing keys keep defaults; unknown keys fail)."""
        return load_config(cls, params, "judging.verifiable")


def acceptable_answers(record: Mapping[str, Any]) -> list[str]:
    """The reference and every other acceptable answer (``meta.acceptable``), without repeats."""
    answers = [record.get("reference") or ""]
    extra = (record.get("meta") or {}).get("acceptable") or []
    answers += [a for a in extra if isinstance(a, str)]
    seen: dict[str, None] = {}
    for a in answers:
        if a.strip():
            seen.setdefault(repair_escapes(a.strip()), None)
    return list(seen)


def reference_answer(reference: str) -> str:
    """The answer a reference commits to (``#### N``, ``\\boxed{}``, ...), else all of it unwrapped.

    In a multi-line structured reference (records, code) only ``\\boxed{}``, ``####`` and
    ``<answer>`` are markers: an ``answer: ...`` line or a final ``[...]`` there is content.
    A final ``[X]`` marks the answer only when it is the whole reference.
    """
    multi_line = "\n" in reference.strip()
    committed = committed_answer(reference, strong_only=multi_line and structured(reference))
    if committed and committed.marker == "bracketed" and committed.start > 0:
        committed = None
    return committed.text if committed else unwrap(_fenced(reference) or reference)


def _fenced(text: str) -> str | None:
    blocks = [code for _, code in fenced_blocks(text)]
    return blocks[-1].strip() if blocks else None


def _verdict(ok: bool, rule: str, answer: str | None, expected: Sequence[str], how: str,
             confident: bool = True, mode: str | None = None) -> Verdict:
    """A pass (10) or fail (0); ``mode`` is the failure mode a fail has (:mod:`.modes`):
    by default ``no_answer`` without an answer, else ``wrong_answer``."""
    shown = " / ".join(repr(e[:80]) for e in expected)
    said = "no answer" if answer is None else repr(answer[:80])
    details = {} if ok else {"mode": mode or ("no_answer" if answer is None else "wrong_answer")}
    return Verdict(10.0 if ok else 0.0, "verifiable", rule=rule, answer=answer, expected=" / ".join(expected),
                   confident=confident, rationale=f"{rule}: expected {shown}, answer {said} ({how})", details=details)


# ----------------------------------------------------------------------------- choice
def _check_choice(body: str, committed: str | None, refs: Sequence[str], options: Options) -> Verdict | None:
    resolved = [letters_in(r, options) for r in refs]
    expected = sorted({letters[0] for letters in resolved if len(letters) == 1})
    if not expected:
        return None
    if committed is not None:
        got, how = letters_in(committed, options), "stated answer"
        if not got:
            got, how = letters_in(body, options, loose=True), "letters cited"
    else:
        got, how = letters_in(body, options, loose=True), "letters cited"
    if len(got) == 1:
        return _verdict(got[0] in expected, "choice", got[0], expected, how)
    if len(got) > 1:
        return _verdict(False, "choice", ", ".join(got), expected, "several options named", mode="format")
    return _verdict(False, "choice", None, expected, "no single option named", confident=False, mode="format")


# ----------------------------------------------------------------------------- yes/no
def _check_boolean(body: str, committed: str | None, refs: Sequence[str]) -> Verdict | None:
    expected = {_BOOLEANS.get(normalise_answer(r)) for r in refs}
    if None in expected:
        return None
    pair = _BOOL_PAIRS[next(iter(expected))]
    said = normalise_answer(committed if committed is not None else body).split()
    present = {_BOOLEANS[w] for w in said if _BOOLEANS.get(w) in pair}
    got = _BOOLEANS.get(said[0]) if said else None
    how = "stated answer" if committed is not None else "first word"
    if got not in pair or (committed is None and len(present) > 1):  # "yes or no" commits to neither
        got, how = (present.pop(), "only one stated") if len(present) == 1 else (None, "neither or both stated")
    if got in ("true", "false") and _NEGATED_BOOL.search(" ".join(said)):
        got, how = None, "the true/false word is negated"
    if got is None:
        return _verdict(False, "boolean", None, sorted(expected), how, confident=False, mode="format")
    return _verdict(got in expected, "boolean", got, sorted(expected), how)


# ----------------------------------------------------------------------------- json
def _json_value(text: str) -> Any:
    try:
        value = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return None
    return value if isinstance(value, (dict, list)) else None


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1`` (Python's ``True == 1``), ``1`` equals ``1.0``,
    key order is ignored, list order is kept."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _last_json(text: str, kind: type) -> Any:
    """The last JSON value of ``kind`` (object or array) in ``text``: fenced blocks first,
    then anywhere (a bracketed aside after the answer is not taken for it)."""
    for _, block in reversed(fenced_blocks(text)):
        if isinstance(value := _json_value(block.strip()), kind):
            return value
    decoder, found, i, tries = json.JSONDecoder(), None, 0, 0
    while (m := _JSON_START.search(text, i)) is not None and tries < _MAX_JSON_STARTS:
        tries += 1
        try:
            value, end = decoder.raw_decode(text, m.start())
        except (ValueError, RecursionError):
            i = m.start() + 1
            continue
        if isinstance(value, kind):
            found = value
        i = end
    return found


def _check_json(body: str, refs: Sequence[str]) -> Verdict | None:
    expected = [v for r in refs if (v := _json_value(_fenced(r) or r.strip())) is not None]
    if not expected:
        return None
    shown = [json.dumps(e, sort_keys=True)[:200] for e in expected]
    got = _last_json(body, type(expected[0]))
    if got is None:
        return _verdict(False, "json", None, shown, "no JSON value in the output", confident=False, mode="format")
    ok = any(json_equal(got, e) for e in expected)
    return _verdict(ok, "json", json.dumps(got, sort_keys=True)[:200], shown,
                    "same parsed JSON" if ok else "parsed JSON differs")


# ----------------------------------------------------------------------------- math
def _math_answer(body: str, committed: str | None) -> tuple[str | None, str]:
    """The output's answer for a math reference, and how it was found.

    A stated answer counts whole when it is one expression; in prose ("12 because each of
    the 3 boxes holds 4") its first number is the answer; a negated one ("not 6") is none.
    Without a stated answer: the whole output when it is one short expression, else its
    last number (lm-evaluation-harness's flexible extraction).
    """
    if committed is not None:
        if _NEGATED.match(committed):
            return None, "the stated answer is negated"
        if is_math(committed):
            return committed, "stated answer"
        number = first_number(committed)
        return (number, "first number of the stated answer") if number else (None, "no number in the stated answer")
    text = body.strip()
    if len(text) <= 60 and "\n" not in text and is_math(unwrap(text)):
        return unwrap(text), "whole output"
    number = last_number(body)
    return (number, "last number") if number else (None, "the output has no number")


def _check_math(body: str, committed: str | None, refs: Sequence[str], config: VerifiableConfig) -> Verdict | None:
    golds = [r for r in refs if is_math(r)]
    if not golds or len(golds) != len(refs):
        return None
    answer, how = _math_answer(body, committed)
    if answer is None:
        return _verdict(False, "math", None, golds, how)
    notes = []
    for gold in golds:
        if units_differ(gold, answer):
            notes.append(f"units differ ({gold!r} vs {answer!r})")
            continue
        result = math_equal(gold, answer, config.math_timeout_s)
        if result.equal is None:
            return None  # the reference is not math after all: let the text rule compare it
        if result.equal:
            return _verdict(True, "math", answer, golds, _with(how, result.note))
        notes.append(result.note)
    confident = not any("too complex" in n for n in notes)
    return _verdict(False, "math", answer, golds, _with(how, "; ".join(n for n in notes if n)), confident=confident)


def _with(how: str, note: str) -> str:
    return f"{how}; {note}" if note else how


# ----------------------------------------------------------------------------- short / structured text
def structured(answer: str, max_words: int = 8) -> bool:
    """Code-like, record-like or symbolic text: SQL and code, ``key: value`` / ``key = value``
    lines (protocol-buffer text, configs), and short symbolic answers (``5 4 * * *``,
    ``O(n^2)``, ``(stack 16)``). Multi-line prose such as a poem is not structured."""
    text = answer.strip()
    if _CODE_START.match(text):
        return True
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        code_like = sum(bool(_RECORD_LINE.match(line) or _CODE_CHARS.search(line) or _CODE_START.match(line))
                        for line in lines)
        return code_like * 2 >= len(lines)
    return bool(_SYMBOLS.search(text.rstrip("."))) and len(text.split()) <= max_words


def _squash_line(line: str) -> str:
    """One line without insignificant spacing; case folded outside quoted strings."""
    line = _PUNCT_SPACE.sub(r"\1", " ".join(line.split()))
    parts = _QUOTED.split(line)
    return "".join(p if k % 2 else p.casefold() for k, p in enumerate(parts))


def _squash(text: str) -> str:
    """Comparable form of structured text. SQL (whitespace is insignificant): one line.
    Anything else (Python, YAML, records): line by line, nesting kept (indentation as levels,
    so 2 and 4 spaces nest alike), blank lines and trailing spaces dropped. Either way: no spaces around punctuation, case folded except
    inside quotes, one pair of enclosing brackets and a final ``;`` or full stop dropped."""
    text = text.strip()
    if _SQL.match(text):
        squashed = _squash_line(text)
    else:
        lines = [line.rstrip().expandtabs(4) for line in text.splitlines() if line.strip()]
        indents = [len(line) - len(line.lstrip()) for line in lines]
        level = {width: k for k, width in enumerate(sorted(set(indents)))}  # 2 or 4 spaces: same nesting
        squashed = "\n".join(" " * level[i] + _squash_line(line) for i, line in zip(indents, lines, strict=True))
    squashed = squashed.rstrip(";.")
    m = re.fullmatch(r"\[(.*)\]", squashed, re.S)
    return m.group(1) if m and "[" not in m.group(1) else squashed


def _check_text(body: str, committed: str | None, refs: Sequence[str], config: VerifiableConfig) -> Verdict | None:
    if any(structured(r) for r in refs):
        return _check_structured(body, committed, refs)
    normalised = [normalise_answer(r, keep_articles=len(r.split()) == 1) for r in refs]
    if any(not n or len(n.split()) > config.short_answer_words or "\n" in r.strip()
           for n, r in zip(normalised, refs, strict=True)):
        return None
    candidates = [("stated answer", committed)] if committed is not None else []
    candidates.append(("whole output", body))
    for how, text in candidates:
        said = normalise_answer(text, keep_articles=len(text.split()) == 1)
        if said in normalised:
            return _verdict(True, "short_text", text.strip()[:200], refs, f"{how}: normalised exact match")
        short = how == "stated answer" or len(said.split()) <= config.short_output_words
        raw = text.casefold()  # "non-entailment" does not contain the label "entailment"
        hits = [n for n, r in zip(normalised, refs, strict=True) if short and not _NEGATION.search(said)
                and re.search(rf"(?<!\w){re.escape(n)}(?!\w)", said)
                and re.search(rf"(?<![\w-]){re.escape(r.strip().rstrip('.').casefold())}(?![\w-])", raw)]
        if hits:
            return _verdict(True, "short_text", text.strip()[:200], refs, f"{how} contains {hits[0]!r}")
    said = committed if committed is not None else body
    label = len(normalise_answer(said).split()) <= config.label_words
    return _verdict(False, "short_text", said.strip()[:200], refs,
                    "normalised text differs" if label else "the answer is not stated in a comparable form",
                    confident=label, mode="wrong_answer" if label else "no_answer")


def _check_structured(body: str, committed: str | None, refs: Sequence[str]) -> Verdict:
    expected = {_squash(r) for r in refs}
    spans = _CODE_SPAN.findall(body)
    candidates = [(how, text) for how, text in (("fenced block", _fenced(body)), ("stated answer", committed),
                                                 ("inline code", spans[-1] if spans else None),
                                                 ("whole output", body)) if text]
    for how, text in candidates:
        if _squash(unwrap(text)) in expected:
            return _verdict(True, "structured_text", text.strip()[:200], refs, f"{how}: whitespace-insensitive match")
        for part in (*re.split(r"\n\s*\n", text), *text.splitlines()):  # a paragraph or line that is the answer
            if part.strip() and _squash(unwrap(part)) in expected:
                return _verdict(True, "structured_text", part.strip()[:200], refs, f"{how} contains the answer")
    said = candidates[0][1] if candidates else ""
    return _verdict(False, "structured_text", said.strip()[:200], refs,
                    "whitespace-insensitive text differs; an equivalent rewrite would need an LLM judge",
                    confident=False)


def check(record: Mapping[str, Any], config: VerifiableConfig | None = None) -> Verdict | None:
    """A deterministic verdict for one output record, or ``None`` for long free-text references.

    Args:
        record: A model output record (``output``, ``reference``, ``prompt``, ``meta.acceptable``).
        config: Thresholds; defaults when ``None``.

    Returns:
        A :class:`Verdict` with ``source='verifiable'`` (score 10 or 0, ``answer``,
        ``expected``, ``confident``), or ``None`` when no rule applies.
    """
    config = config or VerifiableConfig()
    answers = acceptable_answers(record)
    if not answers:
        return None
    refs = [reference_answer(a) for a in answers]
    body = strip_reasoning(record.get("output") or "")
    if body is None:
        return Verdict(0.0, "verifiable", rule="no_answer", expected=" / ".join(refs), details={"mode": "no_answer"},
                       rationale="the reasoning block was never closed: the output commits to no answer")
    found = committed_answer(body)
    committed = found.text if found else None
    options = parse_options(record.get("prompt") or "")
    return ((_check_choice(body, committed, refs, options) if options else None)
            or _check_boolean(body, committed, refs)
            or _check_json(body, answers)
            or _check_math(body, committed, refs, config)
            or _check_text(body, committed, refs, config))
