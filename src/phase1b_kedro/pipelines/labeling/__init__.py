"""Labeling: name each failure cluster and plan the training data that would fix it."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
