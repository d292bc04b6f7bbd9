"""Project pipelines: one per stage, ``__default__`` is the whole chain."""

from __future__ import annotations

import importlib

from kedro.framework.project import pipelines as project_pipelines
from kedro.pipeline import Pipeline

#: The stages of the default chain, in data order (Kedro orders the nodes by their datasets).
STAGES = ("sampling", "generation", "judging", "clustering", "labeling", "compare", "reporting")
#: Pipelines that are one package each, besides the stages.
SINGLE = ("threshold", "baseline")


def _create(name: str) -> Pipeline:
    """``create_pipeline()`` of the package ``phase1b_kedro.pipelines.<name>`` (imported now)."""
    return importlib.import_module(f"phase1b_kedro.pipelines.{name}").create_pipeline()


def _requested() -> set[str] | None:
    """The pipelines that ``kedro run --pipeline`` asked for (``None``: all, or not known).

    Kedro (1.7+) records them on its lazy pipeline registry before loading it, and its own
    ``find_pipelines`` reads them the same way to import only the packages a run needs.
    """
    requested = getattr(project_pipelines, "_requested_pipelines", None)
    return set(requested) if requested else None


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Listed here rather than discovered with ``find_pipelines`` (``__default__`` and
    ``two_models`` are built from several packages), but loaded as selectively: when a run
    asks only for single-package pipelines (``kedro run --pipeline sampling``), only their
    packages are imported, so that a sampling run does not pay for importing scikit-learn,
    torch or plotly for stages it does not run.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects: one per stage; ``__default__``
        chains every stage; ``threshold`` re-applies the failure threshold to stored scores
        (zero judge calls); ``baseline`` generates and judges a second model on the same sample
        (namespace ``baseline``) and ``two_models`` is the chain plus it, so that
        ``run_comparison`` compares the two models (``kedro run --env two_models --pipeline
        two_models``). Only the requested pipelines when a run names single-package ones.
    """
    wanted = _requested()
    if wanted is not None and wanted <= set(STAGES) | set(SINGLE):
        return {name: _create(name) for name in sorted(wanted)}
    pipelines = {name: _create(name) for name in STAGES}
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    for name in SINGLE:
        pipelines[name] = _create(name)
    pipelines["two_models"] = pipelines["__default__"] + pipelines["baseline"]
    return pipelines
