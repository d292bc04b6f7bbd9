"""Shared test fixtures: project paths and the base sampling parameters."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from kedro.io import MemoryDataset

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def copy_project(root: Path, with_raw_data: bool = True) -> Path:
    """A runnable copy of the project at ``root``: pyproject, conf (without local), raw data.

    The package itself is installed (``pip install -e .``), so ``src/`` stays empty. The
    converted bundled model is shared: ``data/06_models`` links to the project's.
    """
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root)
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "src").mkdir()
    (PROJECT_ROOT / "data" / "06_models").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "06_models").symlink_to(PROJECT_ROOT / "data" / "06_models", target_is_directory=True)
    if with_raw_data:
        (root / "data" / "01_raw").mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / "data/01_raw/prompts.jsonl", root / "data/01_raw")
    return root


class Kept(MemoryDataset):
    """A memory dataset the runner does not empty after its last reader (to inspect it)."""

    def _release(self) -> None:
        pass


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


@pytest.fixture
def allow_local_http(monkeypatch):
    """Let huggingface_hub's InferenceClient reach servers the tests start on 127.0.0.1.

    The suite runs with HF_HUB_OFFLINE=1 so nothing can download from a hub; that flag
    also blocks InferenceClient for every URL, so tests that talk to a local server lift it.
    """
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False, raising=False)


@pytest.fixture
def llama_server():
    """llama-cpp-python's OpenAI-compatible server on the bundled SmolLM2 GGUF, on 127.0.0.1."""
    from tests.support.llama_server import llama_cpp_server

    with llama_cpp_server() as url:
        yield url


@pytest.fixture(scope="session")
def smollm2_client():
    """The bundled SmolLM2 through the transformers backend, loaded once (CPU, 4 prompts per batch)."""
    from phase1b_kedro.llm import make_client
    from phase1b_kedro.llm.transformers_backend import BUNDLED_SMOLLM2

    c = make_client("transformers", BUNDLED_SMOLLM2,
                    {"model_dir": str(PROJECT_ROOT / "data" / "06_models"), "batch_size": 4, "device": "cpu"})
    c.load()
    return c
