"""``kedro run --pipeline threshold``: the judging pipeline's threshold and summary nodes alone,
reading the stored ``judge_scores`` (its own package, so that Kedro finds it by name)."""

from kedro.pipeline import Pipeline

from phase1b_kedro.pipelines.judging.pipeline import create_threshold_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    """Create the threshold pipeline."""
    return create_threshold_pipeline()
