"""Report test inputs: every section filled, hostile text in every field a user's data reaches."""

from __future__ import annotations

from tests.support.judging import make_records

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">"</pre></div>'


def report_inputs() -> dict:
    """Judged records, failures, summary, clusters, patterns, plan and generation stats for ``build_report``."""
    records = make_records(12)
    records[1]["output"] = HOSTILE
    records[3]["prompt"] = HOSTILE
    judged = [{**r, "score": 9.0 if i % 2 == 0 else 2.0, "passed": i % 2 == 0,
               "judge": {"status": "ok", "source": "similarity" if i % 3 else "verifiable", "rationale": HOSTILE}}
              for i, r in enumerate(records)]
    failures = [r for r in judged if not r["passed"]]
    summary = {"items_in": 12, "judged": 12, "unjudged": 0, "unjudged_by_reason": {}, "passed": 6, "failed": 6,
               "failure_threshold": 7.0, "failure_rate": 0.5, "failure_rate_ci95": [0.25, 0.75],
               "per_category": {c: {"items": 2, "passed": 1, "failed": 1, "unjudged": 0, "failure_rate": 0.5,
                                    "failure_rate_ci95": [0.09, 0.91]}
                                for c in ("math", "code", "reasoning", "creative", "qa", "other")},
               "verdicts_by_source": {"similarity": 8, "verifiable": 4}, "strategy": "hybrid",
               "fallback": "similarity", "judge_model": HOSTILE, "judge_endpoint": None, "llm": None,
               "agreement": None}
    clusters = {"algorithm": "hdbscan",
                "settings": {"clusterer": {"class": "sklearn.cluster.HDBSCAN", "kwargs": {"min_cluster_size": 5}}},
                "stability": {"all": {"ari_mean": 0.9}},
                "embedding": {"text_fields": ["prompt"]},
                "points": [{"id": r["id"], "cluster_id": "c01" if k < 4 else "unclustered", "x": k, "y": k % 3,
                            "category": r["category"], "score": r["score"]} for k, r in enumerate(failures)]}
    ex = [{"id": r["id"], "category": r["category"], "prompt": r["prompt"], "reference": r["reference"],
           "output": r["output"], "score": r["score"], "judge_rationale": HOSTILE} for r in failures]
    patterns = {"n_patterns": 1, "patterns": [
        {"pattern_id": "P01", "cluster_id": "c01", "label": HOSTILE, "description": HOSTILE,
         "what_model_gets_wrong": HOSTILE, "label_source": "offline", "keywords": ["alpha", HOSTILE], "size": 4,
         "coverage": 0.667, "categories": {"code": 2, "creative": 2}, "mean_score": 2.0,
         "member_ids": [r["id"] for r in failures[:4]], "examples": ex[:4]},
        {"pattern_id": "unclustered", "cluster_id": "unclustered", "label": "Unclustered failures",
         "description": "d", "what_model_gets_wrong": "w", "label_source": "fixed", "keywords": [], "size": 2,
         "coverage": 0.333, "categories": {"qa": 2}, "mean_score": 2.0, "member_ids": [r["id"] for r in failures[4:]],
         "examples": ex[4:]}]}
    plan = {"total_examples": 100, "patterns": [{"pattern_id": "P01", "examples_to_generate": 67},
                                                {"pattern_id": "unclustered", "examples_to_generate": 33}]}
    generation = {"model": "bundled:smollm2-135m-instruct", "backend": "transformers", "device": "cpu",
                  "records_out": 12, "errored": 0, "truncated": 0}
    return dict(judged=judged, failures=failures, summary=summary, clusters=clusters, patterns=patterns, plan=plan,
                generation=generation)
