"""The generation and judging pipelines again, for a second model, under the ``baseline`` namespace.

The same test set, decoding and judging parameters, judge, verdict cache and checkpoint folder
(its files are keyed by model) as the main run; the model is ``baseline.generation_model``
and every output is prefixed ``baseline.`` (``data/07_model_output/baseline/``), except the
judged results, which become ``baseline_judged_results``: the input of the ``compare``
pipeline. So ``kedro run --env two_models --pipeline two_models`` generates and judges both
models and compares them in one run (kedro-viz shows the namespace as one collapsible block).
"""

from kedro.pipeline import Pipeline

from phase1b_kedro.pipelines.generation import create_pipeline as generation
from phase1b_kedro.pipelines.judging import create_pipeline as judging

#: Datasets both models share (everything else is the baseline's own).
SHARED = {"test_dataset", "judge_model", "judge_cache", "generation_checkpoint", "human_labels"}


def create_pipeline(**kwargs) -> Pipeline:
    """Create the baseline pipeline."""
    return Pipeline(
        generation() + judging(),
        namespace="baseline",
        inputs=SHARED,
        outputs={"judged_results": "baseline_judged_results"},
        parameters={"params:generation", "params:judging", "params:judging.failure_threshold"},
    )
