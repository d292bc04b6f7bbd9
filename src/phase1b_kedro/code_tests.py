"""Unit tests carried by code records, kept through sampling in ``meta.tests``.

Source shapes recognised (:func:`extract_tests`), all Python:

==============  ==========================================================  =====================
kind            source fields                                               judged by
==============  ==========================================================  =====================
``check``       HumanEval: ``test`` (defines ``check(candidate)``) and      ``check(<entry_point>)``
                ``entry_point``
``asserts``     MBPP: ``test_list`` (assert statements), optional            every assert runs
                ``test_setup_code`` and ``challenge_test_list``
``stdio``       APPS ``input_output`` ({"inputs": [...], "outputs": [...]},  stdout equals the
                or that as a JSON string); CodeContests ``public_tests`` /  expected output per
                ``private_tests`` ({"input": [...], "output": [...]})        case (whitespace-split)
==============  ==========================================================  =====================

A record may also carry ``tests`` already in the normalised shape below. The normalised
shape (``meta.tests``) is one of::

    {"kind": "check", "language": "python", "test": "<code>", "entry_point": "<name>"}
    {"kind": "asserts", "language": "python", "asserts": ["assert f(1) == 2", ...], "setup": "<code>"}
    {"kind": "stdio", "language": "python", "cases": [{"input": "...", "output": "..."}, ...]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

KINDS = ("check", "asserts", "stdio")
#: A record with none of these fields carries no tests (checked first: most records have none).
_TEST_FIELDS = frozenset({"tests", "test", "test_list", "input_output", "public_tests", "private_tests"})


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def _stdio(inputs: Any, outputs: Any) -> dict[str, Any] | None:
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs) or not inputs:
        return None
    cases = [{"input": i if isinstance(i, str) else "\n".join(map(str, i)),
              "output": o if isinstance(o, str) else "\n".join(map(str, o))}
             for i, o in zip(inputs, outputs, strict=True)]
    return {"kind": "stdio", "language": "python", "cases": cases}


def _valid(tests: Any) -> dict[str, Any] | None:
    """A ``tests`` value already in the normalised shape, else ``None``."""
    if not isinstance(tests, Mapping) or tests.get("kind") not in KINDS:
        return None
    kind = tests["kind"]
    if kind == "check" and isinstance(tests.get("test"), str) and isinstance(tests.get("entry_point"), str):
        return {"kind": kind, "language": "python", "test": tests["test"], "entry_point": tests["entry_point"]}
    if kind == "asserts" and _strings(tests.get("asserts")):
        return {"kind": kind, "language": "python", "asserts": tests["asserts"], "setup": str(tests.get("setup") or "")}
    if kind == "stdio" and isinstance(tests.get("cases"), list):
        cases = tests["cases"]
        return _stdio([c.get("input") for c in cases], [c.get("output") for c in cases]) \
            if all(isinstance(c, Mapping) for c in cases) else None
    return None


def extract_tests(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The unit tests a source record carries, in the normalised shape; ``None`` if it has none.

    Args:
        obj: One parsed input line (any format).

    Returns:
        The normalised tests (see the module docstring), or ``None``.
    """
    if _TEST_FIELDS.isdisjoint(obj):
        return None
    if (found := _valid(obj.get("tests"))) is not None:
        return found
    test, entry = obj.get("test"), obj.get("entry_point")
    if isinstance(test, str) and "def check" in test and isinstance(entry, str) and entry.strip():
        return {"kind": "check", "language": "python", "test": test, "entry_point": entry.strip()}
    asserts = _strings(obj.get("test_list"))
    if asserts:
        extra = _strings(obj.get("challenge_test_list")) or []
        return {"kind": "asserts", "language": "python", "asserts": asserts + extra,
                "setup": str(obj.get("test_setup_code") or "")}
    io = obj.get("input_output")
    if isinstance(io, str):
        try:
            io = json.loads(io)
        except ValueError:
            io = None
    if isinstance(io, Mapping) and (found := _stdio(io.get("inputs"), io.get("outputs"))):
        return found
    cases_in: list[Any] = []
    cases_out: list[Any] = []
    for field in ("public_tests", "private_tests"):
        block = obj.get(field)
        if isinstance(block, Mapping) and isinstance(block.get("input"), list) and isinstance(block.get("output"), list):
            cases_in += block["input"]
            cases_out += block["output"]
    return _stdio(cases_in, cases_out)
