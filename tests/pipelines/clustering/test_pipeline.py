"""Clustering: planted groups are recovered, noise is kept, runs are deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from phase1b_kedro.clustering import UNCLUSTERED, ClusteringConfig, cluster_failures, failure_text
from phase1b_kedro.pipelines.clustering.nodes import cluster_failures_node, embed_failures
from tests.conftest import load_params
from tests.support.clustering import planted

@pytest.fixture(scope="module")
def embedded():
    records, truth = planted()
    params = load_params("clustering")
    return records, truth, embed_failures(records, params), params


def test_planted_groups_are_recovered_and_noise_is_kept(embedded):
    records, truth, emb, params = embedded
    result = cluster_failures_node(records, emb, params)
    label_of = {p["id"]: p["cluster_id"] for p in result["points"]}
    topic_ids = [i for i, t in enumerate(truth) if t >= 0]
    ari = adjusted_rand_score([truth[i] for i in topic_ids], [label_of[records[i]["id"]] for i in topic_ids])
    # 0.9: at most a handful of the 80 planted prompts land in the wrong group or in noise
    # (chance level is 0; perfect is 1).
    assert ari >= 0.9, (ari, result["n_clusters"])
    assert result["n_clusters"] == 4
    assert sum(c["size"] for c in result["clusters"]) + result["n_unclustered"] == len(records)
    assert result["unclustered"]["cluster_id"] == UNCLUSTERED and result["n_unclustered"] >= 3
    noise_ids = {r["id"] for r in records if r["id"].startswith("noise")}
    assert len(noise_ids & set(result["unclustered"]["member_ids"])) >= 3
    biggest = result["clusters"][0]
    assert biggest["size"] >= 18 and len(biggest["categories"]) == 1
    assert set(biggest["representative_ids"]) <= set(biggest["member_ids"]) and len(biggest["representative_ids"]) == 5
    assert result["stability"]["all"]["ari_mean"] >= 0.8
    assert all(len(c["centroid_2d"]) == 2 for c in result["clusters"])


def test_clustering_is_deterministic(embedded):
    records, _, emb, params = embedded
    assert cluster_failures_node(records, emb, params)["points"] == cluster_failures_node(records, emb, params)["points"]
    again = embed_failures(records, params)
    assert np.allclose(again["vectors"], emb["vectors"], atol=1e-6)


@pytest.mark.parametrize("clusterer", [
    {"class": "sklearn.cluster.KMeans", "kwargs": {"n_clusters": 4, "n_init": 10}},
    {"class": "sklearn.cluster.AgglomerativeClustering", "kwargs": {"n_clusters": 4, "linkage": "ward"}},
])
def test_other_algorithms(embedded, clusterer):
    records, truth, emb, params = embedded
    result = cluster_failures_node(records, emb, {**params, "clusterer": clusterer})
    label_of = {p["id"]: p["cluster_id"] for p in result["points"]}
    topic_ids = [i for i, t in enumerate(truth) if t >= 0]
    assert adjusted_rand_score([truth[i] for i in topic_ids], [label_of[records[i]["id"]] for i in topic_ids]) >= 0.8
    assert result["n_unclustered"] == 0


def test_noise_can_be_assigned_and_per_category(embedded):
    records, _, emb, params = embedded
    assigned = cluster_failures_node(records, emb, {**params, "assign_noise": True})
    assert sum(c["size"] for c in assigned["clusters"]) == len(records)
    assert sum(c["noise_assigned"] for c in assigned["clusters"]) == assigned["n_unclustered"]
    per_cat = cluster_failures_node(records, emb, {**params, "per_category": True})
    for c in per_cat["clusters"]:
        assert len(c["categories"]) == 1 and c["cluster_id"].startswith(next(iter(c["categories"])))


def test_edge_cases():
    config = ClusteringConfig()
    empty = cluster_failures([], np.zeros((0, 384), dtype=np.float32), config)
    assert empty["n_clusters"] == 0 and empty["points"] == []
    two = cluster_failures([{"id": "a"}, {"id": "b"}], np.eye(2, 384, dtype=np.float32), config)
    assert two["n_unclustered"] == 2
    with pytest.raises(ValueError, match=r"clustering\.clusterer\.class: cannot import 'sklearn\.cluster\.Nope'"):
        ClusteringConfig.from_params({"clusterer": {"class": "sklearn.cluster.Nope"}})
    with pytest.raises(ValueError):
        failure_text({"prompt": "x"}, ["prompt", "nonsense"])
    with pytest.raises(ValueError, match="do not match"):
        cluster_failures_node([{"id": "a"}], {"ids": np.asarray(["b"]), "vectors": np.zeros((1, 4))}, {})


def test_failure_text_uses_rationale_only_when_it_says_something():
    r = {"prompt": "P", "output": "O", "judge": {"source": "llm", "rationale": "wrong unit"}}
    assert failure_text(r, ["prompt", "rationale"]) == "P\nwrong unit"
    assert failure_text({**r, "judge": {"source": "similarity", "rationale": "cosine 0.2"}}, ["prompt", "rationale"]) == "P"


def test_pattern_rates_assign_passes_to_the_nearest_pattern():
    from phase1b_kedro.pipelines.clustering.nodes import pattern_rates

    def rec(i, prompt, passed, category):
        return {"id": f"r{i}", "prompt": prompt, "passed": passed, "category": category}

    judged = [rec(0, "Convert 5 miles to kilometres.", False, "math"), rec(1, "Convert 3 miles to kilometres.", False, "math"),
              rec(2, "Convert 9 miles to kilometres.", True, "math"),
              rec(3, "Write a poem about the sea.", False, "creative"), rec(4, "Write a poem about waves.", True, "creative"),
              rec(5, "Write a poem about the ocean.", True, "creative"), rec(6, "Odd one", None, "other")]
    clusters = {"clusters": [{"cluster_id": "c01", "size": 2, "member_ids": ["r0", "r1"]},
                             {"cluster_id": "c02", "size": 1, "member_ids": ["r3"]}],
                "unclustered": {"cluster_id": "unclustered", "size": 0, "member_ids": []}}
    out = pattern_rates(clusters, judged, {})
    assert out["passes_assigned"] == 3
    miles, poems = out["patterns"]["c01"], out["patterns"]["c02"]
    assert (miles["failures"], miles["passes"], poems["failures"], poems["passes"]) == (2, 1, 1, 2)
    assert miles["failure_rate"] == pytest.approx(2 / 3, abs=1e-4) and poems["failure_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert miles["lift"] == pytest.approx(1.0) and miles["failure_rate_ci95"][0] < 2 / 3 < miles["failure_rate_ci95"][1]
