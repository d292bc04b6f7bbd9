"""The batch judge audits itself (issue 16), against the scripted server: position and length
effects, permuted re-judging and voting, replies cut at the token budget, structured output
that an endpoint rejects, tokens and cost."""

from __future__ import annotations

import random
import statistics

import pytest

from phase1b_kedro.judges.audit import effect
from phase1b_kedro.judges.llm_judge import LLMJudgeConfig
from tests.support.fake_judge_server import FakeJudge, Script, length_biased, parse_items, position_biased
from tests.support.judging import assert_reconciles, honest, llm_params, make_records, run


def varied_lengths(n: int, seed: int = 3) -> list[dict]:
    """Free-text records whose output lengths are random and independent of correctness."""
    rng = random.Random(seed)
    out = []
    for i, r in enumerate(make_records(n)):
        reference = f"{r['reference']} " + "detail " * rng.randint(0, 80)
        output = reference if i % 2 == 0 else f"unrelated answer {i} " + "filler " * rng.randint(0, 80)
        out.append({**r, "reference": reference.strip(), "output": output.strip()})
    return out


# ---------------------------------------------------------------- position and length
@pytest.mark.parametrize("biased", [True, False])
def test_position_audit_finds_a_judge_that_favours_early_places(biased, tmp_path, allow_local_http):
    records = make_records(120)
    script = Script(score=position_biased(4.0) if biased else None)
    with FakeJudge(script) as judge:
        params = llm_params(judge, tmp_path, items_per_call=12, concurrency=4)
        out = run(records, params)
        first_requests = len(judge.requests)
        again = run(records, params)                     # everything from the cache ...
        assert len(judge.requests) == first_requests
    audit = out["judge_summary"]["position_length_audit"]
    position = audit["overall"]["position"]
    assert position["n"] == 120
    assert position["significant"] is biased
    if biased:
        assert position["spearman_rho"] < -0.2 and position["p_value"] < 0.01
        assert -5 < position["theil_sen_slope"] < -2       # ~4 points lost from first to last place
    else:
        assert position["p_value"] > 0.05
    assert list(audit["per_judge"]) == ["judge-test (llm_batch)"]
    assert audit["per_judge"]["judge-test (llm_batch)"]["position"]["significant"] is biased
    assert "11-25" in audit["position_by_call_size"]
    # ... and reports the same audit: each verdict's place is kept with it in the cache
    assert again["judge_summary"]["position_length_audit"] == audit
    assert all(r["judge"]["details"]["cached"] for r in again["judge_scores"])
    assert_reconciles(out, 120)


@pytest.mark.parametrize("biased", [True, False])
def test_length_audit_finds_a_judge_that_favours_long_outputs(biased, tmp_path, allow_local_http):
    records = varied_lengths(120)
    with FakeJudge(Script(score=length_biased(1.0) if biased else None)) as judge:
        out = run(records, llm_params(judge, tmp_path, items_per_call=10, concurrency=4))
    length = out["judge_summary"]["position_length_audit"]["overall"]["length"]
    assert length["n"] == 120
    assert length["significant"] is biased
    if biased:
        assert length["spearman_rho"] > 0.3 and length["theil_sen_slope"] > 0
    else:
        assert length["p_value"] > 0.05
    # position is not what this judge is biased by
    assert out["judge_summary"]["position_length_audit"]["overall"]["position"]["significant"] is False


def test_effect_statistics():
    x = list(range(20))
    assert effect(x, [10 - 0.5 * v for v in x])["spearman_rho"] == -1.0
    assert effect(x, [10 - 0.5 * v for v in x])["theil_sen_slope"] == pytest.approx(-0.5)
    assert effect(x, [5.0] * 20)["spearman_rho"] is None and effect(x, [5.0] * 20)["significant"] is False
    assert effect([1, 2], [3, 4])["n"] == 2


# ---------------------------------------------------------------- permuted re-judging
def test_permuted_rejudging_reports_spread_flips_and_calls(tmp_path, allow_local_http):
    records = make_records(24)
    with FakeJudge(Script(score=position_biased(8.0))) as judge:
        params = llm_params(judge, tmp_path, items_per_call=6, concurrency=1, permutations=3, permutation_sample=1.0)
        out = run(records, params)
        requests = [tuple(i["output"] for i in parse_items(r["body"]["messages"])) for r in judge.requests]
        n_before = len(judge.requests)
        again = run(records, params)
        assert len(judge.requests) == n_before            # permuted verdicts are cached too
    first, permuted = requests[:4], requests[4:]
    assert len(permuted) == 8                             # 4 batches x 2 other orders
    for batch in first:                                   # the same items, reversed, then shuffled
        assert permuted[:4].count(tuple(reversed(batch))) == 1
        assert sum(set(p) == set(batch) for p in permuted) == 2
    summary = out["judge_summary"]
    perm = summary["permutations"]
    assert perm["orders"] == 3 and perm["calls"] == 8 and perm["batches"] == perm["of_batches"] == 4
    assert summary["llm"]["calls_by_pass"] == {"first": 4, "permutations": 8, "agreement": 0}
    assert perm["items_compared"] == 24 and perm["score_spread"]["max"] >= 6
    assert perm["flips"] > 0 and 0 < perm["flip_share"] <= 1
    assert perm["vote"] is False
    by_id = {r["id"]: r for r in out["judge_scores"]}
    assert all(by_id[r]["score"] == by_id[r]["judge"]["details"]["order_scores"][0] for r in by_id)
    assert again["judge_summary"]["permutations"]["items_compared"] == 24


def test_vote_takes_the_median_over_orders(tmp_path, allow_local_http):
    records = make_records(12)
    with FakeJudge(Script(score=position_biased(8.0))) as judge:
        out = run(records, llm_params(judge, tmp_path, items_per_call=6, concurrency=2, permutations=3, vote=True))
    for r in out["judge_scores"]:
        details = r["judge"]["details"]
        assert r["score"] == statistics.median(details["order_scores"])
        assert details["first_order_score"] == details["order_scores"][0] and details["vote"] == "median of 3 orders"
    # a position-biased judge's first-place items lose their inflated score to the vote
    assert any(r["judge"]["details"]["first_order_score"] != r["score"] for r in out["judge_scores"])


def test_an_unbiased_judge_has_no_spread_and_a_sample_of_batches(tmp_path, allow_local_http):
    records = make_records(24)
    with FakeJudge() as judge:
        out = run(records, llm_params(judge, tmp_path, items_per_call=4, permutations=2, permutation_sample=0.5))
    perm = out["judge_summary"]["permutations"]
    assert perm["batches"] == 3 and perm["of_batches"] == 6 and perm["calls"] == 3 and perm["items_compared"] == 12
    assert perm["score_spread"]["max"] == 0 and perm["flips"] == 0
    assert [r["score"] for r in out["judge_scores"]] == honest(records)


# ---------------------------------------------------------------- reply budget
LONG_RATIONALE = " ".join(["because"] * 30)


def test_a_reply_cut_at_the_token_budget_is_truncated_and_rejudged_smaller(tmp_path, allow_local_http):
    records = make_records(8)
    script = Script(cut_at_max_tokens=True, rationale=LONG_RATIONALE)
    with FakeJudge(script) as judge:
        out = run(records, llm_params(judge, tmp_path, items_per_call=8, concurrency=1, tokens_per_item=40))
        sizes = [len(parse_items(r["body"]["messages"])) for r in judge.requests]
    llm = out["judge_summary"]["llm"]
    assert llm["truncated_replies"] >= 1 and llm["truncated_items"] >= 1
    assert llm["parse_failures"] == 0 and llm["invalid_items"] == 0     # a cut is not the judge's fault
    assert sizes[0] == 8 and min(sizes) < 8                             # re-judged in smaller calls
    assert [r["score"] for r in out["judge_scores"]] == honest(records)  # no cut score was kept
    assert out["judge_summary"]["unjudged"] == 0
    assert_reconciles(out, 8)


def test_the_default_budget_fits_the_rationale_it_asks_for(tmp_path, allow_local_http):
    records = make_records(8)
    with FakeJudge(Script(cut_at_max_tokens=True, rationale=LONG_RATIONALE)) as judge:
        params = llm_params(judge, tmp_path, items_per_call=8, concurrency=1, rationale_words=30)
        params.params["protocol"].pop("tokens_per_item")
        out = run(records, params)
        system = judge.requests[0]["body"]["messages"][0]["content"]
    assert "at most 30 words" in system
    llm = out["judge_summary"]["llm"]
    assert llm["truncated_replies"] == 0 and llm["calls"] == 1
    assert llm["reply_budget"]["tokens_per_item"] == 84


@pytest.mark.parametrize("batch_size,canaries,words,max_new", [(50, 2, 20, 4096), (50, 2, 60, 4096),
                                                               (10, 1, 20, 512), (200, 2, 5, 8192)])
def test_batches_are_sized_so_the_expected_reply_fits(batch_size, canaries, words, max_new):
    config = LLMJudgeConfig(items_per_call=batch_size, canaries=canaries, rationale_words=words, max_new_tokens=max_new)
    full = config.batch_cap + canaries
    assert config.batch_cap <= batch_size
    assert full * config.reply_tokens_per_item + 64 <= max_new          # the whole reply is budgeted ...
    assert config.reply_budget(full) == full * config.reply_tokens_per_item + 64   # ... never capped below it
    if (batch_size + canaries) * config.reply_tokens_per_item + 64 <= max_new:
        assert config.batch_cap == batch_size                            # lowered only when needed


# ---------------------------------------------------------------- structured output
@pytest.mark.parametrize("rejected,used", [({"json_schema"}, "json_object"),
                                           ({"json_schema", "json_object"}, "none")])
def test_structured_output_degrades_once_per_run(rejected, used, tmp_path, allow_local_http):
    records = make_records(12)
    with FakeJudge(Script(reject_formats=rejected)) as judge:
        out = run(records, llm_params(judge, tmp_path, items_per_call=3, concurrency=2, structured_output="json_schema"))
        kinds = [(r["body"].get("response_format") or {}).get("type") for r in judge.requests]
    so = out["judge_summary"]["llm"]["structured_output"]
    assert so["requested"] == "json_schema" and so["used"] == used
    assert [f["to"] for f in so["fallbacks"]] == ["json_object", "none"][: len(rejected)]
    assert all(f["status"] == 400 and "not supported" in f["error"] for f in so["fallbacks"])
    # one probe call per mode: each refused mode costs one request and is never sent again
    refused = [k in rejected for k in kinds]
    assert refused == [True] * len(rejected) + [False] * (len(kinds) - len(rejected))
    assert out["judge_summary"]["llm"]["format_rejections"] == sum(refused)
    assert out["judge_summary"]["llm"]["calls"] == 4 and out["judge_summary"]["llm"]["call_errors"] == 0
    assert [r["score"] for r in out["judge_scores"]] == honest(records)


# ---------------------------------------------------------------- tokens and cost
def test_tokens_from_usage_and_an_estimated_cost(tmp_path, allow_local_http):
    records = make_records(8)
    with FakeJudge() as judge:
        out = run(records, llm_params(judge, tmp_path, price_per_million_tokens={"input": 1000.0, "output": 4000.0}))
    tokens = out["judge_summary"]["tokens"]
    assert tokens["counted_by"] == {"reported": 2} and tokens["prompt"] > 0 and tokens["completion"] > 0
    cost = tokens["estimated_cost"]
    assert cost["input"] == pytest.approx(tokens["prompt"] / 1000, abs=1e-6)
    assert cost["total"] == pytest.approx(tokens["prompt"] / 1000 + tokens["completion"] * 4 / 1000, abs=1e-6)


def test_tokens_are_counted_when_the_endpoint_reports_none(tmp_path, allow_local_http):
    records = make_records(8)
    with FakeJudge(Script(usage=False)) as judge:
        out = run(records, llm_params(judge, tmp_path))
    tokens = out["judge_summary"]["tokens"]
    assert tokens["counted_by"] == {"estimate (4 characters per token)": 2}   # no tokenizer offline for "judge-test"
    assert tokens["prompt"] > 100 and tokens["completion"] > 10 and tokens["estimated_cost"] is None


# ---------------------------------------------------------------- the report
def test_report_shows_the_audit_the_fallback_tokens_and_permutations(tmp_path, allow_local_http):
    from phase1b_kedro.pipelines.compare.nodes import plot_run_comparison
    from phase1b_kedro.pipelines.reporting import nodes as rn
    from tests.support.report import report_inputs

    records = make_records(48)
    script = Script(score=position_biased(6.0), reject_formats={"json_schema"})
    with FakeJudge(script) as judge:
        out = run(records, llm_params(judge, tmp_path, items_per_call=12, permutations=2, structured_output="json_schema",
                                      price_per_million_tokens={"input": 0.5, "output": 1.5}))
    d = report_inputs()
    html = rn.build_report(
        out["judge_summary"], d["generation"], d["clusters"], d["patterns"], d["plan"],
        rn.plot_failure_rates(d["summary"]), rn.plot_score_distribution(d["judged"], 7),
        rn.plot_verdict_sources(d["judged"]), rn.plot_cluster_map(d["clusters"], d["patterns"], d["failures"]),
        rn.plot_pattern_sizes(d["patterns"]), {"baseline_given": False}, plot_run_comparison({}), {"env": "test"})
    health = html[html.index('id="judge-health"'):html.index('id="generation"')]
    position = health[health.index('id="position-audit"'):health.index('id="length-audit"')]
    assert "n = 48" in position and "<b>significant</b>" in position
    # here right answers are longer than wrong ones: the length row says it is not randomised
    assert "not randomised" in health[health.index('id="length-audit"'):health.index('id="permutations"')]
    assert "used <b>json_object</b>" in health and "json_schema → json_object (HTTP 400" in health
    assert "estimated cost" in health and "reported" in health
    assert "4 of 4 batches judged in 2 orders (4 extra calls)" in health


def test_the_cache_keeps_places_in_a_table_older_code_ignores(tmp_path):
    import sqlite3

    from phase1b_kedro.judges.cache import VerdictCache

    path = tmp_path / "c.sqlite"
    with VerdictCache(path) as cache:
        cache.put_many([("k1", 7.0, "ok", "j", {"position": 3, "batch_size": 12}), ("k2", 2.0, "no", "j", {})])
        assert cache.get_many(["k1", "k2", "k3"]) == {"k1": (7.0, "ok", {"position": 3, "batch_size": 12}),
                                                      "k2": (2.0, "no", {})}
    with sqlite3.connect(path) as db:   # the verdicts table as code before issue 16 writes it
        db.execute("INSERT INTO verdicts VALUES ('k3', 5.0, 'old', 'j', 0)")
    with VerdictCache(path) as cache:
        assert cache.get_many(["k3"]) == {"k3": (5.0, "old", {})}
