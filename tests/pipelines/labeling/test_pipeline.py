"""Labeling: c-TF-IDF keywords, offline and LLM labels (real server, fallback), the plan."""

from __future__ import annotations

import json

import pytest

from phase1b_kedro.labeler import contamination_check, ctfidf_keywords, parse_label, plan_counts
from phase1b_kedro.cache import ResponseCache
from phase1b_kedro.llm import LazyClient
from phase1b_kedro.pipelines.clustering.nodes import cluster_failures_node, embed_failures
from phase1b_kedro.pipelines.labeling.nodes import label_patterns, plan_data_generation, render_plan_markdown
from tests.conftest import load_params
from tests.support.fake_judge_server import FakeJudge, Script
from tests.support.clustering import planted


def test_ctfidf_picks_the_planted_keywords():
    docs = {
        "a": ["the quick zebra jumps over the fence", "a zebra eats grass", "zebra stripes are black"],
        "b": ["compile the kernel module", "the kernel panics at boot", "kernel logs show errors"],
        "c": ["bake bread with yeast", "bread needs flour and yeast", "fresh bread every morning"],
    }
    keywords = ctfidf_keywords(docs, top_k=3, ngram_range=(1, 1))
    assert keywords["a"][0] == "zebra" and keywords["b"][0] == "kernel" and keywords["c"][0] == "bread"
    assert "yeast" in keywords["c"]
    assert ctfidf_keywords({"x": ["12 + 7"], "y": ["3 * 4"]}) == {"x": [], "y": []}   # no words: no keywords


@pytest.mark.parametrize(("sizes", "budget", "minimum"), [
    ({"P01": 50, "P02": 30, "P03": 3, "unclustered": 17}, 1000, 20),
    ({"P01": 1, "P02": 1, "P03": 1}, 10, 20),         # minimums above the budget are lowered evenly
    ({"P01": 7}, 333, 20),
    ({"P01": 999, "P02": 1}, 100, 5),
])
def test_plan_counts_add_up_to_the_budget(sizes, budget, minimum):
    counts = plan_counts(sizes, budget, minimum)
    assert sum(counts.values()) == budget
    assert all(c >= min(minimum, budget // len(sizes)) for c in counts.values())
    for a in sizes:   # a bigger pattern never gets fewer examples
        assert all(counts[a] >= counts[b] for b in sizes if sizes[a] > sizes[b])


@pytest.fixture(scope="module")
def clustered():
    records, _ = planted()
    for r in records:
        r.update(reference=f"reference for {r['id']}", output=f"wrong output for {r['id']}")
    params = load_params("clustering")
    return records, cluster_failures_node(records, embed_failures(records, params), params)


def test_offline_patterns_and_plan(clustered):
    records, clusters = clustered
    params = load_params("labeling")
    patterns = label_patterns(records, clusters, LazyClient("transformers", "unused"), ResponseCache(None), params)
    assert patterns["labeling"]["mode"] == "offline"
    labels = {p["label"] for p in patterns["patterns"]}
    assert len(labels) == len(patterns["patterns"])                              # distinct names
    by_topic = {p["member_ids"][0].split("-")[0]: p for p in patterns["patterns"] if p["pattern_id"] != "unclustered"}
    assert "fraction" in " ".join(by_topic["fractions"]["keywords"]) and "orders" in by_topic["sql"]["keywords"]
    assert patterns["patterns"][-1]["pattern_id"] == "unclustered"
    assert sum(p["size"] for p in patterns["patterns"]) == len(records)
    plan, eval_set = plan_data_generation(patterns, records, params)
    assert plan["allocated"] == plan["total_examples"] == 1000
    for entry in plan["patterns"]:
        assert 3 <= len(entry["seed_examples"]) <= 5
        assert all(s["output"].startswith("wrong output") for s in entry["seed_examples"])
        assert f"Write {entry['examples_to_generate']} new" in entry["teacher_instruction"]
    md = render_plan_markdown(plan)
    assert md.startswith("# Data generation plan") and md.count("\n## ") == len(plan["patterns"])
    # the held-out evaluation set never feeds a seed, and each pattern of 2+ failures holds some out
    seeds = {s["id"] for e in plan["patterns"] for s in e["seed_examples"]}
    held = {r["id"] for r in eval_set}
    assert held and not held & seeds and plan["heldout_records"] == len(eval_set)
    assert all(e["heldout_ids"] for e in plan["patterns"] if e["failures"] >= 2)
    assert {r["pattern_id"] for r in eval_set} <= {e["pattern_id"] for e in plan["patterns"]}


def test_contamination_check_finds_a_planted_near_duplicate(clustered):
    records, clusters = clustered
    params = load_params("labeling")
    patterns = label_patterns(records, clusters, LazyClient("transformers", "unused"), ResponseCache(None), params)
    plan, eval_set = plan_data_generation(patterns, records, params)
    assert plan["contamination_check"]["pairs_checked"] > 0
    # templated prompts ("Simplify 3/4", "Simplify 5/8") are near-duplicates of each other: reported, not hidden
    assert all(f["cosine"] >= 0.9 for f in plan["contamination_check"]["flagged"])
    # plant: a held-out prompt that is a seed's prompt with one word changed
    seed = plan["patterns"][0]["seed_examples"][0]
    planted = [*eval_set, {"id": "planted", "pattern_id": "P01", "prompt": seed["prompt"].replace("the", "a", 1)}]
    check = contamination_check(plan["patterns"], planted, 0.9)
    hits = [f for f in check["flagged"] if f["heldout_id"] == "planted" and f.get("seed_id") == seed["id"]]
    assert hits and hits[0]["cosine"] >= 0.9


def test_llm_labels_are_used_cached_and_fall_back_when_unusable(clustered, tmp_path, allow_local_http):
    records, clusters = clustered
    good = json.dumps({"label": "Fraction arithmetic", "description": "Adding fractions.",
                       "what_model_gets_wrong": "Forgets to simplify."})
    replies = iter([good, "I cannot help with that."] + [json.dumps({"label": ""})] * 10)
    with FakeJudge(Script(reply=lambda v, i, n: next(replies))) as server:
        params = load_params("labeling")
        params["llm"]["enabled"] = True
        labeler = LazyClient("openai_compatible", "labeler", {"base_url": server.base_url, "concurrency": 1})
        patterns = label_patterns(records, clusters, labeler, ResponseCache(tmp_path / "c.sqlite"), params)
        sources = [p["label_source"] for p in patterns["patterns"]]
        assert sources[0] == "llm" and patterns["patterns"][0]["label"] == "Fraction arithmetic"
        assert sources[1:-1] == ["offline_fallback"] * (len(sources) - 2) and sources[-1] == "fixed"
        assert patterns["patterns"][1]["fallback_reason"] == "unusable reply"
        assert patterns["labeling"]["fallbacks"] == len(sources) - 2
        calls = len(server.requests)
        again = label_patterns(records, clusters, labeler, ResponseCache(tmp_path / "c.sqlite"), params)  # from the cache
        assert again["patterns"][0]["label_source"] == "llm_cached"
        assert len(server.requests) == calls + len(sources) - 2  # only the fallbacks are asked again


def test_parse_label():
    assert parse_label('```json\n{"label": "A", "description": "B", "what_model_gets_wrong": "C"}\n```')["label"] == "A"
    assert parse_label('{"label": "A"}') is None
    assert parse_label("nonsense") is None


@pytest.mark.slow
def test_llm_labeling_against_a_real_llama_cpp_server(clustered, tmp_path, llama_server, allow_local_http):
    records, clusters = clustered
    params = load_params("labeling")
    params["llm"].update(enabled=True, structured_output="json_object", max_new_tokens=120)
    labeler = LazyClient("openai_compatible", "smollm2", {"base_url": llama_server, "concurrency": 2})
    patterns = label_patterns(records, clusters, labeler, ResponseCache(tmp_path / "c.sqlite"), params)
    named = [p for p in patterns["patterns"] if p["pattern_id"] != "unclustered"]
    assert patterns["labeling"]["llm_calls"] == len(named)
    for p in named:   # a real (tiny) model: a validated label, or the offline one with the reason
        assert p["label_source"] in ("llm", "offline_fallback") and p["label"] and p["description"]
        if p["label_source"] == "offline_fallback":
            assert p["fallback_reason"]
