"""End to end through Kedro itself: a session run and the CLI forms users type."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

OUTPUTS = ("test_dataset.jsonl", "test_dataset_stats.json", "rejected_records.jsonl")


def _digests(root: Path) -> dict[str, str]:
    folder = root / "data" / "05_model_input"
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in OUTPUTS}


def test_session_runs_sampling(project_root):
    bootstrap_project(project_root)
    with KedroSession.create(project_path=project_root) as session:
        session.run(pipeline_names=["sampling"])
    assert all(len(d) == 64 for d in _digests(project_root).values())


def test_cli_sampling_twice_is_byte_identical(project_root):
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1"}
    kedro = [sys.executable, "-m", "kedro", "run"]
    subprocess.run([*kedro, "--pipeline", "sampling"], cwd=project_root, env=env, check=True, capture_output=True)
    first = _digests(project_root)
    subprocess.run([*kedro, "--pipelines=sampling"], cwd=project_root, env=env, check=True, capture_output=True)
    assert _digests(project_root) == first
