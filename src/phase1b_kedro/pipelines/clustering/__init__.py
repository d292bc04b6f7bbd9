"""Clustering: embed the failures and group them (noise kept as ``unclustered``)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
