"""Paired before/after comparison of two judged runs on the same records.

Records are matched by ``id``. Each record present and judged in both runs is one of
``fixed`` (failed before, passes now), ``broken`` (passed before, fails now),
``still_failing`` or ``still_passing``; the rest are ``only_baseline``, ``only_current`` or
``unjudged`` (no verdict in one of the runs). Whether the change in a group is more than
chance is the **exact McNemar test**: under the null, a discordant pair is fixed or broken
with probability 1/2, so the two-sided p-value is the binomial test of ``fixed`` out of
``fixed + broken`` at 0.5 (McNemar 1947; the exact form as in statsmodels' ``mcnemar(exact=True)``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

TRANSITIONS = ("fixed", "broken", "still_failing", "still_passing", "only_baseline", "only_current", "unjudged")


def mcnemar_exact(fixed: int, broken: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 when there are none)."""
    if fixed + broken == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(fixed, fixed + broken, 0.5, alternative="two-sided").pvalue)


def transition(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> str:
    """The transition of one record between the runs (see the module docstring)."""
    if after is None:
        return "only_baseline"
    if before is None:
        return "only_current"
    was, now = before.get("passed"), after.get("passed")
    if was is None or now is None:
        return "unjudged"
    return {(False, True): "fixed", (True, False): "broken", (False, False): "still_failing",
            (True, True): "still_passing"}[(bool(was), bool(now))]


def _group_stats(counts: Counter) -> dict[str, Any]:
    row: dict[str, Any] = {t: counts.get(t, 0) for t in TRANSITIONS}
    paired = row["fixed"] + row["broken"] + row["still_failing"] + row["still_passing"]
    row["paired"] = paired
    row["pass_rate_baseline"] = round((row["broken"] + row["still_passing"]) / paired, 4) if paired else None
    row["pass_rate_current"] = round((row["fixed"] + row["still_passing"]) / paired, 4) if paired else None
    row["mcnemar_p"] = round(mcnemar_exact(row["fixed"], row["broken"]), 6)
    return row


def compare(baseline: Iterable[Mapping[str, Any]], current: Iterable[Mapping[str, Any]],
            groupers: Mapping[str, Callable[[Mapping[str, Any] | None, Mapping[str, Any] | None], list[str]]]
            ) -> dict[str, Any]:
    """Transition counts and McNemar p-values overall and per group.

    Args:
        baseline: Judged records of the earlier run (``id``, ``passed``, ``category``).
        current: Judged records of this run.
        groupers: Group kind -> function of (baseline record, current record) giving the
            groups a record belongs to (e.g. its category, its patterns).

    Returns:
        ``{"overall": row, "records": n, <kind>: {group: row}}`` where a row has the
        :data:`TRANSITIONS` counts, ``paired``, both pass rates and ``mcnemar_p``.

    Raises:
        ValueError: If an id appears twice in one run (records could not be matched).
    """
    runs = []
    for name, records in (("baseline", baseline), ("current", current)):
        by_id: dict[str, Mapping[str, Any]] = {}
        for r in records:
            key = str(r["id"])
            if key in by_id:
                raise ValueError(f"{name} run has id {key!r} twice: records cannot be matched")
            by_id[key] = r
        runs.append(by_id)
    before, after = runs
    ids = list(dict.fromkeys([*after, *before]))
    overall: Counter = Counter()
    grouped: dict[str, dict[str, Counter]] = {kind: defaultdict(Counter) for kind in groupers}
    for key in ids:
        b, a = before.get(key), after.get(key)
        t = transition(b, a)
        overall[t] += 1
        for kind, groups_of in groupers.items():
            for g in groups_of(b, a):
                grouped[kind][g][t] += 1
    out: dict[str, Any] = {"records": len(ids), "overall": _group_stats(overall)}
    for kind, groups in grouped.items():
        out[kind] = {g: _group_stats(c) for g, c in sorted(groups.items())}
    return out
