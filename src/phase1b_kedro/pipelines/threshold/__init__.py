"""Threshold pipeline: re-apply the failure threshold to stored scores (zero judge calls)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
