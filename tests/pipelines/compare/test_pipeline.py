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


def run_pipeline(baseline, current, patterns=None, pattern_rates=None) -> dict:
    catalog = DataCatalog({"run_comparison": Kept(), "run_comparison_chart": Kept()})
    catalog["baseline_judged_results"] = baseline
    catalog["judged_results"] = current
    catalog["patterns"] = patterns or {"patterns": []}
    catalog["pattern_rates"] = pattern_rates or {"patterns": {}}
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


def test_records_that_pass_now_count_in_their_nearest_pattern():
    """A fixed record is in no cluster of this run's failures; pattern_rates assigned it to
    the nearest pattern, and the per-pattern comparison counts it there."""
    base, cur = runs(fixed=3, broken=2, still_failing=2, still_passing=1)
    patterns = {"patterns": [{"pattern_id": "P01", "cluster_id": "c0", "member_ids": ["r003", "r004", "r005"]},
                             {"pattern_id": "P02", "cluster_id": "c1", "member_ids": ["r006"]}]}
    rates = {"patterns": {"c0": {"pass_ids": ["r000", "r001"]}, "c1": {"pass_ids": ["r002", "r007"]}}}
    per = run_pipeline(base, cur, patterns, rates)["run_comparison"]["per_pattern"]
    assert (per["P01"]["fixed"], per["P01"]["broken"], per["P01"]["still_failing"]) == (2, 2, 1)
    assert (per["P02"]["fixed"], per["P02"]["still_failing"], per["P02"]["still_passing"]) == (1, 1, 1)
    without = run_pipeline(base, cur, patterns)["run_comparison"]["per_pattern"]
    assert without["P01"]["fixed"] == 0          # failures only: the fixed ones are nowhere


class _Answers:
    """A model whose answer to prompt ``i`` is right (the reference) where ``right(i)``."""

    def __init__(self, name: str, right):
        self.name, self.backend, self.right = name, "scripted", right

    def describe(self):
        return {"model": self.name, "backend": self.backend}

    def generate(self, convs, config, progress=None):
        from phase1b_kedro.llm import ChatResult

        out = []
        for c in convs:
            i = int(c[-1]["content"].split()[-1].rstrip("?"))
            out.append(ChatResult(text=f"The answer is {i * 7 if self.right(i) else i * 7 + 1}.", tokens_out=5))
        return out


def test_two_models_generated_judged_and_compared_in_one_run(tmp_path):
    """The two_models pipeline's shape: generation + judging for the model under test and, in
    the baseline namespace, for a second model, then compare. 25 of each transition."""
    from kedro.io import MemoryDataset

    from phase1b_kedro.pipelines.baseline import create_pipeline as baseline
    from phase1b_kedro.pipelines.generation import create_pipeline as generation
    from phase1b_kedro.pipelines.judging import create_pipeline as judging
    from phase1b_kedro.resource_datasets import CheckpointDataset
    from tests.conftest import load_params
    from tests.support.factories import judge_resources

    records = [{"id": f"q{i:03d}", "category": CATS[i % 2], "prompt": f"What is 7 times {i}?",
                "messages": [{"role": "user", "content": f"What is 7 times {i}?"}], "reference": str(i * 7),
                "source": "test", "meta": {}} for i in range(100)]
    # current right on 0-24 (fixed) and 75-99 (still passing); baseline right on 25-49 (broken) and 75-99
    current = _Answers("tuned", lambda i: i < 25 or i >= 75)
    base_model = _Answers("base", lambda i: 25 <= i < 50 or i >= 75)
    params, resources = judge_resources(load_params("judging"))
    outputs = ["judged_results", "baseline_judged_results", "run_comparison", "baseline.judge_summary",
               "judge_summary", "baseline.model_outputs", "run_comparison_chart"]
    catalog = DataCatalog({name: Kept() for name in outputs} | resources | {
        "generation_model": MemoryDataset(current, copy_mode="assign"),
        "baseline.generation_model": MemoryDataset(base_model, copy_mode="assign"),
        "generation_checkpoint": CheckpointDataset(str(tmp_path / "ckpt"))})
    catalog["test_dataset"] = records
    catalog["human_labels"] = []
    catalog["patterns"] = {"patterns": []}
    catalog["pattern_rates"] = {"patterns": {}}
    catalog["params:generation"] = load_params("generation")
    catalog["params:judging"] = params
    catalog["params:judging.failure_threshold"] = params["failure_threshold"]
    SequentialRunner().run(generation() + judging() + baseline() + create_pipeline(), catalog)
    o = catalog.load("run_comparison")["overall"]
    assert (o["fixed"], o["broken"], o["still_failing"], o["still_passing"]) == (25, 25, 25, 25)
    assert o["mcnemar_p"] == pytest.approx(1.0)
    assert {r["generation"]["model"] for r in catalog.load("baseline.model_outputs")} == {"base"}
    assert catalog.load("judge_summary")["passed"] == catalog.load("baseline.judge_summary")["passed"] == 50
