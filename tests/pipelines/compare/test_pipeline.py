"""Before/after comparison: known transitions reported exactly, McNemar p-values from scipy."""

from __future__ import annotations

import pytest
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner
from scipy.stats import binom

from phase1b_kedro.comparison import mcnemar_exact, transition
from phase1b_kedro.pipelines.compare import create_pipeline
from tests.conftest import Kept

CATS = ["math", "code"]


def runs(fixed: int = 25, broken: int = 25, still_failing: int = 25, still_passing: int = 25):
    """A baseline and a current run with the given transitions (ids in order, two categories)."""
    plan = [(False, True)] * fixed + [(True, False)] * broken + [(False, False)] * still_failing \
        + [(True, True)] * still_passing
    base, cur = [], []
    for i, (was, now) in enumerate(plan):
        rec = {"id": f"r{i:03d}", "category": CATS[i % 2]}
        base.append({**rec, "passed": was})
        cur.append({**rec, "passed": now})
    return base, cur


def run_pipeline(baseline, current, patterns=None) -> dict:
    catalog = DataCatalog({"run_comparison": Kept(), "run_comparison_chart": Kept()})
    catalog["baseline_judged_results"] = baseline
    catalog["judged_results"] = current
    catalog["patterns"] = patterns or {"patterns": []}
    SequentialRunner().run(create_pipeline(), catalog)
    return {name: catalog.load(name) for name in ("run_comparison", "run_comparison_chart")}


def _two_sided(k: int, n: int) -> float:
    """The exact McNemar p-value written out from the binomial distribution."""
    return min(1.0, 2 * binom.cdf(min(k, n - k), n, 0.5))


def test_known_transitions_are_reported_exactly():
    base, cur = runs()
    out = run_pipeline(base, cur)["run_comparison"]
    o = out["overall"]
    assert out["baseline_given"] and out["records"] == 100
    assert (o["fixed"], o["broken"], o["still_failing"], o["still_passing"]) == (25, 25, 25, 25)
    assert o["paired"] == 100 and o["pass_rate_baseline"] == o["pass_rate_current"] == 0.5
    assert o["mcnemar_p"] == pytest.approx(1.0)
    per = out["per_category"]
    assert sum(per[c]["fixed"] for c in CATS) == 25 and per["math"]["paired"] == 50


@pytest.mark.parametrize(("fixed", "broken"), [(30, 10), (12, 2), (0, 7), (40, 0), (5, 5)])
def test_mcnemar_matches_scipy(fixed, broken):
    base, cur = runs(fixed=fixed, broken=broken, still_failing=3, still_passing=4)
    o = run_pipeline(base, cur)["run_comparison"]["overall"]
    assert o["mcnemar_p"] == pytest.approx(_two_sided(fixed, fixed + broken), abs=1e-6)
    assert mcnemar_exact(fixed, broken) == pytest.approx(_two_sided(fixed, fixed + broken), rel=1e-9)


def test_unmatched_unjudged_and_patterns():
    base, cur = runs(2, 2, 2, 2)
    base.append({"id": "gone", "category": "math", "passed": True})
    cur.append({"id": "new", "category": "code", "passed": False})
    cur[0] = {**cur[0], "passed": None}
    patterns = {"patterns": [{"pattern_id": "P01", "member_ids": ["r002", "r003", "new"]}]}
    out = run_pipeline(base, cur, patterns)["run_comparison"]
    o = out["overall"]
    assert (o["only_baseline"], o["only_current"], o["unjudged"], o["fixed"]) == (1, 1, 1, 1)
    assert out["per_pattern"]["P01"]["broken"] == 2 and out["per_pattern"]["P01"]["only_current"] == 1
    assert sum(o[t] for t in ("fixed", "broken", "still_failing", "still_passing", "only_baseline",
                              "only_current", "unjudged")) == out["records"] == 10


def test_no_baseline_and_duplicate_ids():
    assert run_pipeline([], runs()[1])["run_comparison"]["baseline_given"] is False
    base, cur = runs(1, 1, 1, 1)
    with pytest.raises(Exception, match="twice"):
        run_pipeline(base + base[:1], cur)
    assert transition(None, {"passed": True}) == "only_current"
