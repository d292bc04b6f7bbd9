"""Statistics shared by the stages: Wilson intervals, and a pattern's rate against its base rate."""

from __future__ import annotations

from collections.abc import Mapping


def wilson_interval(failed: int, total: int) -> tuple[float, float] | None:
    """Wilson 95% score interval of a proportion (Wilson 1927; scipy's ``binomtest``);
    ``None`` when ``total`` is 0."""
    if total == 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(failed, total).proportion_ci(confidence_level=0.95, method="wilson")
    return round(float(ci.low), 4), round(float(ci.high), 4)


def lift(failed: int, members_by_category: Mapping[str, int], base_rates: Mapping[str, float]) -> dict[str, float | None]:
    """A group's failure rate against what its category mix predicts.

    ``expected_failures = sum_c n_c * r_c`` (``n_c`` the group's records of category ``c``,
    ``r_c`` that category's failure rate over the whole run), ``lift = observed rate /
    expected rate``, and ``excess_failures = failed - expected_failures``: the failures the
    pattern explains beyond its categories' base rate (what patterns are ranked by).
    """
    total = sum(members_by_category.values())
    expected = sum(n * base_rates.get(c, 0.0) for c, n in members_by_category.items())
    return {
        "expected_failures": round(expected, 3),
        "base_rate": round(expected / total, 4) if total else None,
        "lift": round((failed / total) / (expected / total), 3) if total and expected else None,
        "excess_failures": round(failed - expected, 3),
    }
