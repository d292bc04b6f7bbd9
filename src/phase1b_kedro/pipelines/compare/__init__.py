"""Compare: the current run's verdicts against a baseline run's, record by record."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
