"""Text helpers shared by the verifiable and similarity judges.

- :func:`normalise_answer`: SQuAD-style normalisation (case, punctuation, articles, spaces).
- :func:`parse_number` / :func:`find_numbers`: integers, decimals, fractions (``3/4``,
  ``\\frac{3}{4}``), thousands separators, signs; currency, percent and trailing units stripped.
- :func:`final_answer`: the answer a response commits to (``\\boxed{..}``, "the answer is X",
  ``Answer: X``, ``#### X``, a bracketed ``[X]`` at the end), or ``None``.
- :func:`token_f1` and :func:`rouge_l`: token-overlap metrics (ROUGE-L through rapidfuzz's
  LCS on token lists, which is C++ and linear in memory).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from fractions import Fraction

from rapidfuzz.distance import LCSseq

_PUNCT = set(string.punctuation) | {"“", "”", "‘", "’", "…", "–", "—"}
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPACES = re.compile(r"\s+")


def normalise_answer(text: str) -> str:
    """Lower-case, strip accents' compatibility forms, punctuation, articles and extra spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if ch in _PUNCT else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def tokens(text: str) -> list[str]:
    """Normalised word tokens."""
    return normalise_answer(text).split()


def token_f1(prediction: str, reference: str) -> float:
    """Bag-of-tokens F1 between two texts (1.0 when both are empty)."""
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure: longest common token subsequence over both lengths."""
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    lcs = LCSseq.similarity(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


# ----------------------------------------------------------------------------- numbers
_FRAC_TEX = re.compile(r"\\d?frac\{\s*(-?\d+)\s*\}\{\s*(-?\d+)\s*\}")
_NUMBER = re.compile(
    r"(?<![\w.^])[-−+]?"
    r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?"  # 1,234,567.89
    r"|\d+\s*/\s*\d+"                    # 10000/3
    r"|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"   # 12, 3.5, 1e-3
    r"|\.\d+)"                            # .5
)
_UNIT_TAIL = re.compile(r"^\s*(%|percent|[a-zA-Z°µ$€£]{1,12}\.?(\s*[a-zA-Z²³^0-9/]{0,8})?)\s*$")


def _to_fraction(token: str) -> Fraction | None:
    token = token.replace("−", "-").replace(",", "").replace(" ", "").lstrip("+")
    try:
        if "/" in token:
            num, den = token.split("/")
            return Fraction(int(num), int(den)) if int(den) != 0 else None
        return Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None


def find_numbers(text: str) -> list[Fraction]:
    """Every number in ``text``, in order (LaTeX ``\\frac{a}{b}`` included)."""
    text = _FRAC_TEX.sub(lambda m: f" {m.group(1)}/{m.group(2)} ", text)
    out = []
    for match in _NUMBER.finditer(text):
        value = _to_fraction(match.group(0))
        if value is not None:
            out.append(value)
    return out


def parse_number(text: str) -> Fraction | None:
    """The number ``text`` consists of (currency, ``%`` and a short unit allowed), else ``None``."""
    stripped = text.strip().strip("$€£").strip()
    stripped = _FRAC_TEX.sub(lambda m: f"{m.group(1)}/{m.group(2)}", stripped)
    match = _NUMBER.match(stripped)
    if not match or match.start() != 0:
        return None
    rest = stripped[match.end():].rstrip(".")
    if rest and not _UNIT_TAIL.match(rest):
        return None
    return _to_fraction(match.group(0))


def numbers_equal(a: Fraction, b: Fraction, rel_tol: float = 1e-6) -> bool:
    """Equal within a relative tolerance (decimals written to a few places still match)."""
    if a == b:
        return True
    return abs(float(a) - float(b)) <= rel_tol * max(1.0, abs(float(b)))


# ----------------------------------------------------------------------------- final answers
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_ANSWER_IS = re.compile(
    r"(?:final\s+answer|correct\s+answer|the\s+answer|answer)\s*(?:is|:|=)\s*:?\s*"
    r"(.+?)(?:\n|$|(?<=[^\d])\.(?:\s|$))",
    re.IGNORECASE,
)
_HASHES = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_BRACKETED = re.compile(r"\[\[?([^\[\]\n]{1,80})\]?\]\s*\.?\s*$")


def final_answer(text: str) -> str | None:
    """The answer a response commits to explicitly, or ``None`` when it states none."""
    for pattern in (_BOXED, _HASHES):
        found = pattern.findall(text)
        if found:
            return found[-1].strip()
    found = _ANSWER_IS.findall(text)
    if found:
        return found[-1].strip().strip("*").strip()
    match = _BRACKETED.search(text.strip())
    if match:
        return match.group(1).strip()
    return None
