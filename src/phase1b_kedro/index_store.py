"""A table of fixed-width columns kept on disk, read and written in row ranges; a list of
records kept on disk.

The sampling stage indexes every line of its input (a few numbers per record). Held in
memory, that index grows with the file (about 45 bytes a record: 450 MB for ten million
records, before any temporary); kept here, one binary file per column, every whole-index
operation reads it in chunks of :data:`CHUNK` rows, so the memory a run needs does not depend
on the size of its input. Files are plain native-endian arrays (``numpy.ndarray.tofile``):
nothing else reads them, and they are removed with the store. The records a stage sets
aside (rejected lines: a preview each) are as many as its input has bad or repeated lines,
so they go to a :class:`RecordLog` on disk too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import weakref
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import orjson

#: Rows per chunk of a whole-column operation: bounds its temporaries (a few MB a column).
CHUNK = 1 << 19


class ColumnStore:
    """Columns of ``n`` rows each, one file per column in ``directory``.

    The store owns ``directory``: it is removed by :meth:`close`, or when the store is
    garbage-collected, or at interpreter exit (``weakref.finalize``).

    Args:
        directory: An existing, empty directory.
        n: Rows in every column.
    """

    def __init__(self, directory: str, n: int) -> None:
        self.directory = directory
        self.n = int(n)
        self.dtypes: dict[str, np.dtype] = {}
        self._finalizer = weakref.finalize(self, shutil.rmtree, directory, True)

    def __deepcopy__(self, memo: dict) -> ColumnStore:
        """The same store: it is a handle to files (a copy would remove them when either goes)."""
        return self

    def __copy__(self) -> ColumnStore:
        return self

    def path(self, name: str) -> str:
        return os.path.join(self.directory, f"{name}.col")

    def add(self, name: str, dtype: type | np.dtype, fill: int | float | None = None) -> None:
        """Create column ``name`` (``n`` rows), zero-filled or ``fill``-filled, written in chunks."""
        dtype = np.dtype(dtype)
        with open(self.path(name), "wb") as fh:
            if fill is None or fill == 0:
                fh.truncate(self.n * dtype.itemsize)  # a sparse file: reads back as zeros
            else:
                block = np.full(min(self.n, CHUNK), fill, dtype=dtype)
                for lo in range(0, self.n, CHUNK):
                    block[:min(CHUNK, self.n - lo)].tofile(fh)
        self.dtypes[name] = dtype

    def adopt(self, name: str, dtype: type | np.dtype) -> None:
        """Declare column ``name`` whose file (:meth:`path`) was written by someone else."""
        dtype = np.dtype(dtype)
        size = os.path.getsize(self.path(name))
        if size != self.n * dtype.itemsize:
            raise ValueError(f"column {name}: {size} bytes on disk, expected {self.n} x {dtype.itemsize}")
        self.dtypes[name] = dtype

    def read(self, name: str, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Rows ``[lo, hi)`` of a column (a fresh in-memory array)."""
        hi = self.n if hi is None else min(hi, self.n)
        dtype = self.dtypes[name]
        if hi <= lo:
            return np.empty(0, dtype=dtype)
        return np.fromfile(self.path(name), dtype=dtype, count=hi - lo, offset=lo * dtype.itemsize)

    def write(self, name: str, lo: int, values: np.ndarray) -> None:
        """Overwrite rows ``[lo, lo + len(values))`` of a column. Writers of disjoint ranges may
        run in different processes at once."""
        dtype = self.dtypes[name]
        with open(self.path(name), "r+b") as fh:
            fh.seek(lo * dtype.itemsize)
            np.ascontiguousarray(values, dtype=dtype).tofile(fh)

    def ranges(self, lo: int = 0, hi: int | None = None, size: int | None = None) -> Iterator[tuple[int, int]]:
        """``(lo, hi)`` of each chunk of rows of ``[lo, hi)`` (``size`` rows; default :data:`CHUNK`)."""
        hi = self.n if hi is None else hi
        size = size or CHUNK
        for start in range(lo, hi, size):
            yield start, min(hi, start + size)

    def chunks(self, names: Sequence[str], lo: int = 0, hi: int | None = None) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """``(first row, {name: values})`` for each chunk of rows of ``[lo, hi)``."""
        for start, stop in self.ranges(lo, hi):
            yield start, {name: self.read(name, start, stop) for name in names}

    def take(self, names: Sequence[str], rows: np.ndarray) -> dict[str, np.ndarray]:
        """The values of ``names`` at ``rows`` (ascending row numbers), read chunk by chunk:
        only the span of rows that a chunk holds is read."""
        rows = np.asarray(rows, dtype=np.int64)
        out = {name: np.empty(len(rows), dtype=self.dtypes[name]) for name in names}
        if not len(rows):
            return out
        bounds = np.searchsorted(rows, np.arange(0, self.n + CHUNK, CHUNK))
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if a == b:
                continue
            first, last = int(rows[a]), int(rows[b - 1]) + 1
            for name in names:
                out[name][a:b] = self.read(name, first, last)[rows[a:b] - first]
        return out

    def count(self, name: str, minlength: int, skip: np.ndarray | None = None) -> np.ndarray:
        """``bincount`` of a non-negative integer column (values < 0 not counted), leaving out
        the ascending row numbers ``skip``."""
        total = np.zeros(minlength, dtype=np.int64)
        for lo, hi in self.ranges():
            values = self.read(name, lo, hi).astype(np.int64)
            keep = values >= 0
            if skip is not None and len(skip):
                keep &= ~in_sorted(np.arange(lo, hi), skip)
            total += np.bincount(values[keep], minlength=minlength)[:minlength]
        return total

    def close(self) -> None:
        """Remove the directory and its files (idempotent)."""
        self._finalizer()


def in_sorted(values: np.ndarray, sorted_array: np.ndarray) -> np.ndarray:
    """``values`` found in ``sorted_array`` (ascending), as a boolean mask; a binary search
    each, no hash table of ``sorted_array``."""
    if not len(sorted_array):
        return np.zeros(len(values), dtype=bool)
    pos = np.searchsorted(sorted_array, values)
    pos[pos == len(sorted_array)] = 0
    return sorted_array[pos] == values


class RecordLog(Sequence):
    """JSON objects appended to a temporary JSON Lines file, read back in order (or by position).

    Memory: 8 bytes a record (its offset in the file). The file is removed by :meth:`close`,
    when the log is garbage-collected, or at interpreter exit; a copy (``copy.deepcopy``, as a
    Kedro ``MemoryDataset`` may make) is the same log. Compares equal to a list of the same dicts.

    Args:
        directory: Where the file goes (default: the temporary directory).
        prefix: The file name's start.
    """

    def __init__(self, directory: str | None = None, prefix: str = "records-") -> None:
        fd, self.path = tempfile.mkstemp(prefix=prefix, suffix=".jsonl", dir=directory)
        self._out = os.fdopen(fd, "wb")
        self._offsets = array("q")
        self._finalizer = weakref.finalize(self, _remove_file, self.path, self._out)

    @classmethod
    def of(cls, records: Iterable[dict[str, Any]], directory: str | None = None, prefix: str = "records-") -> RecordLog:
        """A log holding ``records`` (any iterable, consumed once)."""
        log = cls(directory, prefix)
        log.extend(records)
        return log

    def append(self, record: dict[str, Any]) -> None:
        self._offsets.append(self._out.tell())
        self._out.write(dump_line(record))

    def extend(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.append(record)

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("RecordLog index out of range")
        self._out.flush()
        with open(self.path, "rb") as fh:
            fh.seek(self._offsets[i])
            return load_line(fh.readline())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self._out.flush()
        with open(self.path, "rb") as fh:
            for _ in range(len(self)):
                yield load_line(fh.readline())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (RecordLog, list, tuple)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RecordLog({len(self)} records at {self.path})"

    def __deepcopy__(self, memo: dict) -> RecordLog:
        return self

    def __copy__(self) -> RecordLog:
        return self

    def close(self) -> None:
        """Remove the file (idempotent)."""
        self._finalizer()


def dump_line(record: Any) -> bytes:
    """One JSON line (orjson; a string with a lone surrogate, which orjson refuses, is escaped
    by the standard library instead)."""
    try:
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(record).encode() + b"\n"


def load_line(line: bytes) -> Any:
    """The value of a line written by :func:`dump_line`."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:  # written by the standard library (escaped surrogates)
        return json.loads(line)


def _remove_file(path: str, handle: Any) -> None:
    with contextlib.suppress(OSError):  # a full disk fails the flush: the file goes anyway
        handle.close()
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
