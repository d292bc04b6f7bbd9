"""Stable keys: one hashing recipe for caches, checkpoints and anything keyed by its inputs."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def stable_key(*parts: Any) -> str:
    """A 16-hex-digit BLAKE2b hash of JSON-serialisable parts (dict keys sorted).

    The same parts give the same key in every process and on every machine (no Python
    ``hash`` randomisation); any change to any part changes it.
    """
    payload = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(payload, digest_size=8).hexdigest()
