"""Judging: score every model output 0-10 against its reference, then apply the threshold."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
