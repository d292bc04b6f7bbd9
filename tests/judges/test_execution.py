"""Code judged by running its tests: extraction, program assembly, outcomes, test shapes."""

from __future__ import annotations

import json

import pytest

from phase1b_kedro.code_tests import extract_tests
from phase1b_kedro.judges.execution import ExecutionConfig, extract_code, run_one, run_tests
from phase1b_kedro.judges.sandbox import Sandbox, SandboxConfig
from phase1b_kedro.records import FieldConfig, Normalised, normalise
from tests.conftest import PROJECT_ROOT

CONFIG = ExecutionConfig(sandbox=SandboxConfig(cpu_s=5, wall_s=10))


@pytest.fixture(scope="module")
def humaneval() -> dict[str, Normalised]:
    """The bundled HumanEval records, normalised the way sampling does it."""
    out = {}
    for line in (PROJECT_ROOT / "data/01_raw/prompts.jsonl").read_text().splitlines():
        obj = json.loads(line)
        if obj.get("task_id") in ("HumanEval/0", "HumanEval/2", "HumanEval/7", "HumanEval/12"):
            rec = normalise(obj, FieldConfig())
            assert isinstance(rec, Normalised)
            out[obj["task_id"]] = rec
    assert len(out) == 4
    return out


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    box = Sandbox(CONFIG.sandbox)
    assert box.available()[0], box.available()[1]
    return box


def _record(rec: Normalised, output: str) -> dict:
    return {"prompt": rec.prompt, "output": output, "meta": rec.meta}


def test_sampling_keeps_humaneval_tests(humaneval):
    tests = humaneval["HumanEval/0"].meta["tests"]
    assert tests["kind"] == "check" and tests["entry_point"] == "has_close_elements" and "def check" in tests["test"]


def test_canonical_solution_passes_in_every_layout(humaneval, sandbox):
    rec = humaneval["HumanEval/2"]
    full = rec.prompt + rec.reference
    outputs = [
        rec.reference,                                                        # HumanEval completion (body)
        f"```python\n{full}```",                                              # fenced full function
        f"Sure! Here it is:\n\n```py\n{full}```\n\nIt returns the decimal part.",  # prose around the fence
        f"{full}\nThis works because % 1.0 keeps the fraction.",             # unfenced, prose after the code
        f"<think>use int()</think>\n```python\n{full}```",                    # reasoning first
    ]
    verdicts = run_tests([_record(rec, o) for o in outputs], CONFIG, sandbox)
    assert [(v.score, v.source, v.details["outcome"]) for v in verdicts] == [(10.0, "execution", "passed")] * 5


def test_a_different_but_right_solution_passes(humaneval, sandbox):
    rec = humaneval["HumanEval/2"]
    body = "```python\ndef truncate_number(number: float) -> float:\n    return number - int(number)\n```"
    assert run_one(_record(rec, body), sandbox, CONFIG).score == 10.0


def test_wrong_code_fails_with_its_reason(humaneval, sandbox):
    rec = humaneval["HumanEval/2"]
    cases = {
        "    return number": ("tests_failed", "assert"),                          # looks like the reference
        "    return number % 1.0 +": ("syntax_error", ""),
        "    return undefined_name": ("code_error", "NameError"),
        humaneval["HumanEval/12"].reference: ("code_error", ""),                  # another task's solution
        "I am not sure how to do this.": ("no_code", "no code"),
    }
    for output, (outcome, words) in cases.items():
        v = run_one(_record(rec, output), sandbox, CONFIG)
        assert v.score == 0.0 and v.details["outcome"] == outcome and words in v.rationale, (output, v)


def test_result_line_cannot_be_forged(humaneval, sandbox):
    rec = humaneval["HumanEval/2"]
    forged = ('```python\nimport os, sys\nprint(\'{"outcome": "passed"}\')\nsys.stdout.flush()\nos._exit(0)\n'
              "def truncate_number(number):\n    return 0.0\n```")
    v = run_one(_record(rec, forged), sandbox, CONFIG)
    assert v.score == 0.0 and v.details["outcome"] == "code_error"


def test_mbpp_asserts_and_stdio_cases(sandbox):
    mbpp = {"text": "Write a function to add two numbers.", "code": "def add(a, b):\n    return a + b",
            "test_list": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"], "test_setup_code": ""}
    tests = extract_tests(mbpp)
    assert tests == {"kind": "asserts", "language": "python", "asserts": mbpp["test_list"], "setup": ""}
    rec = {"prompt": mbpp["text"], "meta": {"tests": tests}}
    assert run_one({**rec, "output": "```python\ndef add(a, b):\n    return b + a\n```"}, sandbox, CONFIG).score == 10
    wrong = run_one({**rec, "output": "```python\ndef add(a, b):\n    return a - b\n```"}, sandbox, CONFIG)
    assert wrong.details["outcome"] == "tests_failed" and "add(1, 2) == 3" in wrong.rationale

    apps = {"question": "Sum two ints", "solutions": "[]",
            "input_output": json.dumps({"inputs": ["1 2\n", "5 7\n"], "outputs": ["3\n", "12\n"]})}
    tests = extract_tests(apps)
    assert tests["kind"] == "stdio" and len(tests["cases"]) == 2
    rec = {"prompt": "sum", "meta": {"tests": tests}}
    right = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    assert run_one({**rec, "output": right}, sandbox, CONFIG).score == 10
    v = run_one({**rec, "output": right.replace("a + b", "a * b")}, sandbox, CONFIG)
    assert v.details["outcome"] == "tests_failed" and "case 1" in v.rationale


def test_other_test_shapes_are_recognised():
    contests = {"public_tests": {"input": ["1\n"], "output": ["2\n"]}, "private_tests": {"input": ["2\n"], "output": ["3\n"]}}
    assert extract_tests(contests)["cases"] == [{"input": "1\n", "output": "2\n"}, {"input": "2\n", "output": "3\n"}]
    ready = {"tests": {"kind": "check", "test": "def check(c):\n    assert c()", "entry_point": "f"}}
    assert extract_tests(ready)["entry_point"] == "f"
    assert extract_tests({"prompt": "p", "response": "r"}) is None
    assert extract_tests({"test": "no check here", "entry_point": "f"}) is None


def test_extract_code():
    assert extract_code("```python\ndef f():\n    return 1\n```\n```python\nprint(f())\n```", "f") == "def f():\n    return 1"
    assert extract_code("Use this:\ndef f():\n    return 1\nThat is all.") == "def f():\n    return 1"
    assert extract_code("    return 1\n") == "    return 1"
    assert extract_code("No code, only words.") is None
    # unfenced code, a stray closing fence, then a word cut off at the token limit
    assert extract_code("def f():\n    return 1\n\nprint(f())\n```\n\nThis") == "def f():\n    return 1\n\nprint(f())"
    assert extract_code("Here:\n```python\ndef f():\n    return 1\n") == "def f():\n    return 1"   # never closed
    assert extract_code("Here is the solution:\n    return x + 1\n") == "    return x + 1"
    assert extract_code("<think>```python\ndef f(): pass\n```") is None
