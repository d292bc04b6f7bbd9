"""One loader for typed parameter groups: a frozen dataclass per group, unknown keys refused."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def load_config(cls: type[T], params: Mapping[str, Any] | None, group: str, **nested: Any) -> T:
    """Build the dataclass ``cls`` from a parameter group; missing or ``null`` keys keep defaults.

    Args:
        cls: A dataclass whose fields are the group's keys.
        params: The group (``None`` = all defaults).
        group: The group's dotted name, for the error message (e.g. ``judging.verifiable``).
        **nested: Already-built values for nested groups (they replace the raw dicts).

    Raises:
        ValueError: If the group is not a mapping (e.g. ``labeling.llm: true`` where a group of
            keys is expected), or has a key ``cls`` does not know (a typo would otherwise be
            ignored silently), naming the key and the known ones.
    """
    if params is not None and not isinstance(params, Mapping):
        known = sorted(f.name for f in fields(cls))  # type: ignore[arg-type]
        raise ValueError(f"{group} must be a group of keys {known}, got {type(params).__name__} {params!r}")
    params = dict(params or {})
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(params) - known
    if unknown:
        raise ValueError(f"{group}: unknown keys {sorted(unknown)}; known keys: {sorted(known)}")
    values = {k: v for k, v in params.items() if v is not None and k not in nested}
    return cls(**values, **nested)
