"""Proportional allocation with floors: how many items to draw per group.

Used by the stratified sample (records per category), the judge's agreement sample and the
data generation plan (examples per pattern): one rule, one implementation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def allocate(population: Mapping[str, int], num_samples: int, min_per_category: int) -> dict[str, int]:
    """How many records to draw per category.

    Proportional allocation, ``n * N_c / N``, with two constraints: a category never gets
    fewer than ``min(N_c, min_per_category)`` (lowered evenly when the minimums alone exceed
    ``num_samples``) nor more than it has. Constrained categories are fixed at their bound
    and the others re-share what is left in proportion to their size; the final integer
    counts use the largest-remainder method (ties broken by category name).

    Args:
        population: Records available per category.
        num_samples: Total wanted; capped at the population size.
        min_per_category: Floor per category so rare categories appear.

    Returns:
        ``{category: count}`` summing to ``min(num_samples, total population)``.
    """
    cats = sorted(c for c in population if population[c] > 0)
    total = min(int(num_samples), sum(population[c] for c in cats))
    if total <= 0:
        return {c: 0 for c in population}
    floor = min(int(min_per_category), total // len(cats))
    lower = {c: min(population[c], floor) for c in cats}
    fixed: dict[str, int] = {}
    while True:
        free = [c for c in cats if c not in fixed]
        left = total - sum(fixed.values())
        weight = sum(population[c] for c in free)
        ideal = {c: left * population[c] / weight for c in free} if weight else {}
        newly = {c: lower[c] for c in free if ideal[c] < lower[c]}
        newly.update({c: population[c] for c in free if ideal[c] > population[c]})
        if not newly:
            break
        fixed.update(newly)
    alloc = {**fixed, **{c: math.floor(v) for c, v in ideal.items()}}
    rest = total - sum(alloc.values())
    for c in sorted(ideal, key=lambda c: (-(ideal[c] - math.floor(ideal[c])), c))[:rest]:
        alloc[c] += 1
    return {c: alloc.get(c, 0) for c in population}
