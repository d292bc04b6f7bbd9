"""SQLite cache of LLM results, keyed by everything that determines them.

:class:`ResponseCache` keeps JSON values by key (e.g. cluster labels written by the labeling
model); :class:`phase1b_kedro.judges.cache.VerdictCache` adds the verdict tables on the same
mechanism. Only valid results are written (errors are never cached), each as soon as it is
known, so a killed run resumes without asking the model again. WAL mode lets a reader open
the file while a run writes it. Keys come from :func:`phase1b_kedro.keys.stable_key`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_SCHEMA_JSON = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""


class ResponseCache:
    """Thread-safe get/put of JSON values by key (``path=None``: an in-memory cache).

    Usable as a context manager (closes the connection on exit).
    """

    #: ``CREATE TABLE IF NOT EXISTS`` statements run on opening (subclasses add theirs).
    SCHEMAS: tuple[str, ...] = (_SCHEMA_JSON,)

    def __init__(self, path: str | Path | None) -> None:
        """Args:
        path: SQLite file (created with its folder); ``None`` keeps the cache in memory.
        """
        self.path = Path(path) if path else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path) if self.path else ":memory:", check_same_thread=False,
                                   isolation_level=None, timeout=30)
        if self.path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for schema in self.SCHEMAS:
            self._db.execute(schema)
        self._lock = threading.Lock()

    def _select(self, sql: str, keys: Iterable[str]) -> list[tuple[Any, ...]]:
        """Rows of ``sql`` (with ``{marks}`` for the key placeholders) for ``keys``, 500 at a time."""
        keys = list(dict.fromkeys(keys))
        rows: list[tuple[Any, ...]] = []
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                rows.extend(self._db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk))
        return rows

    def get_json_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Cached values by key (decoded from JSON), for the keys that have one."""
        return {k: json.loads(v) for k, v in self._select("SELECT key, value FROM entries WHERE key IN ({marks})", keys)}

    def put_json(self, key: str, value: Any) -> None:
        """Store one JSON-serialisable result (only valid ones: errors are never cached)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", (key, json.dumps(value), time.time()))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
