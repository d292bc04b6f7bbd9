"""Swappable estimators written in parameters as ``class`` + ``kwargs``, built in one place.

A parameter group such as::

    clusterer:
      class: sklearn.cluster.HDBSCAN     # any importable class (dotted path)
      kwargs: {min_cluster_size: 10}

becomes an :class:`EstimatorSpec`. :meth:`EstimatorSpec.from_params` checks it when the
parameters are read, before any data is: the class must import, must be a class, must have
the methods its step calls, and must accept every keyword in ``kwargs`` (checked against its
constructor's signature, without building it). :meth:`EstimatorSpec.build` then builds it
with the run's values for keys the caller resolves (``auto`` values, seeds).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from phase1b_kedro.configs import load_config


@dataclass(frozen=True)
class EstimatorSpec:
    """One step's estimator: a dotted class path and the keyword arguments it is built with.

    The parameter key is ``class`` (a Python keyword, hence the field name ``class_path``).
    """

    class_path: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], group: str, methods: Sequence[str]) -> EstimatorSpec:
        """Read and check ``{class, kwargs}``.

        Args:
            params: The group: ``class`` (required, e.g. ``sklearn.cluster.KMeans``) and
                ``kwargs`` (optional mapping).
            group: The group's dotted name for errors (e.g. ``clustering.clusterer``).
            methods: Methods the step calls on the built object (e.g. ``("fit",)``).

        Raises:
            ValueError: Naming ``group`` if the group is not a mapping, has an unknown key or no
                ``class``, or the class cannot be imported, is not a class, lacks one of
                ``methods`` or does not accept a keyword in ``kwargs``.
        """
        if not isinstance(params, Mapping):
            raise ValueError(f"{group}: expected {{class: <dotted.path>, kwargs: {{...}}}}, got {params!r}")
        if not params.get("class"):
            raise ValueError(f"{group}: 'class' is required (a dotted path such as sklearn.cluster.KMeans)")
        raw = {("class_path" if k == "class" else k): v for k, v in params.items()}
        spec = load_config(cls, raw, group)
        if not isinstance(spec.kwargs, Mapping):
            raise ValueError(f"{group}.kwargs: expected a mapping of keyword arguments, got {spec.kwargs!r}")
        spec.check(group, methods)
        return spec

    def import_class(self, group: str) -> type:
        """The class ``class_path`` names.

        Raises:
            ValueError: Naming ``group`` if the path is not ``module.Class``, the module or the
                attribute does not exist, or the attribute is not a class.
        """
        module_name, _, name = str(self.class_path).rpartition(".")
        if not module_name:
            raise ValueError(f"{group}.class: {self.class_path!r} is not a dotted path (module.Class)")
        try:
            found = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"{group}.class: cannot import {self.class_path!r} ({exc})") from exc
        if not inspect.isclass(found):
            raise ValueError(f"{group}.class: {self.class_path!r} is not a class")
        return found

    def check(self, group: str, methods: Sequence[str]) -> None:
        """Check the class has ``methods`` and accepts ``kwargs`` (nothing is built).

        Raises:
            ValueError: As :meth:`from_params`.
        """
        klass = self.import_class(group)
        missing = [m for m in methods if not callable(getattr(klass, m, None))]
        if missing:
            raise ValueError(f"{group}.class: {self.class_path} has no {', '.join(missing)}() "
                             f"(this step needs {', '.join(methods)})")
        try:
            inspect.signature(klass).bind_partial(**self.kwargs)
        except TypeError as exc:
            raise ValueError(f"{group}.kwargs: {self.class_path} does not accept these arguments ({exc})") from exc

    def build(self, group: str, **run_values: Any) -> Any:
        """An instance built with ``kwargs`` updated by ``run_values``.

        Args:
            group: The group's dotted name for errors.
            **run_values: Keyword values fixed for this run (they replace the same keys).

        Raises:
            ValueError: Naming ``group`` if the constructor refuses the arguments.
        """
        try:
            return self.import_class(group)(**{**self.kwargs, **run_values})
        except TypeError as exc:
            raise ValueError(f"{group}: cannot build {self.class_path} ({exc})") from exc

    def as_dict(self) -> dict[str, Any]:
        """``{"class": ..., "kwargs": {...}}``, the parameter shape (for run records)."""
        return {"class": self.class_path, "kwargs": dict(self.kwargs)}
