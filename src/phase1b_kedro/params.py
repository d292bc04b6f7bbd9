"""Checks on parameter values, done once when a stage starts.

Kedro's CLI cannot pass a list with several items (``--params "sampling.prompt_fields=a"``
gives the string ``"a"``), so every list-typed parameter also accepts a single string as a
one-element list. Anything else stops the run at once with an error naming the parameter,
instead of (for example) a string silently iterated character by character.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ParameterError(ValueError):
    """A parameter has a value the stage cannot use; the message names the parameter."""


def string_list(value: Any, name: str, *, allow_empty: bool = True) -> tuple[str, ...]:
    """A list-of-strings parameter as a tuple; a single string is a one-element list.

    Args:
        value: The parameter's value (a list/tuple of strings, or one string).
        name: The parameter's full name, for the error (``sampling.prompt_fields``).
        allow_empty: Whether an empty list is acceptable.

    Returns:
        The strings, stripped, in order.

    Raises:
        ParameterError: For any other type, a non-string or empty item, or an empty list
            where one is not allowed.
    """
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ParameterError(f"{name} must be a list of strings (or one string), got {type(value).__name__} {value!r}")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise ParameterError(f"{name}[{i}] must be a non-empty string, got {item!r}")
        out.append(item.strip())
    if not out and not allow_empty:
        raise ParameterError(f"{name} must name at least one item")
    return tuple(out)


def choice(params: Mapping[str, Any], key: str, group: str, allowed: tuple[str, ...], default: str) -> str:
    """A parameter that must be one of ``allowed``."""
    value = params.get(key, default)
    if value not in allowed:
        raise ParameterError(f"{group}.{key} must be one of {allowed}, got {value!r}")
    return value


def fraction(params: Mapping[str, Any], key: str, group: str, default: float) -> float:
    """A parameter that must be a number in [0, 1]."""
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ParameterError(f"{group}.{key} must be a number between 0 and 1, got {value!r}")
    return float(value)
