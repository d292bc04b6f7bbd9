"""Does a batch judge's score depend on where an item sits in its call, or on its length?

Every LLM verdict records its item's ``position`` in its call, the call's ``batch_size`` and
the output's length (``output_chars``). The judge shuffles items before packing them, so an
item's place in its call is random: a rank correlation between relative position and score is
then a randomised test of a position effect (batch-prompting research found one at large
batch sizes). Length is not randomised, so its correlation mixes a length preference with
longer answers being better (or worse); read it with that in mind.

Per effect: Spearman's rho with its p-value and the number of items, and a Theil-Sen slope
(robust to outliers and to scores that pile up at 0 and 10) in interpretable units: score
points from the first to the last place of a call, and per doubling of the output's length.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from phase1b_kedro.contract import verdict_ok

#: Theil-Sen looks at every pair of points: above this many it works on an even subsample.
THEIL_SEN_MAX_POINTS = 1_500
#: Call sizes grouped for the "is my batch size safe?" view.
CALL_SIZE_BINS = ((2, 10), (11, 25), (26, 50), (51, 10_000))


def effect(x: Sequence[float], y: Sequence[float], alpha: float = 0.05) -> dict[str, Any]:
    """Spearman's rho, its p-value, n, and the Theil-Sen slope of ``y`` on ``x``.

    Args:
        x: The candidate cause (relative position, log2 length).
        y: The scores.
        alpha: Significance level for the ``significant`` flag.

    Returns:
        ``{n, spearman_rho, p_value, theil_sen_slope, significant}``; the statistics are
        ``None`` (with a ``note``) when there are fewer than 8 points or either side is constant.
    """
    from scipy.stats import spearmanr, theilslopes

    n = len(x)
    if n < 8 or len(set(x)) < 2 or len(set(y)) < 2:
        return {"n": n, "spearman_rho": None, "p_value": None, "theil_sen_slope": None, "significant": False,
                "note": "too few items, or no variation, to test"}
    rho, p = spearmanr(x, y)
    step = max(1, math.ceil(n / THEIL_SEN_MAX_POINTS))
    slope = theilslopes(list(y)[::step], list(x)[::step]).slope
    return {"n": n, "spearman_rho": round(float(rho), 4), "p_value": float(f"{float(p):.4g}"),
            "theil_sen_slope": round(float(slope), 4), "significant": bool(p < alpha)}


def _llm_rows(judged: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in judged if r["judge"].get("source") == "llm" and verdict_ok(r)
            and r.get("score") is not None]


def _positional(rows: Sequence[Mapping[str, Any]]) -> list[tuple[float, float, int]]:
    """(relative position 0..1, score, call size) of verdicts from calls of two or more items."""
    out = []
    for r in rows:
        d = r["judge"].get("details") or {}
        size, pos = d.get("batch_size"), d.get("position")
        if isinstance(size, int) and size >= 2 and isinstance(pos, int):
            out.append((pos / (size - 1), float(r["score"]), size))
    return out


def _length(rows: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[float]]:
    x = [math.log2(1 + (r["judge"].get("details") or {}).get("output_chars", len(r.get("output") or "")))
         for r in rows]
    return x, [float(r["score"]) for r in rows]


def _block(rows: Sequence[Mapping[str, Any]], alpha: float) -> dict[str, Any]:
    pos = _positional(rows)
    return {"position": effect([p for p, _, _ in pos], [s for _, s, _ in pos], alpha),
            "length": effect(*_length(rows), alpha=alpha)}


def position_length_audit(judged: Sequence[Mapping[str, Any]], alpha: float = 0.05) -> dict[str, Any] | None:
    """The position and length effects on LLM scores, overall, per judge and per call size.

    Args:
        judged: Judged records (``score`` and ``judge`` with ``details``).
        alpha: Significance level.

    Returns:
        ``None`` without LLM verdicts; else ``{alpha, units, overall, per_judge,
        position_by_call_size}``.
    """
    rows = _llm_rows(judged)
    if not rows:
        return None
    per_judge: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        per_judge[f"{r['judge'].get('model')} ({r['judge'].get('rule')})"].append(r)
    pos = _positional(rows)
    by_size = {}
    for low, high in CALL_SIZE_BINS:
        picked = [(p, s) for p, s, size in pos if low <= size <= high]
        if picked:
            label = f"{low}-{high}" if high < 10_000 else f"{low}+"
            by_size[label] = effect([p for p, _ in picked], [s for _, s in picked], alpha)
    return {
        "alpha": alpha,
        "units": {"position": "theil_sen_slope = score points from the first to the last place in a call "
                              "(places are shuffled: a randomised test)",
                  "length": "theil_sen_slope = score points per doubling of the output's length in characters "
                            "(not randomised: longer answers may also be better)"},
        "overall": _block(rows, alpha),
        "per_judge": {name: _block(rs, alpha) for name, rs in sorted(per_judge.items())},
        "position_by_call_size": by_size,
    }


def permutation_summary(judged: Sequence[Mapping[str, Any]], threshold: float,
                        run: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """How much re-judging in other orders moved scores, and how many verdicts it flipped.

    Args:
        judged: Judged records; re-judged ones carry ``judge.details.order_scores``.
        threshold: The pass mark (a flip = the orders' scores fall on both sides of it).
        run: The judge's ``permutations`` run figures (orders, sample, vote, batches, calls).

    Returns:
        ``None`` when nothing was re-judged; else the spread and flip figures with ``run``.
    """
    lists = [[s for s in (r["judge"].get("details") or {}).get("order_scores", []) if s is not None]
             for r in judged]
    lists = [v for v in lists if len(v) >= 2]
    if not run and not lists:
        return None
    spreads = sorted(max(v) - min(v) for v in lists)
    flips = sum(min(v) < threshold <= max(v) for v in lists)
    return {
        **(run or {}),
        "items_compared": len(lists),
        "score_spread": {"mean": round(statistics.fmean(spreads), 3),
                         "median": float(statistics.median(spreads)),
                         "p90": float(spreads[min(len(spreads) - 1, int(0.9 * len(spreads)))]),
                         "max": float(spreads[-1])} if spreads else None,
        "items_with_any_spread": sum(s > 0 for s in spreads),
        "flips": flips,
        "flip_share": round(flips / len(lists), 4) if lists else None,
    }
