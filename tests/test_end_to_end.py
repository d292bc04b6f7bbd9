"""The whole default pipeline on a small sample of the bundled data with the real bundled
model (generation), then the notebook executed against its outputs (nbclient)."""

from __future__ import annotations

import json
import os

import nbformat
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from nbclient import NotebookClient

from tests.conftest import copy_project

EXPECTED = [
    "data/05_model_input/test_dataset.jsonl", "data/07_model_output/model_outputs.jsonl",
    "data/07_model_output/judge_scores.jsonl", "data/07_model_output/judged_results.jsonl",
    "data/07_model_output/failures.jsonl", "data/07_model_output/judge_summary.json",
    "data/07_model_output/failure_embeddings.npz", "data/07_model_output/clusters.json",
    "data/08_reporting/patterns.json", "data/08_reporting/data_generation_plan.json",
    "data/08_reporting/data_generation_plan.md", "data/08_reporting/cluster_map_chart.json",
    "data/08_reporting/report.html", "data/08_reporting/run_comparison.json",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, project_root):
    root = copy_project(tmp_path_factory.mktemp("tiny"))
    params = {
        "sampling": {"num_samples": 30, "min_per_category": 3},
        "generation": {"decoding": {"max_new_tokens": 12}},
        "clustering": {"clusterer": {"kwargs": {"min_cluster_size": 3}}, "stability": {"runs": 2}},
        "labeling": {"plan": {"total_examples": 200, "min_per_pattern": 5}},
    }
    cwd = os.getcwd()
    os.chdir(root)
    try:
        bootstrap_project(root)
        with KedroSession.create(project_path=root, runtime_params=params) as session:
            session.run()
    finally:
        os.chdir(cwd)
    return root


@pytest.mark.slow
def test_default_pipeline_end_to_end(tiny_run):
    missing = [p for p in EXPECTED if not (tiny_run / p).is_file()]
    assert not missing
    outputs = [json.loads(x) for x in (tiny_run / "data/07_model_output/model_outputs.jsonl").open()]
    assert len(outputs) == 30 and all(o["generation"]["status"] == "ok" for o in outputs)
    summary = json.loads((tiny_run / "data/07_model_output/judge_summary.json").read_text())
    assert summary["items_in"] == 30 == summary["passed"] + summary["failed"] + summary["unjudged"]
    judged = [json.loads(x) for x in (tiny_run / "data/07_model_output/judged_results.jsonl").open()]
    with_tests = [r for r in judged if r["meta"].get("tests")]
    assert with_tests and all(r["judge"]["source"] == "execution" for r in with_tests)   # code judged by running it
    assert summary["execution"]["executed"] == len(with_tests)
    assert not [r for r in judged if r["judge"]["source"] == "similarity" and len(r["reference"].split()) <= 6]
    clusters = json.loads((tiny_run / "data/07_model_output/clusters.json").read_text())
    assert clusters["n_failures"] == summary["failed"]
    assert sum(c["size"] for c in clusters["clusters"]) + clusters["n_unclustered"] == summary["failed"]
    plan = json.loads((tiny_run / "data/08_reporting/data_generation_plan.json").read_text())
    assert plan["allocated"] == 200
    html = (tiny_run / "data/08_reporting/report.html").read_text()
    assert "Failure analysis" in html and html.count('class="plotly-graph-div"') == 5   # no baseline: no section
    assert json.loads((tiny_run / "data/08_reporting/run_comparison.json").read_text())["baseline_given"] is False
    failed = [r for r in judged if r["passed"] is False]
    assert failed and all(r["failure_mode"] for r in failed) and sum(summary["failure_modes"].values()) == len(failed)


@pytest.mark.slow
def test_notebook_runs_on_the_pipeline_outputs(tiny_run, project_root, monkeypatch):
    monkeypatch.setenv("PHASE1B_PROJECT", str(tiny_run))
    nb = nbformat.read(project_root / "notebooks/failure_analysis.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(project_root / "notebooks")}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = json.dumps(outputs)
    assert "outputs: " in text and "examples_to_generate" in text and "application/vnd.plotly.v1+json" in text
