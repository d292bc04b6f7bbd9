"""Catalog datasets for record files.

kedro-datasets' ``pandas.JSONDataset`` reads JSONL, but a DataFrame is lossy for these
records: absent keys become NaN, ``null`` scores become floats, nested ``messages``/``meta``
round-trip as objects and id strings that look numeric are re-typed. The stages pass lists
of plain dicts, so these small datasets keep the file format (one JSON object per line)
exactly. The raw input is handed over as a :class:`RawInput`, a handle that the sampling
stage reads in byte ranges (never the whole file in memory), so that it can quarantine bad
lines (invalid UTF-8, malformed JSON, truncated last line) with their line numbers.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import IO, Any

import fsspec
import numpy as np
import orjson
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_protocol_and_path


class _LocalFileDataset(AbstractDataset):
    """What both datasets share: one local file, and kedro-viz metadata."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        """Args:
        filepath: Local path of the file.
        metadata: Free-form metadata (kedro-viz layer etc.), ignored by Kedro.
        """
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def _exists(self) -> bool:
        return Path(self._filepath).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class RawInput:
    """The raw input file, read in byte ranges: a path and a size, never the contents.

    Built by :class:`RawJSONLinesDataset` for a file (any fsspec URL), or from ``bytes``
    (tests, notebooks). Worker processes open their own handle on the same file.
    """

    def __init__(self, path: str | None = None, protocol: str = "file", size: int | None = None,
                 data: bytes | None = None, fs_args: dict[str, Any] | None = None) -> None:
        """Args:
        path: The file's path (without protocol), or ``None`` for in-memory ``data``.
        protocol: fsspec protocol of ``path``.
        size: The file's size in bytes (looked up when not given).
        data: In-memory contents instead of a file.
        fs_args: Extra arguments for the fsspec filesystem.
        """
        self.path, self.protocol, self.data = path, protocol, data
        self._fs_args = fs_args or {}
        if data is None:
            size = size if size is not None else self._fs().size(path)
        self.size = len(data) if data is not None else int(size)

    @classmethod
    def of(cls, raw: RawInput | bytes) -> RawInput:
        """Accept either a handle or plain bytes."""
        return raw if isinstance(raw, RawInput) else cls(data=bytes(raw))

    def _fs(self) -> Any:
        return fsspec.filesystem(self.protocol, **self._fs_args)

    def open(self) -> IO[bytes]:
        """A binary file object positioned at the start."""
        if self.data is not None:
            return io.BytesIO(self.data)
        return self._fs().open(self.path, "rb")

    def __repr__(self) -> str:
        where = f"{self.protocol}://{self.path}" if self.data is None else "<bytes>"
        return f"RawInput({where}, {self.size} bytes)"


class RawJSONLinesDataset(AbstractDataset):
    """Read-only: the raw JSONL input as a :class:`RawInput` handle (any fsspec URL).

    Missing and empty files are clear errors at load time.
    """

    def __init__(self, filepath: str, fs_args: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        """Args:
        filepath: Path or URL of the file (``s3://``, ``gs://``, ``memory://``, local...).
        fs_args: Extra arguments for the fsspec filesystem (credentials etc.).
        metadata: Free-form metadata (kedro-viz layer etc.), ignored by Kedro.
        """
        self._protocol, self._path = get_protocol_and_path(filepath)
        self._fs_args = fs_args or {}
        self._filepath = filepath
        self.metadata = metadata

    def load(self) -> RawInput:
        """The handle; raise ``DatasetError`` if the file is missing or holds only whitespace."""
        fs = fsspec.filesystem(self._protocol, **self._fs_args)
        if not fs.isfile(self._path):
            raise DatasetError(f"Input file not found: {self._filepath} (set raw_prompts.filepath in the catalog)")
        raw = RawInput(self._path, self._protocol, fs.size(self._path), fs_args=self._fs_args)
        with raw.open() as fh:
            while block := fh.read(1 << 20):
                if block.strip():
                    return raw
        raise DatasetError(f"Input file is empty: {self._filepath}")

    def save(self, data: Any) -> None:
        """Raw input is read-only."""
        raise DatasetError(f"{self._filepath} is a read-only input")

    def _exists(self) -> bool:
        return fsspec.filesystem(self._protocol, **self._fs_args).isfile(self._path)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath}


class RawBytesDataset(_LocalFileDataset):
    """Read-only: loads a small file's bytes unchanged (tests). Missing or empty files are clear errors."""

    def load(self) -> bytes:
        """Return the file's bytes; raise ``DatasetError`` if missing or empty."""
        path = Path(self._filepath)
        if not path.is_file():
            raise DatasetError(f"Input file not found: {path} (set raw_prompts.filepath in the catalog)")
        data = path.read_bytes()
        if not data.strip():
            raise DatasetError(f"Input file is empty: {path}")
        return data

    def save(self, data: None) -> None:
        """Raw input is read-only."""
        raise DatasetError(f"{self._filepath} is a read-only input")


class JSONLinesDataset(_LocalFileDataset):
    """A list of dicts stored as JSON Lines (UTF-8, one object per line, atomic save)."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None, missing_ok: bool = False) -> None:
        """Args:
        filepath: Local path of the file.
        metadata: Free-form metadata (kedro-viz layer etc.), ignored by Kedro.
        missing_ok: Load a missing file as an empty list (optional inputs such as human labels).
        """
        super().__init__(filepath, metadata)
        self._missing_ok = missing_ok

    def load(self) -> list[dict]:
        """Parse every non-blank line; a malformed line is an error naming its number."""
        path = Path(self._filepath)
        if not path.is_file() and self._missing_ok:
            return []
        if not path.is_file():
            raise DatasetError(f"File not found: {path}")
        records = []
        with path.open("rb") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    records.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{lineno}: malformed JSON ({exc})") from exc
        return records

    def save(self, data: list[dict]) -> None:
        """Write atomically (temp file + rename) so a crash never leaves half a file."""
        def write(fh: Any) -> None:
            for record in data:
                fh.write(orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS | OPT_NUMPY))
                fh.write(b"\n")
        _atomic_write(Path(self._filepath), write)


OPT_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(fh)`` on a temp file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class NpzDataset(_LocalFileDataset):
    """A dict of numpy arrays (e.g. ``ids`` and ``vectors``) in one ``.npz`` file (atomic save).

    Strings are stored as unicode arrays, never pickled objects, so loading needs no
    ``allow_pickle``.
    """

    def load(self) -> dict[str, np.ndarray]:
        """The arrays by name."""
        path = Path(self._filepath)
        if not path.is_file():
            raise DatasetError(f"File not found: {path}")
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}

    def save(self, data: dict[str, Any]) -> None:
        """Write the arrays (lists are converted) atomically."""
        arrays = {name: np.asarray(value) for name, value in data.items()}
        _atomic_write(Path(self._filepath), lambda fh: np.savez(fh, **arrays))
