"""SQLite verdict cache: one row per judged item, keyed by everything that determines it.

The key (see :func:`phase1b_kedro.judges.llm_judge.LLMJudge.item_key`) hashes the judge
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
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from phase1b_kedro.cache import ResponseCache

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


class VerdictCache(ResponseCache):
    """Thread-safe get/put of verdicts by key (``path=None``: an in-memory cache).

    Other LLM results (JSON values) go in the ``entries`` table of :class:`ResponseCache`.
    """

    SCHEMAS = (_SCHEMA, _SCHEMA_META, *ResponseCache.SCHEMAS)

    def get_many(self, keys: Iterable[str]) -> dict[str, tuple[float, str, dict[str, Any]]]:
        """Cached ``(score, rationale, meta)`` by key, for the keys that have one."""
        rows = self._select("SELECT v.key, v.score, v.rationale, m.meta FROM verdicts v "
                            "LEFT JOIN verdict_meta m ON m.key = v.key WHERE v.key IN ({marks})", keys)
        return {k: (s, r, json.loads(m) if m else {}) for k, s, r, m in rows}

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

