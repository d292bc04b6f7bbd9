"""SQLite verdict cache: one row per judged item, keyed by everything that determines it.

The key (see :func:`phase1b_kedro.judging.llm_judge.LLMJudge.item_key`) hashes the judge
model, endpoint, prompt-template hash, decoding parameters, the protocol (batch or single)
and the item's content (prompt, reference, acceptable answers, output), plus the permutation
number for a verdict from a permuted re-judging call. Each row also keeps where the item sat in
its call (``meta``: position and call size) so that a rerun served from the cache reports the
same position audit (table ``verdict_meta``, so that older code still reads and writes the
file). Only valid verdicts
are written, each as soon as its call returns, so a killed run resumes without re-sending
any item that already has one; errors are never cached. WAL mode lets a reader open the
file while a run writes it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY,
    score REAL NOT NULL,
    rationale TEXT NOT NULL,
    judge TEXT NOT NULL,
    created REAL NOT NULL
)
"""
# Where each verdict's item sat in its call, in a table of its own: a cache file stays
# readable and writable by code that predates it (the verdicts table is unchanged).
_SCHEMA_META = """
CREATE TABLE IF NOT EXISTS verdict_meta (
    key TEXT PRIMARY KEY,
    meta TEXT NOT NULL
)
"""
_SCHEMA_JSON = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""


class VerdictCache:
    """Thread-safe get/put of verdicts by key (``path=None``: an in-memory cache)."""

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
        self._db.execute(_SCHEMA)
        self._db.execute(_SCHEMA_JSON)
        self._db.execute(_SCHEMA_META)
        self._lock = threading.Lock()

    def get_many(self, keys: Iterable[str]) -> dict[str, tuple[float, str, dict[str, Any]]]:
        """Cached ``(score, rationale, meta)`` by key, for the keys that have one."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, tuple[float, str, dict[str, Any]]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT v.key, v.score, v.rationale, m.meta FROM verdicts v "
                                        f"LEFT JOIN verdict_meta m ON m.key = v.key WHERE v.key IN ({marks})", chunk)
                found.update({k: (s, r, json.loads(m) if m else {}) for k, s, r, m in rows})
        return found

    def put_many(self, rows: Iterable[tuple[str, float, str, str, dict[str, Any]]]) -> None:
        """Store ``(key, score, rationale, judge, meta)`` rows in one transaction."""
        now = time.time()
        rows = list(rows)
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?)",
                                 [(k, float(s), r, j, now) for k, s, r, j, _ in rows])
            self._db.executemany("INSERT OR REPLACE INTO verdict_meta VALUES (?, ?)",
                                 [(k, json.dumps(m)) for k, _, _, _, m in rows if m])
            self._db.execute("COMMIT")

    def get_json_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Other cached LLM results (e.g. cluster labels) by key, decoded from JSON."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT key, value FROM entries WHERE key IN ({marks})", chunk)
                found.update({k: json.loads(v) for k, v in rows})
        return found

    def put_json(self, key: str, value: Any) -> None:
        """Store one JSON-serialisable result (only valid ones: errors are never cached)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", (key, json.dumps(value), time.time()))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])

    @classmethod
    def count(cls, path: str | Path) -> int:
        """Verdicts in the cache file at ``path``; 0 while it does not exist or is locked.

        For watching a run from outside (benchmarks, tests): never creates the file.
        """
        if not Path(path).is_file():
            return 0
        try:
            with cls(path) as cache:
                return len(cache)
        except sqlite3.Error:
            return 0

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> VerdictCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
