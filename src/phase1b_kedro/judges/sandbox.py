"""Run untrusted Python inside a bubblewrap sandbox (https://github.com/containers/bubblewrap).

What a sandboxed run gets (each limit from :class:`SandboxConfig`):

- **no network**: every namespace unshared (``--unshare-all``: network, PID, IPC, UTS,
  user, cgroup); only a loopback device without addresses exists inside;
- **read-only system**: ``/usr`` (and the interpreter's prefix when it lives elsewhere)
  bound read-only, the program's files read-only under ``/work``; nothing else of the host
  (no home, no project, no ``/etc``) is visible;
- **a private writable tmp**: ``/tmp`` is a fresh tmpfs, the working directory;
- **limits** (set by util-linux's ``prlimit`` before ``bwrap`` starts, inherited by everything
  inside): CPU
  seconds, address space, file size (which also bounds the captured output), processes;
  plus a wall-clock timeout after which the whole process group is killed, and
  ``--die-with-parent`` so nothing outlives the sandbox.

The process limit counts processes per user, so as root each run drops to its own unused
uid (``uid_base`` + a counter) before starting ``bwrap``: a fork bomb in one run cannot
starve another, and root's own processes do not count against it. As another user, the
limit is that user's current process count plus ``max_processes``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from phase1b_kedro.configs import load_config

RunStatus = Literal["exited", "timeout", "sandbox_error"]
_UIDS = itertools.count()
_UID_LOCK = threading.Lock()


@dataclass(frozen=True)
class SandboxConfig:
    """Limits of one sandboxed run (``judging.execution.sandbox``)."""

    cpu_s: int = 10
    wall_s: float = 20.0
    memory_mb: int = 1024
    max_processes: int = 32
    max_output_bytes: int = 1_000_000
    #: Interpreter run inside; ``auto``: the system's ``/usr/bin/python3``, else this one's base.
    python: str = "auto"
    uid_base: int = 61000

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> SandboxConfig:
        """Build from ``judging.execution.sandbox`` (missing keys keep defaults; unknown keys fail)."""
        return load_config(cls, params, "judging.execution.sandbox")


@dataclass(frozen=True)
class RunResult:
    """How a sandboxed run ended: its exit code, its output (stdout and stderr interleaved)."""

    status: RunStatus
    returncode: int | None
    output: str
    wall_s: float
    detail: str = ""
    output_full: bool = False

    @property
    def limit_hit(self) -> str | None:
        """Which resource limit ended the run, if one did."""
        if self.status == "timeout":
            return "wall-clock timeout"
        if self.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL, -signal.SIGXCPU, 128 + signal.SIGXCPU):
            return "CPU time limit (or killed)"
        if self.output_full or self.returncode in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
            return "output size limit"
        return None


def interpreter(config: SandboxConfig) -> str:
    """The Python run inside the sandbox (see :attr:`SandboxConfig.python`)."""
    if config.python != "auto":
        return config.python
    system = Path("/usr/bin/python3")
    return str(system) if system.exists() else str(Path(sys.base_prefix) / "bin" / "python3")


class Sandbox:
    """Runs commands under ``bwrap`` with the limits of a :class:`SandboxConfig`."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.python = interpreter(self.config)
        self._probe: tuple[bool, str] | None = None

    def available(self) -> tuple[bool, str]:
        """Whether sandboxed runs work here, and why not (probed once by running Python inside)."""
        if self._probe is None:
            self._probe = self._check()
        return self._probe

    def _check(self) -> tuple[bool, str]:
        if shutil.which("bwrap") is None:
            return False, "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
        if not Path(self.python).exists():
            return False, f"the sandbox interpreter {self.python} does not exist"
        result = self.run({"probe.py": "print('sandbox ok')\n"}, ["/work/probe.py"])
        if result.status == "exited" and result.returncode == 0 and "sandbox ok" in result.output:
            return True, "bubblewrap sandbox works"
        return False, f"bubblewrap failed to start: {(result.detail or result.output).strip()[:300]}"

    def _command(self, work: str, argv: Sequence[str]) -> list[str]:
        cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
               "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev",
               "--tmpfs", "/tmp", "--ro-bind", work, "/work", "--chdir", "/tmp",
               "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
               "--setenv", "PYTHONDONTWRITEBYTECODE", "1"]
        for link in ("bin", "lib", "lib64", "lib32", "sbin"):
            target = Path("/") / link
            if target.is_symlink():
                cmd += ["--symlink", os.readlink(target), f"/{link}"]
            elif target.is_dir():
                cmd += ["--ro-bind", str(target), f"/{link}"]
        prefix = str(Path(self.python).resolve().parents[1])
        if not prefix.startswith("/usr"):
            cmd += ["--ro-bind", prefix, prefix]
        return [*cmd, self.python, "-I", *argv]

    def _limits(self, uid: int | None) -> list[str]:
        """``prlimit`` (util-linux) in front of ``bwrap``: limits set without a ``preexec_fn``,
        which is unsafe while other threads run (the judge runs sandboxes from a thread pool)."""
        cfg = self.config
        nproc = cfg.max_processes if uid is not None else _user_processes() + cfg.max_processes
        memory = cfg.memory_mb * 1024 * 1024
        return ["prlimit", f"--cpu={cfg.cpu_s}:{cfg.cpu_s + 1}", f"--as={memory}", f"--nproc={nproc}",
                f"--fsize={cfg.max_output_bytes}", "--core=0", "--"]

    def run(self, files: Mapping[str, str], argv: Sequence[str], stdin: str | None = None) -> RunResult:
        """Run ``python -I <argv>`` in a fresh sandbox with ``files`` readable under ``/work``.

        Args:
            files: File name -> text, written to a host temp dir bound read-only at ``/work``.
            argv: Arguments after ``python -I`` (e.g. ``["/work/main.py"]``).
            stdin: Text fed to the program's standard input (none when ``None``).

        Returns:
            The :class:`RunResult`; never raises for anything the program does.
        """
        uid = None
        if os.geteuid() == 0:
            with _UID_LOCK:
                uid = self.config.uid_base + next(_UIDS) % 4000
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="sandbox-") as work, tempfile.TemporaryFile() as out:
            os.chmod(work, 0o755)
            for name, text in files.items():
                path = Path(work) / name
                path.write_text(text, encoding="utf-8")
                path.chmod(0o644)
            try:
                proc = subprocess.Popen([*self._limits(uid), *self._command(work, argv)],
                                        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                        user=uid, group=uid, extra_groups=[] if uid is not None else None)
            except OSError as exc:
                return RunResult("sandbox_error", None, "", 0.0, f"could not start bwrap: {exc}")
            status: RunStatus = "exited"
            try:
                proc.communicate(input=stdin.encode() if stdin is not None else None, timeout=self.config.wall_s)
            except subprocess.TimeoutExpired:
                status = "timeout"
                _kill(proc, uid)
            except (BrokenPipeError, OSError):
                proc.wait(timeout=self.config.wall_s)
            out.seek(0)
            text = out.read(self.config.max_output_bytes).decode("utf-8", "replace")
        detail = text.strip().splitlines()[-1] if text.startswith("bwrap:") else ""
        return RunResult("sandbox_error" if detail else status, proc.returncode, text,
                         round(time.perf_counter() - t0, 3), detail,
                         output_full=len(text) >= self.config.max_output_bytes - 4096)


def _kill(proc: subprocess.Popen, uid: int | None) -> None:
    """Kill the run's process group, then (as root) every process of the run's own uid,
    until none is left: a fork bomb's children in the sandbox's PID namespace die with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.monotonic() + 5
    while uid is not None and time.monotonic() < deadline:
        left = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _owner(p) == uid]
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def _user_processes() -> int:
    uid = os.getuid()
    return sum(1 for p in Path("/proc").iterdir() if p.name.isdigit() and _owner(p) == uid)


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None
