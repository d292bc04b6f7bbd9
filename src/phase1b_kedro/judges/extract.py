"""The answer a text commits to: one extraction step for model outputs *and* references.

Extraction is separate from comparison (the split lm-evaluation-harness and lighteval make
between filters and metrics). :func:`committed_answer` applies, in order:

1. **Reasoning removed** (:func:`strip_reasoning`): ``<think>...</think>``, ``<thinking>``,
   ``<reasoning>``, ``<|begin_of_thought|>...<|end_of_thought|>``, ``[THINK]...[/THINK]``.
   A block opened and never closed means the text committed to nothing (``None``); a
   closing tag with no opening one (templates that open the block in the prompt) keeps
   only what follows it.
2. **The last committed answer by position**, whatever its marker: ``\\boxed{..}`` /
   ``\\fbox{..}`` (nested braces), ``#### X`` (GSM8K), ``<answer>X</answer>``, "the (final |
   correct) answer is X", ``Answer: X`` / ``ANSWER: X`` / ``Final answer: X``, the correct
   option is X, and a final bracketed ``[X]``.
3. **Formatting unwrapped** (:func:`unwrap`): ``$..$``, ``$$..$$``, ``\\(..\\)``, ``\\[..\\]``,
   ``\\text{}``, ``\\textbf{}``, ``\\mathrm{}``, ``\\mathbf{}``, ``\\boxed{}``, markdown
   emphasis (``**X**``, ``*X*``, ``__X__``), backticks, quotes and a closing full stop.

:func:`repair_escapes` undoes a common corruption of LaTeX in JSON datasets, where ``\\b``,
``\\f`` and ``\\t`` were read as JSON escapes (``\\x08oxed`` for ``\\boxed``, a tab for
``\\textbf``, a form feed for ``\\frac``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_REASONING = [
    (re.compile(r"<think(?:ing)?>", re.I), re.compile(r"</think(?:ing)?>", re.I)),
    (re.compile(r"<reasoning>", re.I), re.compile(r"</reasoning>", re.I)),
    (re.compile(r"<\|begin_of_thought\|>"), re.compile(r"<\|end_of_thought\|>")),
    (re.compile(r"\[THINK\]"), re.compile(r"\[/THINK\]")),
]
_ANSWER_TAG = re.compile(r"<\|?begin_of_solution\|?>|<\|?end_of_solution\|?>", re.I)

# A fenced block opens and closes at the start of a line (a closing fence is never taken for
# the opening of the next block); FENCE_LINE is one fence line on its own.
_FENCE = re.compile(r"(?m)^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*```", re.S)
FENCE_LINE = re.compile(r"^[ \t]*```[\w+-]*[ \t]*$")
_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_HASHES = re.compile(r"####\s*([^\n]+?)\s*$", re.M)
_TAGGED = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.S | re.I)
# "the final answer is X", "Answer: X", "ANSWER: $A$", "The correct option is (B)". The value
# runs to the end of the line or of the sentence (a full stop after a non-digit, so decimals
# survive; "$3,000." ends at the full stop).
_ANSWER_IS = re.compile(
    r"(?:\b(?:final|correct|right)\s+(?:answer|option|choice)|\b(?:the\s+)?answer|\bthe\s+(?:option|choice))"
    r"(?:\s+(?:is|would\s+be|will\s+be|should\s+be)\s*[:=]?|\s*[:=]|\s+-\s)\s*"
    r"(?P<value>[^\n]+?)\s*(?=\n|$|(?<![\d\\])\.(?:\s|$)|(?<=\d)\.(?:\s|$)|\.\s)",
    re.I,
)
_ANSWER_LABEL = re.compile(r"(?:^|\n)\s*\**(?:final\s+)?answer\**\s*[:：]\**\s*(?P<value>[^\n]+?)\s*(?=\n|$)", re.I)
_BRACKETED = re.compile(r"\[\[?([^\[\]\n]{1,80})\]?\]\s*\.?\s*$")

_WRAPPERS = [
    re.compile(r"^\$\$(.+)\$\$$", re.S), re.compile(r"^\$(.+)\$$", re.S),
    re.compile(r"^\\\((.+)\\\)$", re.S), re.compile(r"^\\\[(.+)\\\]$", re.S),
    re.compile(r"^\*\*(.+)\*\*$", re.S), re.compile(r"^__(.+)__$", re.S),
    re.compile(r"^\*(.+)\*$", re.S), re.compile(r"^_(.+)_$", re.S),
    re.compile(r"^`{3}[\w+-]*\n?(.+?)\n?`{3}$", re.S), re.compile(r"^`(.+)`$", re.S),
    re.compile(r'^"(.+)"$', re.S), re.compile(r"^'(.+)'$", re.S), re.compile(r"^“(.+)”$", re.S),
]
_TEXT_COMMANDS = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mathit|operatorname|mbox|boxed|fbox)\s*\{")


@dataclass(frozen=True)
class Committed:
    """An extracted answer: the text, the marker that introduced it, its position."""

    text: str
    marker: str
    start: int


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Closed fenced code blocks of ``text`` in order: (language in lower case, code)."""
    return [(lang.lower(), code) for lang, code in _FENCE.findall(text)]


def repair_escapes(text: str) -> str:
    """Undo LaTeX commands corrupted into JSON control characters (see module docstring)."""
    return (text.replace("\x08oxed", "\\boxed").replace("\x0crac", "\\frac").replace("\x0cbox", "\\fbox")
            .replace("\text", "\\text").replace("\times", "\\times"))


def strip_reasoning(text: str) -> str | None:
    """``text`` without reasoning blocks; ``None`` when a block is left open (no answer yet).

    A block opened after the last one closed and never closed ends the text there: what came
    before it still counts ("The answer is 7. I used <think> tags" keeps its answer), and
    when nothing came before it the output committed to nothing.
    """
    for opening, closing in _REASONING:
        closes = list(closing.finditer(text))
        if closes:
            text = text[closes[-1].end():]
        opened = opening.search(text)
        if opened:
            text = text[:opened.start()]
            if not text.strip():
                return None
    return _ANSWER_TAG.sub("", text)


def _brace_pairs(text: str) -> dict[int, int]:
    """Index of each ``{`` -> index of its ``}``, in one pass (unclosed braces are absent)."""
    pairs, stack = {}, []
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
    return pairs


def _balanced(text: str, open_at: int, pairs: dict[int, int] | None = None) -> tuple[str, int] | None:
    """Content of the brace group whose ``{`` is at ``open_at``, and the index after it."""
    close = (pairs if pairs is not None else _brace_pairs(text)).get(open_at)
    return (text[open_at + 1:close], close + 1) if close is not None else None


def _candidates(text: str, strong_only: bool = False) -> list[Committed]:
    found = []
    pairs = _brace_pairs(text)
    for m in _BOX_START.finditer(text):
        group = _balanced(text, m.end() - 1, pairs)
        if group:
            found.append(Committed(group[0], "boxed", m.start()))
    found += [Committed(m.group(1), "####", m.start()) for m in _HASHES.finditer(text)]
    found += [Committed(m.group(1), "answer tag", m.start()) for m in _TAGGED.finditer(text)]
    if strong_only:
        return found
    for pattern in (_ANSWER_IS, _ANSWER_LABEL):
        for m in pattern.finditer(text):
            value = m.group("value")
            inner = _BOX_START.search(value)
            if not inner or (m.start("value") + inner.end() - 1) not in pairs:  # a closed box is its own marker
                found.append(Committed(value, "answer is", m.start("value")))
    m = _BRACKETED.search(text.rstrip())
    if m:
        found.append(Committed(m.group(1), "bracketed", m.start()))
    return found


def committed_answer(text: str, strong_only: bool = False) -> Committed | None:
    """The last answer ``text`` commits to, unwrapped; ``None`` when it commits to none.

    Args:
        text: A model output or a reference.
        strong_only: Only ``\\boxed{}``, ``####`` and ``<answer>`` count (for structured
            references, where ``key: value`` lines and a final ``[..]`` are content, not markers).

    Returns:
        The answer, the marker that introduced it and its character offset (in the text
        after reasoning blocks were removed), or ``None``: no marker, or an open reasoning block.
    """
    body = strip_reasoning(repair_escapes(text))
    if body is None:
        return None
    found = [c for c in _candidates(body, strong_only) if unwrap(c.text)]
    if not found:
        return None
    last = max(found, key=lambda c: c.start)
    return Committed(unwrap(last.text), last.marker, last.start)


def unwrap(text: str) -> str:
    """Strip math delimiters, text commands, markdown emphasis, quotes and a final full stop."""
    text = text.strip()
    for _ in range(8):
        before = text
        text = text.strip().rstrip(".").rstrip(",;").strip()
        m = _TEXT_COMMANDS.match(text)
        if m:
            group = _balanced(text, m.end() - 1)
            if group and group[1] == len(text):
                text = group[0]
            elif not group:  # never closed (a cut-off or corrupted source): drop the command
                text = text[m.end():]
        if text.startswith("$") and text.count("$") == 1 and "\\" in text:
            text = text[1:]  # an opening math delimiter never closed
        for pattern in _WRAPPERS:
            m = pattern.match(text)
            if m and m.group(1).strip():
                text = m.group(1)
                break
        if text == before:
            break
    return text.strip()
