"""Shared test fixtures: project paths and the base sampling parameters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def load_params(name: str) -> dict:
    """The ``conf/base/parameters_<name>.yml`` group."""
    with (PROJECT_ROOT / "conf" / "base" / f"parameters_{name}.yml").open() as fh:
        return yaml.safe_load(fh)[name]


@pytest.fixture
def sampling_params() -> dict:
    """The base sampling parameters (as a fresh dict per test)."""
    return load_params("sampling")


@pytest.fixture(scope="session")
def project_root() -> Path:
    """The repository root."""
    return PROJECT_ROOT
