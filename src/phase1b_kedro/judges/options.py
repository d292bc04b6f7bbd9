"""Lettered options of a multiple-choice prompt, and the letters a text commits to.

Layouts recognised in the prompt (:func:`parse_options`), one option per line or inline,
upper or lower case, as long as the letters run A, B, C, ... without a gap:

- ``A. text``, ``A) text``, ``(A) text``, ``[A] text``, ``A: text``, ``A - text``, ``A、text``,
  ``**A.** text``, ``Option A: text`` (one per line);
- ``A) greed B) patience C) luck`` and ``A: Model for Kai; B: get the perfect shot`` (inline).

A duplicated marker inside the text (``A. A.2``, a LogiQA habit) is dropped.
"""

from __future__ import annotations

import re

from phase1b_kedro.judges.extract import unwrap
from phase1b_kedro.judges.text import normalise_answer

#: Letter -> normalised option text.
Options = dict[str, str]

_LINE = re.compile(r"(?m)^[ \t]*(?:\*\*)?(?:option\s+)?(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Za-z])(?:[.):、]|\s+[-–—]))"
                   r"(?:\*\*)?[ \t]*(.*?)[ \t]*$", re.I)
_INLINE = re.compile(r"(?:^|(?<=[\s;,:]))(?:\(([A-Za-z])\)|([A-Za-z])[):.])\s+")
_DUP = re.compile(r"^\(?[A-Za-z][.)]\s*")
_EXACT = re.compile(r"^(?:(?:option|choice|letter)\s*)?[\(\[]?([A-Za-z])[\)\]]?[.):]?$", re.I)
_WITH_TEXT = re.compile(r"^(?:(?:option|choice)\s*)?[\(\[]?([A-Za-z])[\)\].:]\s*(.+)$", re.I | re.S)
_SEVERAL = re.compile(r"^[\(\[]?([A-Za-z])[\)\]]?(?:\s*(?:,|and|&|or|/)\s*[\(\[]?[A-Za-z][\)\]]?)+$", re.I)
_LETTER = re.compile(r"(?<![A-Za-z])[\(\[]?([A-Za-z])[\)\]]?(?![A-Za-z])")
_LEADING = re.compile(r"^\s*(?:\*\*)?(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Z])(?:[.,):\]]|\*\*|\s*$|\s*\n))")
# "I think it's D.", "So B.", "I'd go with C", "my choice: (B)": the last such statement wins.
_STATED = re.compile(r"\b(?i:is|it's|be|so|go\s+with|choose|chose|pick|picked|select|option|choice|answer|wait|actually)"
                     r",?\s*:?\s*"
                     r"\(?\**([A-Z])\**\)?(?=[\s.,;:!)]|$)")
_CITED = re.compile(r"\(([A-Za-z])\)|\b(?:option|choice)\s+\(?([A-Za-z])\b\)?|\*\*([A-Z])\*\*", re.I)


def _run(found: list[tuple[str, str]]) -> Options:
    """The longest run of options lettered A, B, C, ... in order (one case throughout)."""
    best: Options = {}
    for start in range(len(found)):
        letter = found[start][0]
        if letter not in "Aa":
            continue
        run: Options = {}
        for j in range(start, len(found)):
            expected = chr(ord(letter) + len(run))
            if found[j][0] != expected:
                break
            run[expected.upper()] = normalise_answer(_DUP.sub("", found[j][1]) or found[j][1])
        if len(run) >= len(best):
            best = run
    return best if len(best) >= 2 else {}


def parse_options(prompt: str) -> Options:
    """The prompt's lettered options (upper-case letter -> normalised text); ``{}`` if fewer than two."""
    lines = [(next(g for g in m.groups()[:3] if g), m.group(4)) for m in _LINE.finditer(prompt)]
    options = _run(lines)
    if options:
        return options
    marks = list(_INLINE.finditer(prompt))
    inline = []
    for k, m in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(prompt)
        inline.append((m.group(1) or m.group(2), prompt[m.end():end].strip().rstrip(";,.").split("\n")[0]))
    return _run(inline)


def _by_text(text: str, options: Options) -> list[str]:
    said = normalise_answer(text)
    return [k for k, v in options.items() if v and v == said]


def letters_in(text: str, options: Options, loose: bool = False) -> list[str]:
    """The option letters ``text`` commits to, in order, without repeats.

    Args:
        text: A committed answer (``B``, ``(B)``, ``**B**``, ``Option B``, ``B) text``, the
            option's text, ``A and C``), or with ``loose`` a whole output.
        options: From :func:`parse_options`.
        loose: Read a whole output: its first line if that is an answer form, its leading
            letter, else the last letter it states ("I think it's D.", "So B."), else the one
            letter it cites (``(B)``, ``option B``, ``**B**``), else the one option whose text
            it contains.

    Returns:
        Upper-case letters among ``options``; several when the text names several; empty
        when it names none (or, with ``loose``, no single one).
    """
    text = unwrap(text)
    if loose:
        return _loose(text, options)
    m = _EXACT.match(text)
    if m and m.group(1).upper() in options:
        return [m.group(1).upper()]
    m = _WITH_TEXT.match(text)
    if m and m.group(1).upper() in options:
        return _letter_and_text(m.group(1).upper(), m.group(2), options)
    if _SEVERAL.match(text):
        letters = dict.fromkeys(x.upper() for x in _LETTER.findall(text) if x.upper() in options)
        return list(letters)
    return _by_text(text, options)


def _letter_and_text(letter: str, text: str, options: Options) -> list[str]:
    """``B) text``: the letter, unless the text is another option's or no option's at all
    (a letter with a made-up or swapped text commits to nothing clear)."""
    said = normalise_answer(_DUP.sub("", text.strip()) if text.strip()[:1].upper() == letter else text)
    if not said or options[letter] == said or options[letter].startswith(said) or said.startswith(options[letter]):
        return [letter]
    return []


def _loose(text: str, options: Options) -> list[str]:
    first = text.strip().split("\n")[0]
    if _WITH_TEXT.match(first) or _EXACT.match(first):
        return letters_in(first, options)
    m = _LEADING.match(text)
    if m:
        letter = next(g for g in m.groups() if g).upper()
        if letter in options:
            return [letter]
    stated = [m.group(1) for m in _STATED.finditer(text) if m.group(1) in options]
    if stated:
        return [stated[-1]]
    cited = {next(g for g in c.groups() if g).upper() for c in _CITED.finditer(text)} & set(options)
    if len(cited) == 1:
        return [cited.pop()]
    if cited:
        return []
    said = normalise_answer(text)
    hits = [k for k, v in options.items() if len(v) >= 3 and re.search(rf"(?<!\w){re.escape(v)}(?!\w)", said)]
    return hits if len(hits) == 1 else []
