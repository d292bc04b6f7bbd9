"""Browser tests in headless Debian Chromium (Playwright's Python package, no browser
download): report.html renders its charts with no console error and runs no script from
the data; `kedro viz build` renders the pipeline. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from phase1b_kedro.pipelines.compare.nodes import compare_runs, plot_run_comparison
from phase1b_kedro.pipelines.reporting import nodes as rn
from tests.conftest import copy_project
from tests.support.report import HOSTILE, report_inputs

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} missing: apt-get install chromium (the CI script does)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _report(tmp_path: Path) -> Path:
    d = report_inputs()
    baseline = [{**r, "passed": not r["passed"] if k < 4 else r["passed"]} for k, r in enumerate(d["judged"])]
    comparison = compare_runs(baseline, d["judged"], d["patterns"])
    html = rn.build_report(
        d["summary"], d["generation"], d["clusters"], d["patterns"], d["plan"],
        rn.plot_failure_rates(d["summary"]), rn.plot_score_distribution(d["judged"], 7),
        rn.plot_verdict_sources(d["judged"]), rn.plot_cluster_map(d["clusters"], d["patterns"], d["failures"]),
        rn.plot_pattern_sizes(d["patterns"]), comparison, plot_run_comparison(comparison), {"env": "test"})
    path = tmp_path / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


def test_report_renders_charts_offline_and_runs_no_script_from_the_data(browser, tmp_path):
    path = _report(tmp_path)
    page = browser.new_page(viewport={"width": 1280, "height": 2000})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    for chart in ("failure-rate", "scores", "cluster-map", "pattern-sizes", "sources", "comparison"):
        page.wait_for_selector(f"#chart-{chart} .main-svg", timeout=20_000)
        assert page.locator(f"#chart-{chart} .plot-container").count() == 1
    assert page.locator("#chart-failure-rate .point, #chart-failure-rate path.surface, #chart-failure-rate .bars path").count() >= 6
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert page.evaluate("window.__pwned") is None          # no injected script or handler ran
    assert HOSTILE in page.locator("#pattern-P01").inner_text()   # shown as text, escaped
    assert page.locator("#pattern-P01 img").count() == 0
    ticks = " ".join(page.locator("#chart-pattern-sizes .ytick text").all_text_contents())
    legend = " ".join(page.locator("#chart-cluster-map .legendtext").all_text_contents())
    for shown in (ticks, legend):                             # chart labels escaped once: quotes read as quotes
        assert "&quot;" not in shown and "&lt;" not in shown and '<script>window.__pwned = 1</script>' in shown
    page.click("a[href='#pattern-P01']")                     # pattern table -> examples
    assert page.evaluate("location.hash") == "#pattern-P01"
    section = page.locator("#comparison").inner_text()          # before/after: 2 fixed, 2 broken of 12
    assert "2 fixed" in section and "2 broken" in section and "McNemar" in section
    assert errors == []
    assert all(u.startswith("file://") or u.startswith("data:") for u in requests), requests   # nothing fetched
    page.close()


def test_kedro_viz_build_renders_the_pipeline(browser, tmp_path, project_root):
    build = tmp_path / "viz"
    build.mkdir()
    copy_project(build, with_raw_data=False)
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    subprocess.run([sys.executable, "-m", "kedro", "viz", "build"], cwd=build, env=env, check=True,
                   capture_output=True, timeout=300)
    site = build / "build"
    assert (site / "index.html").is_file() and (site / "api" / "main").is_file()
    import json

    graph = json.loads((site / "api" / "main").read_text())
    layer_of = {n["name"]: n.get("layer") for n in graph["nodes"] if n["type"] == "data"}
    for resource in ("generation_model", "judge_model", "judge_cache", "label_cache", "generation_checkpoint"):
        assert layer_of.get(resource) == "models", resource            # models and caches are datasets
    assert graph["layers"][:2] == ["raw", "models"]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        page.wait_for_selector(".pipeline-node", timeout=30_000)
        text = page.locator(".pipeline-graph, body").first.inner_text()
        for name in ("score_outputs_node", "apply_threshold_node", "cluster_failures_node", "build_report_node",
                     "generate_outputs_node", "report_html", "judge_summary"):
            pretty = name.removesuffix("_node").replace("_", " ")
            assert name in text or pretty in text.lower(), name
        assert page.locator(".pipeline-node").count() >= 30
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "kedro-viz.png"))
        assert errors == []
        page.close()
    finally:
        server.shutdown()
        server.server_close()
