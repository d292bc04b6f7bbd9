"""A sampling scan that is stopped (SIGTERM) or killed leaves no worker and no spill behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]

SCAN = """
import sys
import phase1b_kedro.sampling as s
from phase1b_kedro.datasets import RawInput
s.PARALLEL_MIN_BYTES = 1000
s.scan_input(RawInput(sys.argv[1]), {"scan_workers": 2})
"""


def _big_file(path: Path, n: int = 150_000) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"prompt": f"What is {i} plus {i}? " * 8, "response": str(2 * i)}) + "\n")
    return path


def _scan_with_two_workers(tmp_path: Path) -> tuple[subprocess.Popen, list[psutil.Process], Path]:
    """A parallel scan of a generated file in a child process, once both its workers run;
    its temporary directory is ``tmp_path/tmp`` (returned), its stderr piped."""
    data = _big_file(tmp_path / "big.jsonl")
    spills = tmp_path / "tmp"
    spills.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TMPDIR": str(spills)}
    proc = subprocess.Popen([sys.executable, "-c", SCAN, str(data)], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    workers: list[psutil.Process] = []
    while time.monotonic() < deadline and len(workers) < 2:
        workers = psutil.Process(proc.pid).children()
        time.sleep(0.05)
    assert len(workers) == 2, "the scan did not start its workers"
    return proc, workers, spills


@pytest.mark.skipif(sys.platform != "linux", reason="signals and PR_SET_PDEATHSIG as on Linux")
def test_sigterm_stops_the_scan_and_cleans_up(tmp_path):
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / "phase1b-scan-999999999-stale").mkdir()  # left by a process that no longer exists
    proc, workers, spills = _scan_with_two_workers(tmp_path)
    assert not (spills / "phase1b-scan-999999999-stale").exists()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    assert list(spills.iterdir()) == []


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on Linux")
def test_a_worker_killed_mid_scan_fails_the_run_instead_of_hanging(tmp_path):
    proc, workers, spills = _scan_with_two_workers(tmp_path)
    workers[0].kill()  # as the kernel's OOM killer would
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "BrokenProcessPool" in stderr
    psutil.wait_procs(workers, timeout=10)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in workers)
    assert list(spills.iterdir()) == []


DEDUPLICATE_SLOWLY = """
import pathlib, sys, time
import phase1b_kedro.pipelines.sampling.nodes as nodes
from phase1b_kedro.datasets import RawInput
deduplicate = nodes.deduplicate
def slow(*args, **kwargs):
    pathlib.Path(sys.argv[2]).write_text("deduplicating")
    time.sleep(60)
    return deduplicate(*args, **kwargs)
nodes.deduplicate = slow
nodes.index_records(RawInput(sys.argv[1]), {"scan_workers": 1})
"""


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on Linux")
def test_sigterm_after_the_scan_removes_the_on_disk_index_and_logs(tmp_path):
    """Once the scan is done the index and the rejections live on disk; a SIGTERM during
    de-duplication (still the indexing node) removes them too."""
    data = tmp_path / "small.jsonl"
    data.write_bytes(_big_file(tmp_path / "x.jsonl", 2000).read_bytes() + b"{bad\n")
    spills, started = tmp_path / "tmp", tmp_path / "started"
    spills.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TMPDIR": str(spills)}
    proc = subprocess.Popen([sys.executable, "-c", DEDUPLICATE_SLOWLY, str(data), str(started)], env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), proc.stderr.read() if proc.poll() is not None else "de-duplication did not start"
    assert any(p.name.startswith("phase1b-scan-") for p in spills.iterdir())  # the index and the rejections
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert list(spills.iterdir()) == []


@pytest.mark.skipif(sys.platform != "linux", reason="flock as on Linux")
def test_a_live_runs_files_are_told_by_their_lock_not_their_pid(tmp_path, monkeypatch):
    """A run in another PID namespace (a container sharing the temporary directory) has a pid
    that does not exist here: its lock, not its pid, says that it is alive."""
    import fcntl
    import tempfile

    from phase1b_kedro import sampling

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    live = tmp_path / "phase1b-scan-999999999-live"  # no such pid here
    live.mkdir()
    fd = os.open(live / "owner.lock", os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held, as its owner does while it runs
    dead = tmp_path / "phase1b-scan-1-dead"  # pid 1 exists: only its free lock says it is dead
    dead.mkdir()
    (dead / "owner.lock").touch()
    monkeypatch.setattr(sampling, "_SESSION", {})
    mine = Path(sampling.temp_dir())  # this process's own: locked before it got its name
    assert mine.name.startswith(f"phase1b-scan-{os.getpid()}-") and not list(tmp_path.glob(".phase1b-claim-*"))
    sampling._remove_stale_spills()
    assert live.exists() and mine.exists() and not dead.exists()
    os.close(fd)  # its owner is gone
    sampling._remove_stale_spills()
    assert not live.exists() and mine.exists()
