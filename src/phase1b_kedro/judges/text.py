"""Text helpers shared by the verifiable and similarity judges.

- :func:`normalise_answer`: SQuAD-style normalisation (case, punctuation, articles, spaces).
- :func:`last_number` / :func:`first_number`: the last (first) number a text writes, as
  written (for outputs that state no answer, or state it in prose; the value is compared by
  :mod:`.mathcheck`).
- :func:`token_f1` and :func:`rouge_l`: token-overlap metrics (ROUGE-L through rapidfuzz's
  LCS on token lists, which is C++ and linear in memory).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter

from rapidfuzz.distance import LCSseq

_PUNCT = set(string.punctuation) | {"“", "”", "‘", "’", "…", "–", "—"}
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_SPACES = re.compile(r"\s+")


def normalise_answer(text: str, keep_articles: bool = False) -> str:
    """Lower-case, NFKC-normalise, drop punctuation, articles and extra spaces (SQuAD's rule).

    ``keep_articles`` keeps ``a``/``an``/``the``: a one-word answer ``A`` is a letter, not an article.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if ch in _PUNCT else ch for ch in text)
    if not keep_articles:
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
_LAST_NUMBER = re.compile(
    r"(?<![\w.])-?0[bBxXoO][0-9a-fA-F]+\b"                           # 0b110, 0x1F
    r"|(?<![\w.])\d+\s+(?:and\s+)?\d+\s*/\s*\d+(?![\d/])"                 # 2 1/2, 2 and 1/2
    r"|[-−+]?\\[dt]?frac\{[^{}]*\}\{[^{}]*\}"                        # \frac{a}{b}, signed
    r"|(?<![\w.^])[-−+]?(?:\d{1,3}(?:(?:,|\{,\}|\\,)\d{3})+(?:\.\d+)?"  # 1,234,567.89, 9{,}500
    r"|\d+\s*/\s*\d+"                                                # 10000/3
    r"|\d+(?:\.\d+)?(?:[eE][-+]?\d+|\s*(?:\\times|×|x|\*)\s*10\^\{?-?\d+\}?)?"  # 12, 3.5, 1e-3, 6 × 10^23
    r"|\.\d+)(?:\s*\\?%)?"                                          # .5; a percent sign kept
)


def last_number(text: str) -> str | None:
    """The last number written in ``text``, as written (sign, separators, ``\\frac``, ``%``)."""
    found = _LAST_NUMBER.findall(text)
    return found[-1].strip() if found else None


def first_number(text: str) -> str | None:
    """The first number written in ``text``, as written (see :func:`last_number`)."""
    found = _LAST_NUMBER.search(text)
    return found.group(0).strip() if found else None
