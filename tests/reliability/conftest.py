"""Figures the reliability tests measure, collected into tests/artifacts/reliability.json
(the source of the tables in docs/RELIABILITY.md)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

_RESULTS: dict[str, list[dict]] = defaultdict(list)
_OUT = Path(__file__).resolve().parents[1] / "artifacts" / "reliability.json"


def record(section: str, row: dict) -> None:
    """Keep one measured case for the report."""
    _RESULTS[section].append(row)


@pytest.fixture(scope="session", autouse=True)
def _write_results():
    yield
    if _RESULTS:
        _OUT.parent.mkdir(exist_ok=True)
        _OUT.write_text(json.dumps(_RESULTS, indent=1, sort_keys=True))
