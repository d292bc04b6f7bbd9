"""Baseline pipeline: a second model generates and is judged on the same sample (namespace ``baseline``)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
