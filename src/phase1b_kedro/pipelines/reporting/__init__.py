"""Reporting: plotly charts (shown in kedro-viz) and the self-contained HTML report."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
