"""Run hooks: per-node duration and memory, and an end-of-run summary."""

from __future__ import annotations

import logging
import time
from typing import Any

import psutil
from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node

from phase1b_kedro.resources import peak_rss_mib

logger = logging.getLogger(__name__)


_HEADLINE = ("test_dataset", "model_outputs", "judge_summary", "failures", "patterns", "data_generation_plan_md",
             "report_html")


#: The sampling index node's output: a pipeline holding it cannot run under ParallelRunner.
SAMPLING_INDEX_OUTPUT = "unique_record_index"


class RunSummaryHooks:
    """Log how long each node took, the process's resident memory, and what was written."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._durations: dict[str, float] = {}
        self._run_start = 0.0
        self._outputs: list[str] = []

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any) -> None:
        """Reset the per-run state; refuse a runner the pipeline cannot run under.

        Raises:
            ValueError: ``ParallelRunner`` on a pipeline with the sampling index node: it passes
                an on-disk index (a handle to this process's temporary files) between nodes,
                which another process cannot take over, and it runs worker processes itself.
        """
        if "ParallelRunner" in str(run_params.get("runner")) and any(
                SAMPLING_INDEX_OUTPUT in node.outputs for node in pipeline.nodes):
            raise ValueError("the sampling pipeline cannot run under ParallelRunner: its nodes pass an on-disk "
                             "index (temporary files of the process that built it) to each other, and its index node "
                             "already runs worker processes (sampling.scan_workers); run it with the default "
                             "SequentialRunner or with --runner ThreadRunner")
        self._run_start = time.perf_counter()
        self._durations.clear()
        self._outputs.clear()

    @hook_impl
    def before_node_run(self, node: Node) -> None:
        """Remember when the node started."""
        self._started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node: Node, outputs: dict[str, Any]) -> None:
        """Log the node's wall time and the process's current/peak resident memory."""
        took = time.perf_counter() - self._started.pop(node.name, time.perf_counter())
        self._durations[node.name] = took
        self._outputs.extend(outputs)
        logger.info(
            "node %s took %.2fs (rss %.0f MiB, peak %.0f MiB)",
            node.name, took, psutil.Process().memory_info().rss / 2**20, peak_rss_mib(),
        )

    @hook_impl
    def after_catalog_created(self, catalog: Any) -> None:
        """Remember where the headline outputs are written, for the end-of-run summary."""
        self._paths = {}
        for name in _HEADLINE:
            try:
                described = catalog.get(name)._describe() if name in catalog else {}
            except Exception:  # a dataset without a path
                described = {}
            if described.get("filepath"):
                self._paths[name] = _shown_path(described)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any]) -> None:
        """Print a short summary of the run: time, what was produced, where the report is."""
        total = time.perf_counter() - self._run_start
        slowest = sorted(self._durations.items(), key=lambda kv: -kv[1])[:3]
        logger.info(
            "run finished in %.1fs: %d nodes, %d datasets written; slowest: %s",
            total, len(self._durations), len(self._outputs),
            ", ".join(f"{n} {t:.1f}s" for n, t in slowest) or "-",
        )
        produced = [f"{name} -> {self._paths[name]}" for name in _HEADLINE
                    if name in self._outputs and name in getattr(self, "_paths", {})]
        if produced:
            logger.info("produced: %s", "; ".join(produced))
        if "report_html" in self._outputs and "report_html" in getattr(self, "_paths", {}):
            logger.info("report: %s (open it in a browser; no server needed)", self._paths["report_html"])


def _shown_path(described: dict[str, Any]) -> str:
    """Where a dataset writes, from its ``_describe()``: a plain path locally, else a URL.

    File datasets (kedro-datasets' and ours) describe ``filepath`` without its protocol
    and give the protocol beside it, so ``memory:///x`` would otherwise read as ``/x``.
    """
    path, protocol = str(described["filepath"]), described.get("protocol") or "file"
    return path if protocol in ("file", "local") or "://" in path else f"{protocol}://{path}"


class RunInfoHooks:
    """Put the run's environment and save version in the catalog as ``run_info`` (the report
    prints them), from the run context rather than a parameter copied into every environment."""

    def __init__(self) -> None:
        self._env: str | None = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        """Remember the environment the run was started with (``--env`` / ``KEDRO_ENV``)."""
        self._env = getattr(context, "env", None)

    @hook_impl
    def after_catalog_created(self, catalog: Any, save_version: str | None) -> None:
        """Fill ``run_info``: ``{"env": ..., "save_version": ...}``."""
        info = {"env": self._env or "local (default)", "save_version": save_version}
        if "run_info" in catalog:
            catalog.save("run_info", info)  # the declared MemoryDataset (kedro-viz shows it)
        else:
            catalog["run_info"] = info
