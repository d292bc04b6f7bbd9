"""Code judged by running the record's tests (``meta.tests``, see :mod:`phase1b_kedro.code_tests`)
inside the bubblewrap sandbox (:mod:`.sandbox`).

**Code extraction** (:func:`extract_code`): the fenced block that defines the entry point,
else the longest Python block, else the unfenced output; trailing prose is trimmed until the
code compiles. The program is then assembled the way HumanEval's own harness does it:

- the output defines the entry point (a full function): ``prompt + code + tests``; the
  prompt's imports and helper functions stay available, the model's definition wins;
- otherwise the output continues the prompt (a HumanEval completion, the function's body):
  ``prompt + output + tests``.

**Verdict**: 10 when every test passes, else 0, with ``details.outcome`` one of
``passed``, ``tests_failed`` (which assertion or which stdin case), ``code_error`` (an
exception: its type, message and line), ``syntax_error``, ``timeout`` (wall clock or CPU),
``resource_limit`` (memory, output size) or ``no_code``; and ``answer`` = the code that ran.
Runs go in parallel, up to ``workers`` at once (default: the core count).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from phase1b_kedro.configs import load_config
from phase1b_kedro.judges.extract import FENCE_LINE, fenced_blocks, strip_reasoning
from phase1b_kedro.judges.modes import execution_mode
from phase1b_kedro.judges.sandbox import RunResult, Sandbox, SandboxConfig
from phase1b_kedro.judges.verdict import Verdict

_CODE_CHARS = re.compile(r"[()=\[\]{}:]")
_CODE_LINE = re.compile(r"^(?:def |class |import |from \S+ import |@|if __name__|[A-Za-z_]\w*\s*=)")
_PY_LANGS = {"", "python", "py", "python3"}

# Runs inside the sandbox: executes /work/solution.py, reports one JSON line after a nonce.
# A program that prints a fake result line or exits early gets no pass; one that walks the
# interpreter's frames to read the nonce could forge one (the code under test shares the
# process with its tests, as in HumanEval's own harness): the sandbox bounds what such code
# can do, not what it reports.
_HARNESS = """import json, sys, traceback
nonce = sys.argv.pop(1)
path = "/work/solution.py"
def report(**kw):
    sys.__stdout__.write("\\n" + nonce + json.dumps(kw) + "\\n"); sys.__stdout__.flush()
def where(exc):
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
    return (frames[-1].lineno, (frames[-1].line or "").strip()) if frames else (None, "")
try:
    code = compile(open(path).read(), path, "exec")
except SyntaxError as exc:
    report(outcome="syntax_error", line=exc.lineno, detail=f"{exc.msg}: {(exc.text or '').strip()[:200]}")
    raise SystemExit(0)
try:
    exec(code, {"__name__": "__main__"})
except AssertionError as exc:
    line, text = where(exc)
    report(outcome="tests_failed", line=line, detail=(text + (f" ({exc})" if str(exc) else ""))[:300])
except BaseException as exc:
    line, text = where(exc)
    report(outcome="code_error", line=line, detail=f"{type(exc).__name__}: {str(exc)[:200]} at `{text[:120]}`")
else:
    report(outcome="passed")
"""


@dataclass(frozen=True)
class ExecutionConfig:
    """``judging.execution``: on/off, parallelism, the sandbox's limits."""

    enabled: bool = True
    workers: int = 0  # 0 = the machine's core count
    max_stdio_cases: int = 10
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> ExecutionConfig:
        """Build from ``judging.execution`` (missing keys keep defaults; unknown keys fail)."""
        sandbox = SandboxConfig.from_params((params or {}).get("sandbox"))
        return load_config(cls, params, "judging.execution", sandbox=sandbox)


def _compiles(code: str) -> bool:
    try:
        compile(code, "<candidate>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _trim(code: str, prefix: str = "") -> str:
    """``code`` without the trailing lines (prose) that keep ``prefix + code`` from compiling."""
    lines = code.rstrip().split("\n")
    for end in range(len(lines), max(0, len(lines) - 40), -1):
        candidate = "\n".join(lines[:end])
        if _compiles(prefix + candidate):
            return candidate
    return code


def _drop_trailing_prose(lines: list[str]) -> list[str]:
    """Trailing unindented lines that do not look like code ("This", "Hope this helps!")."""
    while lines and (not lines[-1].strip() or (not lines[-1].startswith((" ", "\t"))
                                               and not _CODE_LINE.match(lines[-1]) and not _CODE_CHARS.search(lines[-1]))):
        lines = lines[:-1]
    return lines


def extract_code(output: str, entry_point: str | None = None) -> str | None:
    """The code in a model output (see the module docstring); ``None`` when there is none.

    Closed fenced blocks first; otherwise fence lines are dropped (a block cut off at the
    token limit, or a stray closing fence after unfenced code) and the code is found in the
    remaining lines.
    """
    body = strip_reasoning(output)
    if body is None:
        return None
    blocks = [(lang, code) for lang, code in fenced_blocks(body) if lang in _PY_LANGS]
    if blocks:
        defining = [c for _, c in blocks if entry_point and re.search(rf"\bdef\s+{re.escape(entry_point)}\s*\(", c)]
        return (defining or [max((c for _, c in blocks), key=len)])[-1].rstrip()
    lines = _drop_trailing_prose([line for line in body.split("\n") if not FENCE_LINE.match(line)])
    start = next((i for i, line in enumerate(lines) if _CODE_LINE.match(line)), None)
    if start is not None:
        return _trim("\n".join(lines[start:]))
    start = next((i for i, line in enumerate(lines) if line.startswith((" ", "\t")) and line.strip()), None)
    if start is not None:
        return "\n".join(lines[start:]).rstrip()  # an indented body that continues the prompt
    return None


def build_program(record: Mapping[str, Any], code: str) -> str:
    """The program that runs ``code`` against the record's ``check`` or ``asserts`` tests."""
    tests = record["meta"]["tests"]
    prompt = record.get("prompt") or ""
    if tests["kind"] == "check":
        entry = tests["entry_point"]
        defines = re.search(rf"(?m)^\s*def\s+{re.escape(entry)}\s*\(", code)
        solution = f"{prompt}\n{code}" if defines else prompt + _trim(code, prompt)
        return f"{solution}\n\n{tests['test']}\n\ncheck({entry})\n"
    setup = tests.get("setup") or ""
    return f"{setup}\n{code}\n\n" + "\n".join(tests["asserts"]) + "\n"


def _outcome(result: RunResult, nonce: str) -> tuple[str, str]:
    if result.status == "timeout":
        return "timeout", "wall-clock timeout"
    lines = [line for line in result.output.splitlines() if line.startswith(nonce)]
    if lines:
        report = json.loads(lines[-1][len(nonce):])
        where = f"line {report['line']}: " if report.get("line") else ""
        return report["outcome"], where + report.get("detail", "")
    limit = result.limit_hit
    if limit:
        return ("timeout" if "CPU" in limit else "resource_limit"), limit
    if "MemoryError" in result.output:
        return "resource_limit", "memory limit"
    return "code_error", f"the program ended without a result (exit {result.returncode}): " \
                         f"{result.output.strip()[-200:]}"


def _run_stdio(record: Mapping[str, Any], code: str, sandbox: Sandbox, max_cases: int) -> tuple[str, str]:
    cases = record["meta"]["tests"]["cases"][:max_cases]
    for k, case in enumerate(cases, 1):
        result = sandbox.run({"solution.py": code}, ["/work/solution.py"], stdin=case["input"])
        if result.status == "timeout" or result.limit_hit:
            return ("timeout" if result.status == "timeout" or "CPU" in (result.limit_hit or "") else "resource_limit",
                    f"case {k}: {result.limit_hit}")
        if result.returncode != 0:
            last = (result.output.strip().splitlines() or [""])[-1]
            kind = "syntax_error" if "SyntaxError" in last else "code_error"
            return kind, f"case {k}: {last[:200]}"
        if result.output.split() != case["output"].split():
            return "tests_failed", f"case {k}: expected {case['output'].strip()[:80]!r}, got {result.output.strip()[:80]!r}"
    return "passed", f"all {len(cases)} stdin/stdout cases passed"


def run_one(record: Mapping[str, Any], sandbox: Sandbox, config: ExecutionConfig) -> Verdict:
    """Run one record's output against its tests; a verdict with ``source='execution'``."""
    tests = record["meta"]["tests"]
    code = extract_code(record.get("output") or "", tests.get("entry_point"))
    if code is None or not code.strip():
        return _verdict("no_code", "no code found in the output", None)
    if tests["kind"] == "stdio":
        outcome, detail = _run_stdio(record, code, sandbox, config.max_stdio_cases)
    else:
        nonce = secrets.token_hex(8)
        program = build_program(record, code)
        result = sandbox.run({"solution.py": program, "harness.py": _HARNESS}, ["/work/harness.py", nonce])
        outcome, detail = _outcome(result, nonce)
        if outcome == "passed":
            detail = f"all tests passed ({tests['kind']})"
    return _verdict(outcome, detail, code)


def _verdict(outcome: str, detail: str, code: str | None) -> Verdict:
    details = {"outcome": outcome}
    if outcome != "passed":
        details["mode"] = execution_mode(outcome)
    return Verdict(10.0 if outcome == "passed" else 0.0, "execution", rule="code_tests", answer=code and code[:2000],
                   expected="all tests pass", rationale=f"{outcome}: {detail}", details=details)


def run_tests(records: Sequence[Mapping[str, Any]], config: ExecutionConfig,
              sandbox: Sandbox | None = None) -> list[Verdict]:
    """Judge every record by its tests, in parallel; records must carry ``meta.tests``.

    Raises:
        RuntimeError: If the sandbox does not work here (callers check :meth:`Sandbox.available`).
    """
    sandbox = sandbox or Sandbox(config.sandbox)
    ok, why = sandbox.available()
    if not ok:
        raise RuntimeError(why)
    workers = config.workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda r: run_one(r, sandbox, config), records))
