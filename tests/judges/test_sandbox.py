"""The bubblewrap sandbox holds: network, files, processes, CPU, memory, output, wall clock.

These run real ``bwrap`` (``make test`` installs Debian's bubblewrap). Each hostile program
must be stopped with its reason, and the machine must be unharmed afterwards: no process
left behind, nothing written outside the sandbox, and the next run works.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from phase1b_kedro.judges.execution import ExecutionConfig, run_one
from phase1b_kedro.judges.sandbox import Sandbox, SandboxConfig

LIMITS = SandboxConfig(cpu_s=2, wall_s=5, memory_mb=512, max_processes=16, max_output_bytes=100_000)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    box = Sandbox(LIMITS)
    ok, why = box.available()
    assert ok, f"the sandbox must work where the tests run (make test installs bubblewrap): {why}"
    return box


def _judge(sandbox: Sandbox, body: str) -> tuple[float, str, str]:
    """Judge ``body`` as the answer to a one-assert task; (score, outcome, rationale)."""
    record = {"prompt": "", "output": f"```python\n{body}\ndef f():\n    return 1\n```",
              "meta": {"tests": {"kind": "asserts", "asserts": ["assert f() == 1"], "setup": ""}}}
    v = run_one(record, sandbox, ExecutionConfig(sandbox=sandbox.config))
    return v.score, v.details["outcome"], v.rationale


def _processes_of(uids: range) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if p.stat().st_uid in uids:
                    found.append(int(p.name))
            except OSError:
                pass
    return found


def test_plain_code_runs(sandbox):
    assert _judge(sandbox, "x = 1")[:2] == (10.0, "passed")


def test_no_network(sandbox):
    score, outcome, why = _judge(sandbox, "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)")
    assert (score, outcome) == (0.0, "code_error") and "OSError" in why and "unreachable" in why


def test_no_writes_outside_private_tmp(sandbox, tmp_path):
    target = tmp_path / "escaped.txt"
    for path in (str(target), "/usr/escaped.txt", "/work/escaped.txt", "/etc/escaped.txt"):
        score, outcome, why = _judge(sandbox, f"open({path!r}, 'w').write('x')")
        assert (score, outcome) == (0.0, "code_error"), why
    assert not target.exists() and not Path("/usr/escaped.txt").exists()
    assert _judge(sandbox, "open('/tmp/scratch.txt', 'w').write('ok')")[1] == "passed"   # its own tmp works


def test_host_files_are_invisible(sandbox):
    score, outcome, why = _judge(sandbox, "import os\nassert not any(map(os.path.exists, ['/root', '/home', '/work/main']))\nopen('/etc/passwd')")
    assert outcome == "code_error" and "FileNotFoundError" in why


def test_fork_bomb_is_stopped_and_leaves_nothing(sandbox):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    score, outcome, why = _judge(sandbox, bomb)
    assert (score, outcome) == (0.0, "timeout"), why
    assert _processes_of(range(LIMITS.uid_base, LIMITS.uid_base + 4000)) == []
    assert _judge(sandbox, "x = 1")[1] == "passed"                                         # the machine still works


def test_process_limit_holds(sandbox):
    code = ("import os, time\nn = 0\nfor _ in range(200):\n    try:\n        pid = os.fork()\n    except OSError:\n"
            "        break\n    if pid == 0:\n        time.sleep(3); os._exit(0)\n    n += 1\nassert n < 200, n")
    score, outcome, _ = _judge(sandbox, code)
    assert outcome == "passed"  # fork failed before 200 processes: the limit held


def test_infinite_loop_hits_the_cpu_limit():
    # a wall clock far above the CPU limit, so a loaded machine still ends it by CPU time
    score, outcome, why = _judge(Sandbox(SandboxConfig(cpu_s=1, wall_s=120)), "while True:\n    pass")
    assert (score, outcome) == (0.0, "timeout") and "CPU" in why


def test_sleeping_forever_hits_the_wall_clock(sandbox):
    score, outcome, why = _judge(sandbox, "import time\ntime.sleep(600)")
    assert (score, outcome) == (0.0, "timeout") and "wall-clock" in why


def test_unbounded_allocation_is_stopped(sandbox):
    score, outcome, why = _judge(sandbox, "x = []\nwhile True:\n    x.append(' ' * 10**7)")
    assert score == 0.0 and outcome in ("code_error", "resource_limit") and "MemoryError" in why or "memory" in why


def test_output_flood_is_bounded(sandbox):
    score, outcome, _ = _judge(sandbox, "while True:\n    print('x' * 1000)")
    assert score == 0.0 and outcome in ("resource_limit", "code_error")


def test_environment_is_cleared(sandbox, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_never_visible")
    result = sandbox.run({"main.py": "import os\nprint(sorted(os.environ))\nprint(os.environ.get('HF_TOKEN'))"},
                         ["/work/main.py"])
    assert "hf_secret_never_visible" not in result.output and "None" in result.output


def test_missing_bwrap_is_reported(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    ok, why = Sandbox(LIMITS).available()
    assert not ok and "bubblewrap" in why


def test_runs_do_not_leak_as_root_processes():
    if os.geteuid() != 0:
        pytest.skip("the per-run uid applies when the judge runs as root")
    result = Sandbox(LIMITS).run({"main.py": "import os\nprint(os.getuid())"}, ["/work/main.py"])
    assert int(result.output.strip()) != 0
