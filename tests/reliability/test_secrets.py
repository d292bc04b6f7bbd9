"""Secrets: the judge token (from conf/local/credentials.yml) reaches the judge server and
nothing else: not the logs, outputs, caches, checkpoints, the report or the kedro-viz build."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import copy_project
from tests.support.fake_judge_server import FakeJudge
from tests.reliability.conftest import record

MARKER = "hf_SECRETMARKER_do_not_leak_4c1d"


@pytest.mark.slow
def test_token_never_leaks_into_any_artefact(tmp_path, project_root, allow_local_http):
    root = copy_project(tmp_path)
    # the environment's own credentials file (git-ignored), read by Kedro for `--env judge_70b`
    (root / "conf/judge_70b/credentials.yml").write_text(f"hf:\n  token: {MARKER}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["KEDRO_DISABLE_TELEMETRY"] = "1"
    with FakeJudge() as judge:
        params = (f"sampling.num_samples=18,sampling.min_per_category=3,generation.decoding.max_new_tokens=8,"
                  f"judge_base_url={judge.base_url},judging.protocol.agreement_sample=4,"
                  "clustering.clusterer.kwargs.min_cluster_size=3")
        run = subprocess.run([sys.executable, "-m", "kedro", "run", "--env", "judge_70b", "--params", params],
                             cwd=root, env=env, capture_output=True, timeout=900)
        assert run.returncode == 0, run.stderr.decode()[-3000:]
        viz = subprocess.run([sys.executable, "-m", "kedro", "viz", "build", "--include-previews"], cwd=root, env=env,
                             capture_output=True, timeout=300)
        assert viz.returncode == 0, viz.stderr.decode()[-3000:]
        auth = {r["headers"].get("authorization") for r in judge.requests}
    assert judge.requests and auth == {f"Bearer {MARKER}"}          # the token did reach the judge
    assert (root / "data/08_reporting/report.html").is_file() and (root / "build/index.html").is_file()
    logs = run.stdout + run.stderr + viz.stdout + viz.stderr
    assert MARKER.encode() not in logs
    scanned, leaks = 0, []
    for path in root.rglob("*"):
        if path.is_file() and path.name != "credentials.yml":
            scanned += 1
            if MARKER.encode() in path.read_bytes():
                leaks.append(str(path.relative_to(root)))
    assert leaks == []
    record("secrets", {"files_scanned": scanned, "log_bytes_scanned": len(logs), "leaks": 0,
                       "requests_with_token": len(judge.requests)})
