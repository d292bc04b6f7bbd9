"""Append-only JSONL checkpoints that make long LLM stages resumable.

A checkpoint file is named by a key that hashes everything that determines the answers
(model, backend, endpoint, decoding parameters, prompt template); each line holds one
finished item with a hash of its input, so a changed item is never served from a stale
entry. Lines are flushed and fsync'd per batch; a torn last line (a crash mid-write) is
ignored on reading.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson


class JSONLCheckpoint:
    """Finished items by id, for one run key."""

    def __init__(self, directory: str | Path, key: str) -> None:
        """Args:
        directory: Folder holding checkpoint files.
        key: The run key (see :func:`stable_key`).
        """
        self.path = Path(directory) / f"{key}.jsonl"

    def load(self) -> dict[str, dict[str, Any]]:
        """Entries by id (the last one wins); unreadable lines are skipped."""
        entries: dict[str, dict[str, Any]] = {}
        if not self.path.is_file():
            return entries
        with self.path.open("rb") as fh:
            for line in fh:
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # torn write from a crash
                if isinstance(entry, dict) and "id" in entry:
                    entries[entry["id"]] = entry
        return entries

    def append(self, entries: Iterable[Mapping[str, Any]]) -> None:
        """Durably append entries (one batch)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as fh:
            for entry in entries:
                fh.write(orjson.dumps(entry) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())


class CheckpointStore:
    """A folder of checkpoints, one file per run key: what the catalog hands to a node."""

    def __init__(self, directory: str | Path) -> None:
        """Args:
        directory: Folder holding the checkpoint files (created on the first append).
        """
        self.directory = Path(directory)

    def for_key(self, key: str) -> JSONLCheckpoint:
        """The checkpoint of one run key."""
        return JSONLCheckpoint(self.directory, key)
