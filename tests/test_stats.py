"""Shared statistics: Wilson intervals and a group's lift over its categories' base rates."""

from __future__ import annotations

import pytest

from phase1b_kedro.stats import lift, wilson_interval


def test_wilson_interval_known_values():
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 0) is None


def test_lift_against_the_category_mix():
    # 10 math records (base rate 0.2) and 10 code (0.5): 7 expected failures; 14 observed
    out = lift(14, {"math": 10, "code": 10}, {"math": 0.2, "code": 0.5})
    assert out == {"expected_failures": 7.0, "base_rate": 0.35, "lift": 2.0, "excess_failures": 7.0}
    assert lift(0, {}, {})["lift"] is None
