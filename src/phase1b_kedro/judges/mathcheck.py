"""Math answers compared by value with Math-Verify (the checker lighteval and lm-eval use).

Math-Verify (https://github.com/huggingface/Math-Verify) parses LaTeX and plain expressions
into SymPy and compares them numerically and symbolically: fractions with or without braces,
signs, percentages, ``\\text{13}``, sets, intervals, matrices. Two things are done here first,
because Math-Verify reads them wrongly (``9{,}500`` as 9, ``9\\,500`` as 509, ``0b110`` as 0):

- thousands separators (``9{,}500``, ``9\\,500``, ``9,500``, ``9 500`` where groups are of
  three digits) are removed;
- integer literals in other bases (``0b``/``0x``/``0o``) are replaced by their decimal value.

Math-Verify bounds its own work with ``signal.alarm``, which exists only in the main thread;
elsewhere the comparison runs unbounded and the verdict's note says so. A timeout is never
a pass: the verdict says the comparison timed out.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from phase1b_kedro.judges.extract import repair_escapes

logger = logging.getLogger(__name__)

_THOUSANDS = re.compile(r"(?<![\d.])\d{1,3}(?:(?:\{,\}|\\,|,|\\ |\u202f|\u2009)\d{3})+(?![\d])")
_SEPARATOR = re.compile(r"\{,\}|\\,|,|\\ |\u202f|\u2009")
_BASE_LITERAL = re.compile(r"(?<![\w.])(-?)0([bBxXoO])([0-9a-fA-F_]+)\b")
_BASES = {"b": 2, "x": 16, "o": 8}
_CURRENCY = re.compile(r"\\\$|(?<![\w\\])\$(?=\s*[-\d.])|[€£¥]|\\(?:euro|pounds)\b")
_LATEX = re.compile(r"\\[a-zA-Z]+|\^|_\{|\\[{}]")
_WORD = re.compile(r"[A-Za-z]{2,}")
_MATH_WORDS = {"sqrt", "pi", "ln", "log", "sin", "cos", "tan", "exp", "frac", "dfrac", "tfrac", "cdot", "times",
               "infty", "inf", "le", "ge", "leq", "geq", "neq", "pm", "mp", "div", "left", "right", "text",
               "mathrm", "circ", "degree", "degrees", "cup", "cap", "emptyset", "in", "and", "or", "percent"}
_NUMERIC = re.compile(r"^\s*[-+−]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*(?:/\s*\d+(?:\.\d+)?)?\s*(?:\\?%|percent)?\s*$")
_GROUPED = re.compile(r"^[\[\(\{]|^\\\{|^\\left")
_SCIENTIFIC = re.compile(r"(?<![\w.])\d+(?:\.\d+)?[eE][-+]?\d+(?![\w.])")
_MIXED = re.compile(r"(?<![\d./])(\d+)\s+(?:and\s+)?(\d+)/(\d+)(?![\d/])")
_LIST = re.compile(r"^-?\d+(?:\.\d+)?(?:\s*,\s*-?\d+(?:\.\d+)?)+$")
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
_SUPERSCRIPT = re.compile(r"[⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+")
_VULGAR = re.compile(r"(\d*)\s*([½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅛⅜⅝⅞])")
_PAREN_NUMBER = re.compile(r"^[\(\[]\s*([-+]?\d+(?:\.\d+)?)\s*[\)\]]$")
_UNIT = re.compile(r"^(.+?\d)\s*(?:[a-zA-Z°µ]{1,6}\.?(?:\^?[23²³])?(?:/[a-zA-Z]{1,4})?)$")


@dataclass(frozen=True)
class MathResult:
    """``equal`` is ``None`` when the reference could not be read as math at all."""

    equal: bool | None
    note: str = ""


def normalise(text: str) -> str:
    """Repair escapes, drop currency, thousands separators and base prefixes (see module doc);
    write scientific notation, mixed numbers, Unicode fractions and superscripts, and bare
    comma lists (``1, 2, 3`` as a tuple) the way Math-Verify reads them."""
    text = repair_escapes(text).strip().replace("−", "-").replace("×", "\\times ")
    text = re.sub(r"^-\s+(?=\d)", "-", text)  # "- 5"
    text = _CURRENCY.sub("", text)
    text = _SUPERSCRIPT.sub(lambda m: "^{" + m.group(0).translate(_SUPERSCRIPTS) + "}", text)
    text = _VULGAR.sub(lambda m: (f"{m.group(1)}+" if m.group(1) else "") + _vulgar(m.group(2)), text)
    text = _BASE_LITERAL.sub(lambda m: m.group(1) + str(int(m.group(3).replace("_", ""), _BASES[m.group(2).lower()]))
                             if _valid_literal(m) else m.group(0), text)
    text = _THOUSANDS.sub(lambda m: _SEPARATOR.sub("", m.group(0)), text)
    text = _SCIENTIFIC.sub(lambda m: _plain(m.group(0)), text)
    unit = _UNIT.match(text)
    if unit and not _LATEX.search(text):
        text = unit.group(1)  # "12 cm", "1 3/4 cups": the number, without its unit
    text = _MIXED.sub(lambda m: f"({m.group(1)}+{m.group(2)}/{m.group(3)})", text)
    if _LIST.match(text):
        text = f"({text})"
    text = _PAREN_NUMBER.sub(r"\1", text)  # "(628)", "[42]": a number in brackets
    return text.strip()


def _plain(number: str) -> str:
    """``1.5e3`` -> ``1500``, exactly (Decimal), so no float rounding enters the comparison."""
    return format(Decimal(number), "f")


def _vulgar(char: str) -> str:
    value = Fraction(unicodedata.numeric(char)).limit_denominator(100)
    return f"{value.numerator}/{value.denominator}"


def units_differ(gold: str, answer: str) -> bool:
    """Both carry a unit and the units differ (``12 cm`` vs ``12 m``); a bare number never does."""
    units = [_unit_of(repair_escapes(t).strip()) for t in (gold, answer)]
    return all(units) and units[0].casefold() != units[1].casefold()


def _unit_of(text: str) -> str | None:
    m = _UNIT.match(text)
    return text[len(m.group(1)):].strip().rstrip(".") if m and not _LATEX.search(text) else None


def too_complex(text: str) -> bool:
    """Inputs SymPy may take unbounded time on (towers of powers, very long or deeply
    nested expressions): never sent to Math-Verify, which has no timeout off the main thread."""
    return len(text) > 200 or text.count("^") > 3 or text.count("(") > 20 or text.count("{") > 40 \
        or bool(re.search(r"\^\s*\{?[^{}]*\^", text)) or bool(re.search(r"\d{40,}", text))


def _valid_literal(m: re.Match[str]) -> bool:
    digits = m.group(3).replace("_", "")
    try:
        int(digits, _BASES[m.group(2).lower()])
    except ValueError:
        return False
    return True


def is_math(answer: str) -> bool:
    """Whether a (reference) answer is a number or a math expression Math-Verify should compare.

    True for numbers (with sign, decimals, fraction, percent, unit), LaTeX math, sets,
    intervals and tuples of numbers, and short algebraic expressions; false for words,
    code-like strings (``5 4 * * *``) and anything with two operands side by side.
    """
    text = normalise(answer)
    if not text or len(text) > 200 or "\n" in text:
        return False
    if _NUMERIC.match(text):
        return True
    if re.search(r"\d\s+\d|[*/+^]\s*[*/+^]|^\s*[*/^]|[*/+^-]\s*$|[;\"'`]", text):
        return False
    if re.search(r"\b(?:SELECT|FROM|WHERE|def|return|stack)\b", text, re.I):
        return False
    words = [w.lower() for w in _WORD.findall(re.sub(r"\\[a-zA-Z]+", "", text))]
    if any(w not in _MATH_WORDS for w in words):
        return False
    return bool(_LATEX.search(text) or _GROUPED.search(text) or re.search(r"\d", text)
                or re.fullmatch(r"[-+]?[a-z](?:\s*[-+*/^]\s*[\w.]+)*", text))


def _wrapped(text: str) -> str:
    return f"${text}$" if _LATEX.search(text) or "\\" in text or _GROUPED.search(text) else text


def _parse(text: str, timeout_s: int | None) -> tuple[list, str]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse
    from math_verify.errors import TimeoutException

    try:
        return parse(_wrapped(normalise(text)), [LatexExtractionConfig(), ExprExtractionConfig()],
                     parsing_timeout=timeout_s, raise_on_error=True), ""
    except TimeoutException:
        return [], f"Math-Verify timed out after {timeout_s} s reading {text[:40]!r}"
    except Exception as exc:  # noqa: BLE001 - Math-Verify raises anything SymPy raises
        return [], f"Math-Verify could not read {text[:40]!r} ({type(exc).__name__})"


def _timeout(timeout_s: int) -> int | None:
    """Math-Verify's alarm-based timeout works only in the main thread (see module doc)."""
    return timeout_s if threading.current_thread() is threading.main_thread() and timeout_s > 0 else None


def math_equal(gold: str, answer: str, timeout_s: int = 5) -> MathResult:
    """Whether ``answer`` has the value of ``gold`` (both extracted answers, not whole texts).

    Args:
        gold: The reference answer, e.g. ``-\\frac{1}{2}``, ``9500``, ``\\{1, 2\\}``.
        answer: The model's committed answer.
        timeout_s: Seconds Math-Verify may spend on one parse or comparison (main thread only).

    Returns:
        ``MathResult(True | False, note)``; ``equal=None`` when ``gold`` cannot be parsed.
    """
    for text in (gold, answer):
        if too_complex(text):
            return MathResult(False, f"too complex to compare safely: {text[:40]!r}")
    limit = _timeout(timeout_s)
    note = "" if limit else "Math-Verify ran without a timeout (not in the main thread)"
    parsed_gold, why = _parse(gold, limit)
    if not parsed_gold:
        return MathResult(None, why or f"the reference {gold[:40]!r} is not readable as math")
    parsed_answer, why = _parse(answer, limit)
    if not parsed_answer:
        return MathResult(False, why or f"the answer {answer[:40]!r} is not readable as math")
    from math_verify import verify
    from math_verify.errors import TimeoutException

    try:
        return MathResult(bool(verify(parsed_gold, parsed_answer, timeout_seconds=limit, raise_on_error=True)), note)
    except TimeoutException:
        return MathResult(False, f"Math-Verify timed out after {limit} s comparing the values")
    except Exception as exc:  # noqa: BLE001
        return MathResult(False, f"Math-Verify could not compare the values ({type(exc).__name__})")
