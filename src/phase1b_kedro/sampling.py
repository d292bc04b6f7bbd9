"""Reading, indexing and stratified sampling of a large JSONL of prompt/reference pairs.

The input is streamed, never held whole in memory: it is cut into byte ranges at line
starts, and worker processes (``scan_workers``) read their range in blocks. Each line is
parsed and normalised once into a compact index row (line number, byte offset, content
hash, id hash, format, source, category field); the text the category inference reads (the start of
the system turn and prompt) of records without a usable category field is spilled to a
temporary file, with a bounded, deterministic subset of the labelled records kept for
training. A second pass over the spill applies the file's own classifier and the rules
(:mod:`phase1b_kedro.categories`), and the categories are resolved. Only the sampled lines
are read again (by offset) and turned into full records, plus the lines of the duplicates
(their previews and the ids the rejections name).

Time: the per-record loops run with the cyclic garbage collector paused (they allocate
millions of short-lived acyclic objects); while the workers scan, this process hashes the
input and imports scikit-learn; while they classify the records of sources with labelled
records, it cross-validates the classifier.

Memory: independent of the input's size. The index (about 50 bytes a record, ids held as
64-bit hashes) is kept on disk (:class:`RecordIndex`, a
:class:`~phase1b_kedro.index_store.ColumnStore`): the workers append their rows to column
files every :attr:`_Part.FLUSH` rows; categories, de-duplication (hash-partitioned on disk,
:func:`_repeats`), counts and the sample (bottom-k per category, :func:`stratified_sample`)
read and write it in chunks of ``CHUNK`` rows; the spilled text lives on disk, and so do the
rejected lines (:class:`~phase1b_kedro.index_store.RecordLog`, 8 bytes a rejection in
memory). What still grows is a few numbers (about 100 bytes at the peak) per record that
shares its content or id with another; sources are capped (``max_sources``). A stopped run (Ctrl-C,
SIGTERM) kills its workers and removes its files (:func:`_map`, :func:`sigterm_as_exit`; a
killed one's are removed by the next run).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import gc
import hashlib
import heapq
import io
import itertools
import logging
import math
import multiprocessing as mp
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

try:
    import fcntl
except ImportError:  # not POSIX: stale files are judged by their pid alone
    fcntl = None  # type: ignore[assignment]

import numpy as np
import orjson
from xxhash import xxh3_64_intdigest

from phase1b_kedro.allocation import allocate
from phase1b_kedro.categories import (
    METHODS,
    CategoryClassifier,
    InferenceSettings,
    TextCategoryModel,
    apply_decisions,
    classifier_from_params,
    classifier_text,
    documents,
    estimate_accuracy,
    majorities,
    majority_lookup,
    tier_counts,
    train_classifier,
)
from phase1b_kedro.configs import load_config
from phase1b_kedro.datasets import RawInput, unlocked
from phase1b_kedro.index_store import (
    CHUNK,
    ColumnStore,
    RecordLog,
    dump_line,
    in_sorted,
    load_line,
)
from phase1b_kedro.params import ParameterError, choice
from phase1b_kedro.records import (
    CATEGORIES,
    FORMATS,
    FieldConfig,
    Normalised,
    NumberLiteralNeeded,
    Rejection,
    normalise,
    normalise_line,
    source_id,
)

if TYPE_CHECKING:  # pandas is imported where a frame is made (it costs half a second of start-up)
    import pandas as pd

logger = logging.getLogger(__name__)

_BOM = b"\xef\xbb\xbf"
#: Below this many bytes per worker the scan stays in-process (forking costs more than it saves).
PARALLEL_MIN_BYTES = 32 << 20
_RAW_PREVIEW = 300
_CAT_CODE = {c: i for i, c in enumerate(CATEGORIES)}
_FMT_CODE = {f: i for i, f in enumerate(FORMATS)}
#: Bytes read at a time while scanning.
_BLOCK = 4 << 20
#: Rows per classifier/rules batch in the second pass.
_BATCH = 10_000
#: Seconds between two progress lines while a large input is indexed.
PROGRESS_EVERY = 10.0
#: A parallel scan cuts the file into this many ranges per worker (each at least
#: ``PARALLEL_MIN_BYTES / RANGES_PER_WORKER``), taken in turn by whichever worker is free: a
#: worker slowed by the others (this process works meanwhile) or by costlier lines takes fewer.
RANGES_PER_WORKER = 4


class BadRecordError(ValueError):
    """Raised under ``on_bad_record: fail`` for the first unusable line."""


class NoRecordsError(ValueError):
    """Raised when not one input line could be used; the message names the likely cause."""


class RecordIndex:
    """The index of a scan: one row per usable record, in input order, kept on disk.

    Its columns live in a :class:`~phase1b_kedro.index_store.ColumnStore` (about 50 bytes a
    record on disk, none in memory); every whole-index operation reads them in chunks, so the
    memory it takes does not grow with the input. ``dropped`` (ascending row numbers) are rows
    left out of this view: the duplicates, once :func:`deduplicate` has found them.

    Columns: ``line`` (1-based input line), ``offset`` (bytes), ``key`` (64-bit content hash),
    ``id_hash`` (:func:`id_hash`), ``id_from_source`` (0/1), ``fmt`` (a :data:`FORMATS` code),
    ``source`` (an index into ``sources``, -1: none), ``category`` (a :data:`CATEGORIES` code),
    ``method`` (a :data:`METHODS` code), ``clf_conf`` (the classifier's probability), and the
    working columns of the category decision.
    """

    #: Columns with labels: name in :meth:`counts` -> (store column, labels).
    LABELLED = {"category": ("category", CATEGORIES), "category_method": ("method", METHODS),
                "format": ("fmt", FORMATS)}

    def __init__(self, store: ColumnStore, sources: Sequence[str], dropped: np.ndarray | None = None) -> None:
        self.store = store
        self.sources = list(sources)
        self.dropped = np.zeros(0, dtype=np.int64) if dropped is None else np.asarray(dropped, dtype=np.int64)

    def __len__(self) -> int:
        return self.store.n - len(self.dropped)

    def without(self, rows: np.ndarray) -> RecordIndex:
        """This view less ``rows`` (the store is shared, not copied)."""
        return RecordIndex(self.store, self.sources, np.union1d(self.dropped, np.asarray(rows, dtype=np.int64)))

    def chunks(self, names: Sequence[str]) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """``(row numbers, {name: values})`` of the rows in this view, a chunk at a time."""
        for lo, cols in self.store.chunks(names):
            rows = np.arange(lo, lo + len(cols[names[0]]), dtype=np.int64)
            if len(self.dropped):
                keep = ~in_sorted(rows, self.dropped)
                rows, cols = rows[keep], {name: values[keep] for name, values in cols.items()}
            yield rows, cols

    def counts(self, name: str) -> dict[str, int]:
        """``{label: records}`` of ``category``, ``category_method`` or ``format`` (every label, zeros included)."""
        column, labels = self.LABELLED[name]
        counts = self.store.count(column, len(labels), skip=self.dropped)
        return {label: int(c) for label, c in zip(labels, counts, strict=True)}

    def total(self, name: str) -> int:
        """The sum of a numeric column over this view."""
        return int(sum(int(cols[name].sum(dtype=np.int64)) for _, cols in self.chunks([name])))

    def frame(self, rows: np.ndarray | None = None) -> pd.DataFrame:
        """The given rows (ascending store row numbers; default: every row of this view) as a
        DataFrame: ``line``, ``offset``, ``id_hash``, ``id_from_source``, ``key``, ``format``,
        ``category``, ``category_method``, ``category_confidence`` (NaN unless the classifier
        decided), ``source`` (None when no record names one)."""
        if rows is None:
            rows = np.setdiff1d(np.arange(self.store.n, dtype=np.int64), self.dropped, assume_unique=True)
        c = self.store.take(["line", "offset", "id_hash", "id_from_source", "key", "fmt", "category", "method",
                             "clf_conf", "source"], rows)
        import pandas as pd

        return pd.DataFrame({
            "line": c["line"],
            "offset": c["offset"],
            "id_hash": c["id_hash"],
            "id_from_source": c["id_from_source"].view(np.bool_),
            "key": c["key"],
            "format": pd.Categorical.from_codes(c["fmt"], categories=list(FORMATS)),
            "category": pd.Categorical.from_codes(c["category"], categories=list(CATEGORIES)),
            "category_method": pd.Categorical.from_codes(c["method"], categories=list(METHODS)),
            "category_confidence": np.where(c["method"] == METHODS.index("classifier"), c["clf_conf"],
                                            np.float32(np.nan)),
            "source": pd.Categorical.from_codes(c["source"], categories=self.sources) if self.sources else None,
        }, copy=False)


@dataclass
class ScanResult:
    """What one pass over the input found."""

    records: RecordIndex
    rejected: RecordLog
    lines_read: int
    blank_lines: int
    input_sha256: str
    input_bytes: int
    categories: dict[str, Any] = field(default_factory=dict)

    @property
    def index(self) -> pd.DataFrame:
        """The whole index as a DataFrame (for small inputs: tests, scripts)."""
        return self.records.frame()


def parse_line(raw: bytes, is_last: bool) -> Any | Rejection:
    """Decode one line to a JSON value, or say precisely why it cannot be."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as uexc:
            if is_last and uexc.reason == "unexpected end of data":  # cut inside a character
                return Rejection("truncated_last_line", f"last line ends inside a UTF-8 character ({exc})")
            return Rejection("invalid_utf8", f"byte 0x{raw[uexc.start]:02x} at column {uexc.start + 1}")
        # orjson counts the line's own newline as a second line: give the place in the line.
        where = f"{exc.msg} at character {exc.pos + 1} of the line" if hasattr(exc, "pos") else str(exc)
        if is_last:
            return Rejection("truncated_last_line", f"last line is not complete JSON ({where})")
        return Rejection("malformed_json", where)


def rejection_record(lineno: int, rej: Rejection, raw: bytes) -> dict[str, Any]:
    """The quarantined form of a bad line: where, why, and a preview of what it held."""
    return {
        "line": lineno,
        "reason": rej.reason,
        "detail": rej.detail,
        "id": None,  # a line that does not normalise has no trustworthy id
        "raw_preview": _preview(raw),
    }


def _preview(raw: bytes) -> str:
    """The start of a line as text (``_RAW_PREVIEW`` bytes; undecodable bytes replaced)."""
    return raw[:_RAW_PREVIEW].decode("utf-8", errors="replace").rstrip("\r\n")


@dataclass(frozen=True)
class SamplingSettings:
    """The ``sampling`` parameter group, checked as a whole before any line is read.

    The field lists (``*_fields``, ``max_prompt_chars``) are :class:`FieldConfig`'s, the
    ``category_*`` keys :mod:`phase1b_kedro.categories`'; each is checked by its owner here.
    """

    num_samples: int = 200
    min_per_category: int = 12
    seed: int = 42
    input_format: str = "auto"
    on_bad_record: str = "quarantine"
    max_prompt_chars: int = 200_000
    #: ``auto`` (the core count) or a number of worker processes.
    scan_workers: int | str = "auto"
    prompt_fields: Any = None
    response_fields: Any = None
    id_fields: Any = None
    system_fields: Any = None
    source_fields: Any = None
    category_fields: Any = None
    category_inference: Mapping[str, Any] | None = None
    category_aliases: Mapping[str, Any] | None = None
    category_rules: Mapping[str, Any] | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> SamplingSettings:
        """Build and check the group.

        Raises:
            ValueError: For a key the stage does not know (named, with the known ones).
            ParameterError: For a value the stage cannot use (named).
        """
        settings = load_config(cls, params, "sampling")
        for name in ("num_samples", "min_per_category", "seed"):
            value = getattr(settings, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ParameterError(f"sampling.{name} must be a non-negative integer, got {value!r}")
        chars = settings.max_prompt_chars
        if isinstance(chars, bool) or not isinstance(chars, int) or chars < 1:
            raise ParameterError(f"sampling.max_prompt_chars must be a positive integer, got {chars!r}")
        workers = settings.scan_workers
        if workers != "auto" and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ParameterError(f"sampling.scan_workers must be auto or a positive integer, got {workers!r}")
        return settings


class Scanner:
    """Turns lines into index rows and rejections, under one configuration.

    Every parameter is checked here, before any line is read.
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        """Args:
        params: The ``sampling`` parameter group.

        Raises:
            ParameterError: For a parameter the stage cannot use (named in the message).
        """
        self.settings = SamplingSettings.from_params(params)
        self.cfg = FieldConfig.from_params(params)
        self.forced_format = choice(params, "input_format", "sampling", ("auto", *FORMATS), "auto")
        self.policy = choice(params, "on_bad_record", "sampling", ("quarantine", "fail"), "quarantine")
        self.classifier: CategoryClassifier = classifier_from_params(params)
        self.inference = InferenceSettings.from_params(params)

    def record(self, raw: bytes, is_last: bool, with_meta: bool = True) -> Normalised | Rejection:
        """Parse and normalise one line; any exception quarantines the line, never the run.

        ``with_meta=False`` (the index) leaves the record's ``meta`` empty.
        """
        try:
            obj = parse_line(raw, is_last)
            if isinstance(obj, Rejection):
                return obj
            try:
                return normalise(obj, self.cfg, self.forced_format, with_meta)
            except NumberLiteralNeeded:  # a number in a text field: read again, keeping its literal
                return normalise_line(raw, self.cfg, self.forced_format, with_meta)
        except Exception as exc:  # a shape no parser foresaw: this line only
            return Rejection("unexpected_error", f"{type(exc).__name__}: {exc}")


@dataclass
class _Part:
    """One byte range's index rows (local line numbers), rejections and spill."""

    lines: int = 0
    blanks: int = 0
    line: array = field(default_factory=lambda: array("q"))
    offset: array = field(default_factory=lambda: array("q"))
    key: array = field(default_factory=lambda: array("Q"))
    fmt: array = field(default_factory=lambda: array("b"))
    #: :func:`source_hash` of the record's source (0: none); the store holds source codes.
    source: array = field(default_factory=lambda: array("Q"))
    field_cat: array = field(default_factory=lambda: array("b"))
    id_from_source: array = field(default_factory=lambda: array("b"))
    #: 64-bit hash of the record's id (:func:`id_hash`): ids are not held as strings.
    id_hash: array = field(default_factory=lambda: array("Q"))
    #: The first ``max_sources`` distinct sources of the range: name -> :func:`source_hash`.
    sources: dict[str, int] = field(default_factory=dict)
    #: Records whose source is not among them.
    unlisted_sources: int = 0
    #: Lines rejected (each written to the file ``spill`` + ``.rejected`` as it is found).
    rejected: int = 0
    spill: str = ""
    #: Index rows of this range written to the column files so far.
    count: int = 0

    #: The index columns: name, dtype in the worker's files, dtype in the store.
    COLUMNS = (("line", np.int64, np.int64), ("offset", np.int64, np.int64), ("key", np.uint64, np.uint64),
               ("fmt", np.int8, np.int8), ("source", np.uint64, np.int32), ("field_cat", np.int8, np.int8),
               ("id_from_source", np.int8, np.int8), ("id_hash", np.uint64, np.uint64))
    #: Rows held in memory before they are appended to the column files.
    FLUSH = 1 << 16

    def flush(self) -> None:
        """Append the rows held so far to the column files (``spill`` + ``.`` + name) and
        release them: a worker holds at most :attr:`FLUSH` rows, and the columns go back to the
        parent through the disk, not through a pickled copy."""
        self.count += len(self.line)
        for name, _, _ in self.COLUMNS:
            with open(f"{self.spill}.{name}", "ab") as fh:
                getattr(self, name).tofile(fh)
            setattr(self, name, array(getattr(self, name).typecode))

    def read_column(self, name: str, lo: int, hi: int) -> np.ndarray:
        """Rows ``[lo, hi)`` of one column written by :meth:`flush`."""
        dtype = np.dtype(next(d for n, d, _ in self.COLUMNS if n == name))
        return np.fromfile(f"{self.spill}.{name}", dtype=dtype, count=hi - lo, offset=lo * dtype.itemsize)


def _line_starts(raw: RawInput, n: int) -> list[int]:
    """``n + 1`` boundaries cutting the file into ranges that start at line starts."""
    cuts = [0]
    with raw.open() as fh:
        for i in range(1, n):
            fh.seek(max(cuts[-1], raw.size * i // n))
            fh.readline()  # to the start of the next line
            pos = fh.tell()
            if pos > cuts[-1] and pos < raw.size:
                cuts.append(pos)
    return cuts + [raw.size]


def _lines(raw: RawInput, start: int, stop: int) -> Iterator[tuple[int, bytes]]:
    """``(byte offset, line)`` of each line starting in ``[start, stop)``, read in blocks.

    A line keeps its ``\\n`` (the last line of the file may have none); only ``\\n`` ends a line.
    Each block is read once and its lines are cut from it without copying the block: the next
    read starts at the first line the block did not hold whole (read again, not joined), so a
    scan allocates one block at a time (fresh multi-MB buffers cost a page fault per 4 KiB).
    """
    pos = start
    with raw.open() as fh:
        while pos < stop:
            fh.seek(pos)
            block = fh.read(_BLOCK)
            if not block:
                return
            whole = len(block) if pos + len(block) >= raw.size else block.rfind(b"\n") + 1
            if not whole:  # a line longer than a block: read on to its end
                parts = [block]
                while more := fh.read(_BLOCK):
                    end = more.find(b"\n") + 1
                    parts.append(more[:end] if end else more)
                    if end:
                        break
                line = b"".join(parts)
                yield pos, line
                pos += len(line)
                continue
            for line in io.BytesIO(block):  # shares the block's buffer
                if pos >= stop:
                    return
                yield pos, line
                pos += len(line)
                whole -= len(line)
                if whole <= 0:
                    break


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (the loops below allocate millions of short-lived,
    acyclic containers: collecting them cost a third of the time); reference counting still
    frees them at once."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _scan_range(raw: RawInput, start: int, stop: int, scanner: Scanner, spill_dir: str, train_cap: int,
                progress: Any = None, slot: int = 0) -> _Part:
    """Index the lines starting in ``[start, stop)``; every 4,096 lines, write the bytes done
    into ``progress[slot]`` (shared memory the parent reads, see :func:`_progress_reporter`)."""
    part = _Part()
    fd, part.spill = tempfile.mkstemp(dir=spill_dir, suffix=".spill")
    cfg_field, record, size = scanner.classifier.field_category, scanner.record, raw.size
    # The range's labelled records with the smallest content hashes, a heap of
    # (-key, -offset, system, prompt, source, category) (the offset breaks ties: the same
    # content in two lines); written to spill + ".train" when the range is done.
    train: list[tuple] = []
    sources = part.sources
    max_sources = scanner.inference.max_sources
    add_line, add_offset, add_key, add_fmt = part.line.append, part.offset.append, part.key.append, part.fmt.append
    add_source, add_field, add_from, add_id = (part.source.append, part.field_cat.append,
                                               part.id_from_source.append, part.id_hash.append)
    lines = 0
    with os.fdopen(fd, "wb") as spill, open(f"{part.spill}.rejected", "wb") as rejected, _gc_paused():
        write = spill.write
        for offset, line in _lines(raw, start, stop):
            lines += 1
            if not lines & 4095:
                if progress is not None:
                    progress[slot] = offset - start
                if len(part.line) >= part.FLUSH:
                    part.flush()
                    add_line, add_offset, add_key, add_fmt = (part.line.append, part.offset.append,
                                                              part.key.append, part.fmt.append)
                    add_source, add_field, add_from, add_id = (part.source.append, part.field_cat.append,
                                                               part.id_from_source.append, part.id_hash.append)
            is_last = offset + len(line) == size and not line.endswith(b"\n")
            if offset == 0 and line.startswith(_BOM):
                line = line[len(_BOM):]
            if not line or line.isspace():
                part.blanks += 1
                continue
            rec = record(line, is_last, False)
            if isinstance(rec, Rejection):
                if scanner.policy == "fail":
                    lineno = _count_lines(raw, start) + lines
                    raise BadRecordError(f"input line {lineno}: {rec.reason}: {rec.detail}")
                rejected.write(dump_line(rejection_record(lines, rec, line)))
                part.rejected += 1
                continue
            key = int(rec.key, 16)
            add_line(lines)
            add_offset(offset)
            add_key(key)
            add_fmt(_FMT_CODE[rec.format])
            add_from(rec.id_from_source)
            add_id(id_hash(rec.id) if rec.id_from_source else key)
            if rec.source:
                hashed = sources.get(rec.source)
                if hashed is None:
                    hashed = source_hash(rec.source)
                    if len(sources) < max_sources:
                        sources[rec.source] = hashed
                    else:
                        part.unlisted_sources += 1
                add_source(hashed)
            else:
                add_source(0)
            mapped = cfg_field(rec.source_category)
            add_field(_CAT_CODE[mapped] if mapped is not None else -1)
            if mapped is None:
                write(orjson.dumps(classifier_text(rec.messages, rec.prompt), option=orjson.OPT_APPEND_NEWLINE))
            elif len(train) < train_cap:
                heapq.heappush(train, (-key, -offset, *classifier_text(rec.messages, rec.prompt), rec.source, mapped))
            elif -key > train[0][0]:  # an equal key in a later line loses the tie
                heapq.heapreplace(train, (-key, -offset, *classifier_text(rec.messages, rec.prompt), rec.source,
                                          mapped))
    part.lines = lines
    part.flush()
    with open(f"{part.spill}.train", "wb") as fh:  # smallest key (then offset) first
        for row in sorted(train, reverse=True):
            fh.write(dump_line([-row[0], -row[1], *row[2:]]))
    return part


def _training_rows(parts: Sequence[_Part], cap: int) -> list[tuple]:
    """The file's ``cap`` labelled records with the smallest content hashes (ties: the earlier
    line), from the ranges' ``.train`` files: ``(key, offset, system, prompt, source, category)``.
    The same set whatever the number of ranges (each range kept its own ``cap`` smallest);
    merged as read, so no more than ``cap`` are held."""
    def rows(part: _Part) -> Iterator[tuple]:
        with open(f"{part.spill}.train", "rb") as fh:
            for line in fh:
                yield tuple(load_line(line))

    return list(itertools.islice(heapq.merge(*map(rows, parts), key=lambda row: (row[0], row[1])), cap))


def _count_lines(raw: RawInput, stop: int) -> int:
    """Lines that start before byte ``stop`` (only for error messages: it reads that far)."""
    count, pos = 0, 0
    with raw.open() as fh:
        while pos < stop:
            block = fh.read(min(8 << 20, stop - pos))
            if not block:
                break
            count += block.count(b"\n")
            pos += len(block)
    return count


# Set in the parent just before forking so workers share the configuration without pickling it.
_WORK: dict[str, Any] = {}


def _scan_worker(job: tuple[int, int, int]) -> _Part:
    slot, start, stop = job
    return _scan_range(_WORK["raw"], start, stop, _WORK["scanner"], _WORK["spill_dir"], _WORK["train_cap"],
                       _WORK.get("progress"), slot)


def _classify_worker(job: tuple[int, int, str, str]) -> None:
    lo, hi, spill, kind = job
    _classify_part(_WORK["store"], lo, hi, spill, kind, _WORK)


def _classify_part(store: ColumnStore, lo: int, hi: int, spill: str, kind: str, work: Mapping[str, Any]) -> None:
    """Classifier and rules for the records of rows ``[lo, hi)`` that have no category field,
    only where ``kind`` asks; the results are written to the store's ``clf_*``/``rule_*``
    columns of those rows.

    Args:
        store: The index.
        lo, hi: One scanned range's rows.
        spill: That range's spill (one JSON ``[system, prompt]`` line per record without a
            usable category field, in row order).
        kind: ``known``: records of sources the classifier was trained on (the classifier, and
            the rules where a source's majority needs them); ``other``: the rest; ``missing``:
            the rules for the rows of the store's ``missing`` column.
        work: ``rate`` (per source, the share of records whose rules are read), ``known`` (per
            source), ``model_ok`` (per source: the classifier may answer), ``model``,
            ``source_names``, ``min_confidence``, ``scanner``.
    """
    names, rules, model = work["source_names"], work["scanner"].classifier, work["model"]
    results = ("clf_cat", "clf_conf", "rule_cat", "rule_hit", "rule_done")
    with open(spill, "rb") as fh:
        for start, stop in store.ranges(lo, hi):
            rows = np.flatnonzero(store.read("field_cat", start, stop) < 0)
            if not len(rows):
                continue
            src = store.read("source", start, stop)[rows]
            if kind == "missing":
                use_model = np.zeros(len(rows), dtype=bool)
                want_rules = store.read("missing", start, stop)[rows] != 0
            else:
                # A content hash is uniform: the records whose key / 2**64 is below their source's rate.
                sampled = store.read("key", start, stop)[rows] / 2.0**64 < work["rate"][src]
                of_known = work["known"][src] if kind == "known" else ~work["known"][src]
                use_model = of_known & work["model_ok"][src]
                want_rules = sampled & of_known
            if not (use_model.any() or want_rules.any()):
                for _ in range(len(rows)):  # past this chunk's texts
                    fh.readline()
                continue
            out = {name: store.read(name, start, stop) for name in results}
            for first in range(0, len(rows), _BATCH):
                last = min(len(rows), first + _BATCH)
                lines = [fh.readline() for _ in range(first, last)]
                c, p, r, h, d = _classify_texts(lines, src[first:last], names, use_model[first:last],
                                                want_rules[first:last], rules, model, work["min_confidence"])
                asked, done = rows[first:last][use_model[first:last]], rows[first:last][d]
                out["clf_cat"][asked], out["clf_conf"][asked] = c[use_model[first:last]], p[use_model[first:last]]
                out["rule_cat"][done], out["rule_hit"][done], out["rule_done"][done] = r[d], h[d], 1
            for name in results:
                store.write(name, start, out[name])


def _classify_texts(lines: Sequence[bytes], codes: np.ndarray, names: Sequence[str | None], use_model: np.ndarray,
                    want_rules: np.ndarray, rules: CategoryClassifier, model: TextCategoryModel | None,
                    min_confidence: float) -> tuple[np.ndarray, ...]:
    """Classifier and rules for a batch of spilled texts, only where asked.

    Args:
        lines: Spill lines (one JSON ``[system, prompt]`` each).
        codes: Each text's source code (an index into ``names``; -1, the last name, is none).
        names: The source names, with ``None`` last.
        use_model: Texts the classifier may answer.
        want_rules: Texts whose rules are needed, if the classifier does not answer confidently.

    Returns:
        Classifier category code and probability, rule category code, whether a rule matched,
        whether the rules were applied.
    """
    n = len(lines)
    clf_cat = np.full(n, -1, dtype=np.int8)
    clf_conf = np.zeros(n, dtype=np.float32)
    rule_cat = np.zeros(n, dtype=np.int8)
    rule_hit = np.zeros(n, dtype=np.int8)
    rule_done = np.zeros(n, dtype=bool)
    use_model = use_model & (model is not None)
    with _gc_paused():
        rows = np.flatnonzero(use_model).tolist()
        if rows:
            texts = [orjson.loads(lines[i]) for i in rows]
            cats, conf = model.predict(documents(texts, [names[c] for c in codes[rows].tolist()]))
            clf_cat[rows] = [_CAT_CODE[c] for c in cats]
            clf_conf[rows] = conf
        for i in np.flatnonzero(want_rules).tolist():
            if clf_cat[i] >= 0 and clf_conf[i] >= min_confidence:
                continue  # the rules are the last resort
            decision = rules.rules(*orjson.loads(lines[i]))
            rule_cat[i] = _CAT_CODE[decision.category]
            rule_hit[i] = bool(decision.rules)
            rule_done[i] = True
    return clf_cat, clf_conf, rule_cat, rule_hit, rule_done


def _workers(settings: SamplingSettings, size: int) -> int:
    workers = settings.scan_workers
    workers = (os.cpu_count() or 1) if workers == "auto" else workers
    workers = max(1, min(workers, math.ceil(size / PARALLEL_MIN_BYTES)))
    return workers if "fork" in mp.get_all_start_methods() else 1


def _ranges(workers: int, size: int) -> int:
    """How many byte ranges a scan by ``workers`` processes cuts ``size`` bytes into."""
    if workers == 1:
        return 1
    return max(workers, min(workers * RANGES_PER_WORKER, size * RANGES_PER_WORKER // PARALLEL_MIN_BYTES))


def _map(func: Any, jobs: list, workers: int, meanwhile: Any = None, report: Any = None) -> tuple[list, Any]:
    """``[func(job) ...]`` in forked workers; ``meanwhile()`` runs in this process as they work,
    then ``report()`` every ``PROGRESS_EVERY`` seconds until they are done.

    A worker that dies (killed, out of memory) fails the run (``BrokenProcessPool``) instead
    of leaving it waiting. If anything interrupts this process (an error, Ctrl-C, SIGTERM: see
    :func:`sigterm_as_exit`), the workers are killed before the exception goes on; a worker also
    dies with this process if it is killed outright (Linux ``PR_SET_PDEATHSIG``), so none is
    ever left behind.
    """
    if workers == 1 or len(jobs) <= 1:
        results = [func(job) for job in jobs]
        return results, meanwhile() if meanwhile else None
    before = set(mp.active_children())
    pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=mp.get_context("fork"), initializer=_worker_init)
    try:
        futures = [pool.submit(func, job) for job in jobs]
        extra = meanwhile() if meanwhile else None
        while report is not None and wait(futures, timeout=PROGRESS_EVERY).not_done:
            report()
        results = [f.result() for f in futures]
    except BaseException:
        for child in set(mp.active_children()) - before:  # this pool's workers
            child.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results, extra


def _progress_reporter(raw: RawInput, progress: Any) -> Any:
    """A function that logs how far the scan workers are (bytes read of the input, elapsed
    time and, from the rate so far, the time left)."""
    started = time.monotonic()

    def report() -> None:
        done, elapsed = sum(progress), time.monotonic() - started
        left = elapsed * (raw.size - done) / done if done else float("nan")
        logger.info("indexing %s: %.2f of %.2f GB read (%.0f%%) in %.0f s, about %.0f s left",
                    raw.path or "the input", done / 1e9, raw.size / 1e9, 100 * done / raw.size, elapsed, left)

    return report


def _worker_init() -> None:
    """In each worker: die at once on SIGTERM (the pool's terminate), leave Ctrl-C to the parent,
    and die when the parent dies."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):  # not Linux: the parent's terminate still applies
        return
    # glibc hands a freed multi-MB buffer (a read block, a batch's feature arrays) back to the
    # kernel and faults every 4 KiB page of the next one in again: ~100,000 page faults on the
    # 500,000-record benchmark. A worker keeps what it freed for reuse instead (mallopt
    # M_MMAP_THRESHOLD = -3, M_TRIM_THRESHOLD = -1; its peak memory is unchanged). Not glibc: no
    # such function, nothing done.
    with contextlib.suppress(AttributeError):
        libc.mallopt(-3, 64 << 20)
        libc.mallopt(-1, 256 << 20)


_SPILL_PREFIX = "phase1b-scan-"
_LOCK = "owner.lock"
_SESSION: dict[str, Any] = {}


def temp_dir() -> str:
    """This process's directory for the stage's temporary files (``phase1b-scan-<pid>-*`` in the
    temporary directory, ``TMPDIR``): the scans' spills and on-disk indexes, the rejection
    logs. It holds a lock file locked (``flock``) for as long as the process lives, by which
    another run tells a live directory from one a killed run left (:func:`_remove_stale_spills`),
    whatever the process or container; it is removed at exit."""
    if _SESSION.get("pid") != os.getpid():  # not yet, or a forked child's
        _warn_if_tmpdir_unused()
        # Made and locked under another name, then renamed into place: a cleanup never sees
        # it unlocked.
        claim = tempfile.mkdtemp(prefix=f".phase1b-claim-{os.getpid()}-")
        fd = os.open(os.path.join(claim, _LOCK), os.O_CREAT | os.O_RDWR, 0o600)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        path = os.path.join(os.path.dirname(claim), f"{_SPILL_PREFIX}{os.getpid()}-{os.path.basename(claim)[-8:]}")
        os.rename(claim, path)
        _SESSION.update(pid=os.getpid(), path=path, fd=fd)
        atexit.register(shutil.rmtree, path, True)
    return _SESSION["path"]


def _warn_if_tmpdir_unused() -> None:
    """Python quietly passes over a ``TMPDIR`` that is not a writable directory (a typo, a disk
    not mounted) and uses ``/tmp``: say so, since the stage may put gigabytes there."""
    wanted = os.environ.get("TMPDIR")
    used = tempfile.gettempdir()
    if wanted and os.path.realpath(wanted) != os.path.realpath(used):
        logger.warning("TMPDIR=%s is not a writable directory: sampling's temporary files (about 60 bytes a "
                       "record and more, see README) go to %s instead", wanted, used)


def _remove_stale_spills() -> None:
    """Remove what a sampling run killed outright (SIGKILL, out of memory) left: the
    ``phase1b-scan-*`` directories whose lock (see :func:`temp_dir`) nobody holds. One
    without a lock file (being created, or left by an older version) is judged by its
    ``<pid>``: removed when no such process exists."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        pid = name[len(_SPILL_PREFIX):].split("-", 1)[0]
        path = os.path.join(root, name)
        if not name.startswith(_SPILL_PREFIX) or not pid.isdigit() or not _abandoned(path, int(pid)):
            continue
        logger.info("removing %s, left by a killed sampling run", name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)


def _abandoned(path: str, pid: int) -> bool:
    """Whether no live run owns ``path`` (its lock is free; without one, no process ``pid``)."""
    lock = os.path.join(path, _LOCK)
    if fcntl is not None and os.path.isfile(lock):
        return unlocked(lock)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # someone else's process: not ours to judge
        return False
    return False


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM raises ``SystemExit(143)`` in this process while the block runs, so that its
    ``finally`` clauses (killing the workers, removing the spill directory) and the removal of
    the on-disk index and logs (their finalizers) run as they do on Ctrl-C; Python's default
    would end the process without them. Nests (the outer handler is restored on leaving)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def scan_input(raw: RawInput | bytes, params: Mapping[str, Any]) -> ScanResult:
    """Index every line of a JSONL input and decide every record's category.

    Args:
        raw: The input (a :class:`RawInput` handle, or bytes).
        params: The ``sampling`` parameter group (``scan_workers``: ``auto`` or a number).

    Returns:
        The index of usable records (input order, on disk: see :class:`RecordIndex`), the
        rejected lines, counts, and how categories were decided (with each method's estimated
        accuracy).

    Raises:
        BadRecordError: Under ``on_bad_record: fail``, for the first unusable line.
        NoRecordsError: When not one line could be used.
    """
    with disk_space_named():
        return _scan_input(raw, params)


@contextmanager
def disk_space_named() -> Iterator[None]:
    """A full temporary directory (``ENOSPC``) while the block runs says which directory, what
    the stage keeps there and how to move it (``TMPDIR``)."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise OSError(errno.ENOSPC, f"no space left in the temporary directory {tempfile.gettempdir()} (sampling "
                      f"keeps its index there: about 60 bytes a record, plus up to 600 for each record without a "
                      f"category field, plus the rejected lines' previews); set TMPDIR to a directory with more "
                      f"room") from exc


def _scan_input(raw: RawInput | bytes, params: Mapping[str, Any]) -> ScanResult:
    scanner = Scanner(params)
    raw = RawInput.of(raw)
    workers = _workers(scanner.settings, raw.size)
    cuts = _line_starts(raw, _ranges(workers, raw.size))
    # Each range keeps its own smallest-hash labelled records: the union holds the file's, so
    # the training set does not depend on how many workers scanned it.
    train_cap = max(1, scanner.inference.classifier_max_train)
    _remove_stale_spills()
    # The index's directory (removed with the index, see ColumnStore); the spill inside it goes
    # when the scan ends.
    work_dir = tempfile.mkdtemp(prefix="scan-", dir=temp_dir())
    spill_dir = os.path.join(work_dir, "spill")
    os.mkdir(spill_dir)
    try:
        with sigterm_as_exit():
            # Bytes done per range, in memory the forked workers share (no lock: one writer each).
            progress = mp.get_context("fork").Array("q", len(cuts) - 1, lock=False) if workers > 1 else None
            _WORK.update(raw=raw, scanner=scanner, spill_dir=spill_dir, train_cap=train_cap, progress=progress)
            try:
                jobs = [(slot, start, stop) for slot, (start, stop) in enumerate(zip(cuts[:-1], cuts[1:], strict=True))]
                parts, sha256 = _map(_scan_worker, jobs, workers, meanwhile=lambda: _meanwhile(raw, scanner, workers),
                                     report=_progress_reporter(raw, progress) if progress is not None else None)
                store, rejected, blanks, lines, sources = _merge(parts, work_dir, scanner.inference.max_sources)
                if store.n == 0:
                    raise NoRecordsError(_no_records_message(rejected, lines - blanks, params))
                categories = _decide_categories(store, parts, sources, scanner, params, workers)
            finally:
                _WORK.clear()
                shutil.rmtree(spill_dir, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    return ScanResult(records=RecordIndex(store, sources), rejected=rejected, lines_read=lines - blanks,
                      blank_lines=blanks, input_sha256=sha256, input_bytes=raw.size, categories=categories)


def _merge(parts: list[_Part], directory: str,
           max_sources: int) -> tuple[ColumnStore, RecordLog, int, int, list[str]]:
    """One index in input order from the ranges' parts (global line numbers, global source codes).

    The workers' column files are copied into the store's, a chunk at a time, and their
    rejections into one :class:`RecordLog`. The first ``max_sources`` distinct sources in file
    order keep a code (each range kept its first ``max_sources``, which hold them), the
    others' records count as without a source.
    """
    sources: dict[str, int] = {}  # name -> hash, the first max_sources in file order
    for part in parts:
        for name, hashed in part.sources.items():
            if len(sources) < max_sources:
                sources.setdefault(name, hashed)
    names = list(sources)
    by_hash = np.array(list(sources.values()), dtype=np.uint64)
    order = np.argsort(by_hash)
    by_hash, codes = by_hash[order], order.astype(np.int32)
    distinct = len({name for part in parts for name in part.sources})
    if any(part.unlisted_sources for part in parts) or distinct > max_sources:
        logger.warning("the input names more than %d distinct sources (sampling.category_inference.max_sources): "
                       "the source field looks like a per-record value, not a dataset; records of the sources "
                       "beyond the first %d count as without a source", max_sources, max_sources)
    firsts = np.cumsum([0] + [part.lines for part in parts])
    store = ColumnStore(directory, sum(part.count for part in parts))
    for name, _, dtype in _Part.COLUMNS:
        with open(store.path(name), "wb") as out:
            for part, first in zip(parts, firsts, strict=False):
                for lo in range(0, part.count, CHUNK):
                    values = part.read_column(name, lo, min(part.count, lo + CHUNK))
                    if name == "line":
                        values += first
                    elif name == "source":
                        values = _source_codes(values, by_hash, codes)
                    values.astype(dtype, copy=False).tofile(out)
        store.adopt(name, dtype)
    rejected = RecordLog(temp_dir(), prefix="rejected-")
    for part, first in zip(parts, firsts, strict=False):
        if part.rejected:
            with open(f"{part.spill}.rejected", "rb") as fh:
                for line in fh:
                    rec = load_line(line)
                    rec["line"] += int(first)
                    rejected.append(rec)
    return store, rejected, sum(part.blanks for part in parts), int(firsts[-1]), names


def source_hash(name: str) -> int:
    """A source name as a non-zero 64-bit number (:func:`hash64`; 0 means no source)."""
    return hash64(name) | 1


def hash64(text: str) -> int:
    """XXH3-64 (as :func:`~phase1b_kedro.records.content_hash`) of ``text``'s UTF-8 (lone
    surrogates kept), as an unsigned integer."""
    return xxh3_64_intdigest(text.encode("utf-8", "surrogatepass"))


def _source_codes(hashes: np.ndarray, by_hash: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Each record's source code from its :func:`source_hash` (``by_hash`` ascending, ``codes``
    the matching codes); -1 for none and for sources not kept."""
    if not len(by_hash):
        return np.full(len(hashes), -1, dtype=np.int32)
    pos = np.minimum(np.searchsorted(by_hash, hashes), len(by_hash) - 1)
    return np.where(by_hash[pos] == hashes, codes[pos], np.int32(-1)).astype(np.int32)


def _decide_categories(store: ColumnStore, parts: list[_Part], sources: list[str], scanner: Scanner,
                       params: Mapping[str, Any], workers: int) -> dict[str, Any]:
    """Second pass: the file's classifier and the rules over the spilled texts, then resolution.

    Work is skipped where it cannot change a decision: the classifier runs only where it may
    be used (sources with labelled records, or all when it generalises to unseen sources);
    the rules run on every record without a source, and on a deterministic sample of
    ``source_sample`` records per source (enough to know the source's majority); a third
    pass applies them to the rest of a source only when it has no clear majority. Every
    per-record step reads and writes the store in chunks.

    Adds the store columns ``category``, ``method`` and ``clf_conf`` (and the working columns).
    """
    settings = scanner.inference
    seed = scanner.settings.seed
    # The smallest content hashes: the same set (and order) whatever the number of ranges.
    train = _training_rows(parts, settings.classifier_max_train)
    texts = [(row[2], row[3]) for row in train]
    train_sources = [row[4] for row in train]
    labels = [row[5] for row in train]
    model = train_classifier(texts, train_sources, labels, settings, seed)
    width = len(sources)
    trained_on = set(train_sources)
    known = np.zeros(width + 1, dtype=bool)  # the last slot serves source -1
    known[[i for i, name in enumerate(sources) if name in trained_on]] = True
    per_source = np.zeros(width + 1, dtype=np.int64)  # undecided records per source (the last: none)
    labelled = np.zeros(width + 1, dtype=bool)  # sources with a labelled record
    for _, cols in store.chunks(["field_cat", "source"]):
        undecided, src = cols["field_cat"] < 0, np.where(cols["source"] < 0, width, cols["source"])
        per_source += np.bincount(src[undecided], minlength=width + 1)
        labelled[np.unique(src[~undecided])] = True
    labelled[-1] = False
    rate = np.minimum(1.0, settings.source_sample / np.maximum(per_source, 1))
    rate[-1] = 1.0  # records without a source: always
    for name, dtype, fill in (("clf_cat", np.int8, -1), ("clf_conf", np.float32, None), ("rule_cat", np.int8, None),
                              ("rule_hit", np.int8, None), ("rule_done", np.int8, None), ("missing", np.int8, None),
                              ("category", np.int8, None), ("method", np.int8, None)):
        store.add(name, dtype, fill)
    _WORK.update(store=store, model=model, min_confidence=settings.classifier_min_confidence,
                 source_names=[*sources, None], rate=rate, known=known,
                 model_ok=known & (model is not None))
    bounds = np.cumsum([0] + [part.count for part in parts])

    def run(kind: str, meanwhile: Any = None) -> Any:
        jobs = [(int(lo), int(hi), part.spill, kind) for part, lo, hi in zip(parts, bounds[:-1], bounds[1:], strict=True)
                if hi > lo]
        return _map(_classify_worker, jobs, workers, meanwhile)[1]

    # Records of sources the classifier was trained on do not depend on the accuracy estimate:
    # the workers classify them while this process computes it (cross-validation: seconds).
    report = run("known", meanwhile=lambda: estimate_accuracy(texts, train_sources, labels, scanner.classifier,
                                                              settings, seed))
    report["classifier_trained"] = model is not None
    # Within a source that has labelled records the classifier has seen its kind; elsewhere it
    # is used only if the estimate with whole sources held out says it generalises.
    unseen_ok = (report.get("classifier", {}).get("accuracy_when_confident") or 0) \
        >= settings.classifier_unseen_min_accuracy
    report["classifier_used_for_unlabelled_sources"] = bool(model is not None and unseen_ok)
    _WORK["model_ok"] = (known | unseen_ok) & (model is not None)
    run("other")
    if _resolve(store, settings, width):  # sources without a clear majority: their other records need their rules
        run("missing")
        _resolve(store, settings, width)
    model_ok = _WORK["model_ok"]
    applied = unlabelled = rules_applied = 0
    for _, cols in store.chunks(["field_cat", "source", "rule_done"]):
        undecided = cols["field_cat"] < 0
        applied += int((undecided & model_ok[cols["source"]]).sum())
        unlabelled += int((undecided & ~labelled[cols["source"]]).sum())
        rules_applied += int(cols["rule_done"].sum(dtype=np.int64))
    report["rules_applied"] = rules_applied
    # Records whose source has no labelled record: only the rules (or a classifier that
    # generalises) speak for them; on unfamiliar datasets the rules may be weak.
    report["records_in_unlabelled_sources"] = unlabelled
    report["classifier_applied"] = applied
    return {"estimated_accuracy": report}


def _resolve(store: ColumnStore, settings: InferenceSettings, width: int) -> bool:
    """Write every record's ``category`` and ``method`` (:func:`~phase1b_kedro.categories.resolve`,
    in two passes of chunks: the sources' majorities, then the decisions), and mark in the
    ``missing`` column the records left to the rules whose rules were not read.

    Returns:
        Whether any record is ``missing``.
    """
    names = ["source", "field_cat", "clf_cat", "clf_conf", "rule_cat", "rule_hit"]
    counts = sum(tier_counts(*(cols[n] for n in names), settings, width) for _, cols in store.chunks(names))
    lookup = majority_lookup(majorities(counts, settings), width)
    missing_any = False
    for lo, cols in store.chunks([*names, "rule_done"]):
        category, method = apply_decisions(cols["field_cat"], cols["clf_cat"], cols["clf_conf"], cols["rule_cat"],
                                           cols["rule_hit"], cols["source"], lookup, settings)
        store.write("category", lo, category)
        store.write("method", lo, method)
        missing = (method == METHODS.index("rules")) & (cols["rule_done"] == 0)
        missing_any |= bool(missing.any())
        store.write("missing", lo, missing.view(np.int8))
    return missing_any


_HINTS = {
    "unknown_format": "no line matched a known format: check sampling.prompt_fields / response_fields "
                      "(a single field name is fine) or set sampling.input_format",
    "missing_reference": "no line had a reference answer: check sampling.response_fields",
    "missing_prompt": "no line had a prompt: check sampling.prompt_fields",
    "malformed_json": "the file is not JSON Lines (one JSON object per line)",
    "not_an_object": "the lines are not JSON objects (a JSON array file is not JSON Lines)",
    "invalid_utf8": "the file is not UTF-8",
    "duplicate": "every line repeats another",
    "prompt_too_long": "every conversation is longer than sampling.max_prompt_chars: if such prompts are meant, "
                       "raise it above the lengths the rejections give (--params sampling.max_prompt_chars=N)",
}


def _no_records_message(rejected: Iterable[dict], lines: int, params: Mapping[str, Any]) -> str:
    """Why nothing could be used: the commonest reasons, an example of each, the likely fix."""
    counts: dict[str, int] = {}
    first: dict[str, dict] = {}
    for rej in rejected:
        counts[rej["reason"]] = counts.get(rej["reason"], 0) + 1
        first.setdefault(rej["reason"], rej)
    if not counts:
        return "the input has no records (only blank lines)"
    top = sorted(counts.items(), key=lambda kv: -kv[1])
    reason = top[0][0]
    lines_txt = "; ".join(f"{r}: {n} (e.g. line {first[r]['line']}: {first[r]['detail']})" for r, n in top[:3])
    hint = _HINTS.get(reason, "see the rejections listed next")
    if first[reason].get("raw_preview", "").lstrip().startswith("["):
        hint += ("; the file looks like one JSON array (or pretty-printed JSON): convert it to one object per "
                 "line, e.g. `jq -c '.[]' FILE > FILE.jsonl`")
    fields = {k: params.get(k) for k in ("input_format", "prompt_fields", "response_fields") if k in params}
    return (f"sampling accepted 0 of {lines} records. Likely cause: {hint}. Rejections: {lines_txt}. "
            f"Settings: {fields}")


def _meanwhile(raw: RawInput, scanner: Scanner, workers: int) -> str:
    """What this process does while the workers scan: the input's SHA-256, then (when the
    scan is parallel, so that it costs no wall time of its own) the imports that the later
    steps need: scikit-learn to train the classifier, pandas for the sample (together ~2 s
    of CPU on 2 cores, which the start of a run would otherwise spend alone)."""
    digest = _sha256(raw)
    if workers > 1:
        import pandas  # noqa: F401
        if scanner.inference.classifier:
            import sklearn.linear_model  # noqa: F401
    return digest


def _sha256(raw: RawInput) -> str:
    """The input's SHA-256, read into one reused 8 MiB buffer (a fresh buffer per read costs
    2,048 page faults)."""
    digest = hashlib.sha256()
    buffer = bytearray(8 << 20)
    view = memoryview(buffer)
    with raw.open() as fh:
        while size := fh.readinto(buffer):
            digest.update(view[:size])
    return digest.hexdigest()


def id_hash(rec_id: str) -> int:
    """The 64-bit number under which the index holds a record's id.

    A content-hash id (``h-`` + 16 hex digits, made for records without one, or brought by a
    record in that form) is its hash itself, so that a record whose own id spells another
    record's content-hash id is caught as a reused id; any other id is hashed (:func:`hash64`).
    """
    if len(rec_id) == 18 and rec_id.startswith("h-") and _HEX16.fullmatch(rec_id, 2):
        return int(rec_id[2:], 16)
    return hash64(rec_id)


_HEX16 = re.compile(r"[0-9a-f]{16}")


def display_id(rec_id: str, key: int) -> str:
    """A record's id: its own, or ``h-`` + its content hash."""
    return rec_id or f"h-{int(key):016x}"


def deduplicate(index: RecordIndex, raw: RawInput | bytes,
                params: Mapping[str, Any]) -> tuple[RecordIndex, RecordLog]:
    """Drop exact duplicates (same conversation and reference) and reused ids.

    As one pass in file order would: a record is kept unless an earlier *kept* record has the
    same content (``duplicate``) or the same id (``duplicate_id``: its own id, or its
    content-hash id ``h-...``). A record dropped for its id does not block a later record with
    its content. Ids are compared by :func:`id_hash`, then on their text (a hash collision
    cannot reject a record). Only the records that share a content hash or an id hash with
    another are looked at: they are found in partitions of the hashes (:func:`_repeats`), so
    the memory this takes grows with the repeats (a few numbers each), not with the input.

    Args:
        index: The record index (see :func:`scan_input`), in input order.
        raw: The input the index was built from.
        params: The ``sampling`` parameter group (to read lines back).

    Returns:
        The de-duplicated index (a view of the same store) and the rejections (with line
        numbers, the kept record's id or line and a preview), by line, in a
        :class:`RecordLog` on disk.
    """
    store = index.store
    key_rows, key_group = _groups(*_repeats(store, "key", index.dropped))
    id_rows = id_group = np.zeros(0, dtype=np.int64)
    if index.total("id_from_source"):
        id_rows, id_group = _groups(*_repeats(store, "id_hash", index.dropped))
        # A group of content-hash ids only is a group of equal contents: the content check covers it.
        own = store.take(["id_from_source"], id_rows)["id_from_source"] != 0
        keep = in_sorted(id_group, np.unique(id_group[own]))
        id_rows, id_group = id_rows[keep], id_group[keep]
    while True:
        dropped, blocker, by_id = _first_kept(key_rows, key_group, id_rows, id_group)
        # The same id, not a hash collision: each id drop is confirmed on the ids' text; a
        # group whose hash two different ids share is split by text and the pass run again.
        collided = _id_collisions(raw, store, params, dropped[by_id], blocker[by_id])
        if not len(collided):
            break
        split = in_sorted(id_group, np.unique(id_group[np.searchsorted(id_rows, collided)]))  # their groups
        import pandas as pd

        texts = pd.Series(_display_ids(raw, store, params, id_rows[split]), dtype=object)
        labels = pd.factorize(pd.Series(id_group[split]).astype(str) + "\x00" + texts)[0]
        id_group = id_group.copy()
        id_group[split] = int(id_group.max(initial=0)) + 1 + labels
    rejected = RecordLog(temp_dir(), prefix="duplicates-")
    for lo in range(0, len(dropped), _BATCH):
        _write_rejections(rejected, raw, store, params, dropped[lo:lo + _BATCH], blocker[lo:lo + _BATCH],
                          by_id[lo:lo + _BATCH])
    return (index.without(dropped) if len(dropped) else index), rejected


def _groups(later: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the groups :func:`_repeats` found (ascending) and each one's group (the row
    of its first member)."""
    rows = np.union1d(later, first)
    group = rows.copy()
    group[np.searchsorted(rows, later)] = first
    return rows, group


def _first_kept(key_rows: np.ndarray, key_group: np.ndarray, id_rows: np.ndarray,
                id_group: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass in file order over the rows that share a content or an id with another.

    Returns:
        The dropped rows (ascending), the kept row that blocks each, and whether it is for the
        id (else for the content).
    """
    rows = np.union1d(key_rows, id_rows)
    kg = np.full(len(rows), -1, dtype=np.int64)
    ig = np.full(len(rows), -1, dtype=np.int64)
    if len(key_rows):
        kg[np.searchsorted(rows, key_rows)] = np.unique(key_group, return_inverse=True)[1]
    if len(id_rows):
        ig[np.searchsorted(rows, id_rows)] = np.unique(id_group, return_inverse=True)[1]
    kept_key = array("q", [-1]) * (int(kg.max(initial=-1)) + 1)  # group -> its kept row
    kept_id = array("q", [-1]) * (int(ig.max(initial=-1)) + 1)
    dropped, blocker, by_id = array("q"), array("q"), array("b")
    step = 1 << 16  # rows turned into Python ints at a time
    for lo in range(0, len(rows), step):
        for row, k, i in zip(rows[lo:lo + step].tolist(), kg[lo:lo + step].tolist(), ig[lo:lo + step].tolist(),
                             strict=True):
            if k >= 0 and kept_key[k] >= 0:
                dropped.append(row)
                blocker.append(kept_key[k])
                by_id.append(0)
            elif i >= 0 and kept_id[i] >= 0:
                dropped.append(row)
                blocker.append(kept_id[i])
                by_id.append(1)
            else:
                if k >= 0:
                    kept_key[k] = row
                if i >= 0:
                    kept_id[i] = row
    return (np.frombuffer(dropped, dtype=np.int64), np.frombuffer(blocker, dtype=np.int64),
            np.frombuffer(by_id, dtype=np.int8).astype(bool))


def _id_collisions(raw: RawInput | bytes, store: ColumnStore, params: Mapping[str, Any], rows: np.ndarray,
                   blockers: np.ndarray) -> np.ndarray:
    """The ``rows`` whose id differs in text from their blocker's (read back in batches)."""
    found = []
    for lo in range(0, len(rows), _BATCH):
        r, b = rows[lo:lo + _BATCH], blockers[lo:lo + _BATCH]
        both = np.union1d(r, b)
        text = dict(zip(both.tolist(), _display_ids(raw, store, params, both), strict=True))
        found.extend(x for x, y in zip(r.tolist(), b.tolist(), strict=True) if text[x] != text[y])
    return np.asarray(found, dtype=np.int64)


def _display_ids(raw: RawInput | bytes, store: ColumnStore, params: Mapping[str, Any], rows: np.ndarray) -> list[str]:
    """Each row's id as shown (its own, read back from its line, or ``h-`` + its content hash);
    ``rows`` ascending."""
    cols = store.take(["key", "offset", "id_from_source"], rows)
    own = np.flatnonzero(cols["id_from_source"])
    ids = [display_id("", k) for k in cols["key"].tolist()]
    cfg = FieldConfig.from_params(params)
    with _gc_paused():
        for i, line in zip(own.tolist(), iter_lines(raw, cols["offset"][own].tolist()), strict=True):
            ids[i] = display_id(source_id(orjson.loads(line), cfg), cols["key"][i])
    return ids


def _write_rejections(log: RecordLog, raw: RawInput | bytes, store: ColumnStore, params: Mapping[str, Any],
                      dropped: np.ndarray, blocker: np.ndarray, by_id: np.ndarray) -> None:
    """Append the rejections of some dropped rows (ascending) to ``log``: line, reason, id,
    what they repeat, and a preview of the line."""
    blockers = np.unique(blocker)
    blocker_ids = dict(zip(blockers.tolist(), _display_ids(raw, store, params, blockers), strict=True))
    blocker_lines = dict(zip(blockers.tolist(), store.take(["line"], blockers)["line"].tolist(), strict=True))
    cols = store.take(["line", "key", "offset", "id_from_source"], dropped)
    cfg = FieldConfig.from_params(params)
    with _gc_paused():
        for i, raw_line in enumerate(iter_lines(raw, cols["offset"].tolist())):
            own = source_id(orjson.loads(raw_line), cfg) if cols["id_from_source"][i] else ""
            first = int(blocker[i])
            log.append({
                "line": int(cols["line"][i]),
                "reason": "duplicate_id" if by_id[i] else "duplicate",
                "id": display_id(own, cols["key"][i]),
                "detail": (f"id already used by the record on line {blocker_lines[first]} (different content)"
                           if by_id[i] else f"same prompt and reference as id {blocker_ids[first]}"),
                "raw_preview": _preview(raw_line),
            })


#: Rows per partition of :func:`_repeats` (its memory: about 50 bytes a row).
_PARTITION_ROWS = 1 << 20


def _repeats(store: ColumnStore, name: str, skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose value of the 64-bit hash column ``name`` an earlier row has, leaving out the
    ascending rows ``skip``.

    A large store is first split on disk by the top bits of the hash (hash partitioning, as in a
    database's partitioned hash join): equal values fall in one partition, and each partition
    (at most about ``_PARTITION_ROWS`` rows) is searched in memory alone.

    Returns:
        The repeating rows (ascending) and, for each, the row of the first with its value.
    """
    bits = max(0, math.ceil(math.log2(max(1, store.n / _PARTITION_ROWS))))
    if bits == 0:
        rows = np.arange(store.n, dtype=np.int64)
        values = store.read(name)
        keep = ~in_sorted(rows, skip)
        return _repeats_in(values[keep], rows[keep])
    directory = tempfile.mkdtemp(prefix=f"repeats-{name}-", dir=store.directory)
    try:
        paths = [(os.path.join(directory, f"{i}.value"), os.path.join(directory, f"{i}.row")) for i in range(1 << bits)]
        for lo, cols in store.chunks([name]):
            values = cols[name]
            rows = np.arange(lo, lo + len(values), dtype=np.int64)
            keep = ~in_sorted(rows, skip)
            values, rows = values[keep], rows[keep]
            bucket = (values >> np.uint64(64 - bits)).astype(np.int64)
            order = np.argsort(bucket, kind="stable")  # rows stay ascending within a bucket
            ends = np.cumsum(np.bincount(bucket, minlength=1 << bits))
            for i, (a, b) in enumerate(zip(np.concatenate([[0], ends[:-1]]), ends, strict=True)):
                if b > a:
                    with open(paths[i][0], "ab") as fv, open(paths[i][1], "ab") as fr:
                        values[order[a:b]].tofile(fv)
                        rows[order[a:b]].tofile(fr)
        found = [_repeats_in(np.fromfile(pv, dtype=np.uint64), np.fromfile(pr, dtype=np.int64))
                 for pv, pr in paths if os.path.exists(pv)]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    later = np.concatenate([f[0] for f in found] + [np.zeros(0, dtype=np.int64)])
    firsts = np.concatenate([f[1] for f in found] + [np.zeros(0, dtype=np.int64)])
    order = np.argsort(later)
    return later[order], firsts[order]


def _repeats_in(values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_repeats` of one set of ``(value, row)`` with ``rows`` ascending."""
    order = np.argsort(values, kind="stable")  # equal values: ascending rows, the first one first
    values, rows = values[order], rows[order]
    new = np.ones(len(values), dtype=bool)
    new[1:] = values[1:] != values[:-1]
    first_of_group = rows[np.flatnonzero(new)][np.cumsum(new) - 1]
    return rows[~new], first_of_group[~new]


def stratified_sample(index: RecordIndex, num_samples: int, min_per_category: int,
                      seed: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """Choose records per category, deterministically for a given seed and input.

    The allocation (:func:`~phase1b_kedro.allocation.allocate`: proportional, with a
    per-category minimum) fixes ``k`` per category; each category then takes its ``k``
    records of smallest priority, a 64-bit hash of the record's content and the seed
    (:func:`sample_priority`): a uniform sample without replacement (order sampling with
    uniform priorities, as in a bottom-k sketch: Rosén, "Asymptotic theory for order
    sampling", 1997; Cohen & Kaplan, "Summarizing data using bottom-k sketches", PODC 2007).
    It is found in one pass over the index, holding ``k`` candidates per category, whatever
    the size of the input; a record's priority does not depend on where it is in the file or
    on other records, so adding records of one category never changes another's draw.

    Returns:
        The chosen rows (in input order, as a DataFrame: see :meth:`RecordIndex.frame`) and the
        allocation per category.
    """
    population = index.counts("category")
    alloc = allocate(population, num_samples, min_per_category)
    want = {CATEGORIES.index(c): k for c, k in alloc.items() if k > 0}
    best = {code: (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)) for code in want}
    for rows, cols in index.chunks(["key", "category"]):
        priority = sample_priority(cols["key"], seed)
        for code, k in want.items():
            sel = cols["category"] == code
            if not sel.any():
                continue
            prio, chosen = np.concatenate([best[code][0], priority[sel]]), np.concatenate([best[code][1], rows[sel]])
            top = np.lexsort((chosen, prio))[:k]  # ties (never seen with 64 bits) by row
            best[code] = prio[top], chosen[top]
    rows = np.sort(np.concatenate([chosen for _, chosen in best.values()] + [np.zeros(0, dtype=np.int64)]))
    return index.frame(rows), alloc


def sample_priority(key: np.ndarray, seed: int) -> np.ndarray:
    """Each record's sampling priority: SplitMix64's output function (Steele, Lea & Flood,
    "Fast splittable pseudorandom number generators", OOPSLA 2014) of its content hash mixed
    with the seed; ``uint64``, uniform and independent across records and seeds."""
    salt = hash64(str(int(seed)))
    z = np.asarray(key, dtype=np.uint64) ^ np.uint64(salt)
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def iter_lines(raw: RawInput | bytes, offsets: Sequence[int]) -> Iterator[bytes]:
    """The lines starting at the given byte offsets (in the order given), one at a time."""
    raw = RawInput.of(raw)
    with raw.open() as fh:
        for offset in offsets:
            fh.seek(int(offset))
            line = fh.readline()
            yield line[len(_BOM):] if offset == 0 and line.startswith(_BOM) else line


def read_lines(raw: RawInput | bytes, offsets: Sequence[int]) -> list[bytes]:
    """The lines starting at the given byte offsets (in the order given)."""
    return list(iter_lines(raw, offsets))


def build_records(raw: RawInput | bytes, rows: pd.DataFrame, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Normalise the given index rows' lines into full test records (the record contract).

    Each record's ``meta`` says how its category was decided: ``category_method``
    (``field`` | ``classifier`` | ``source`` | ``rules``), with ``category_confidence`` for the
    classifier and ``category_rules`` (the matched rules) for the rules.
    """
    scanner = Scanner(params)
    out = []
    lines = read_lines(raw, rows["offset"].tolist())
    with _gc_paused():
        for line, row in zip(lines, rows.itertuples(index=False), strict=True):
            out.append(_full_record(scanner, line, row))
    return out


def _full_record(scanner: Scanner, line: bytes, row: Any) -> dict[str, Any]:
    """One sampled line as a test record, with how its category was decided in ``meta``."""
    rec = scanner.record(line, False)
    assert isinstance(rec, Normalised), f"line {row.line} was indexed but does not normalise"
    meta = {**rec.meta, "line": int(row.line), "category_method": row.category_method,
            "source_category": rec.source_category}
    if row.category_method == "classifier":
        meta["category_confidence"] = round(float(row.category_confidence), 4)
    elif row.category_method == "rules":
        meta["category_rules"] = list(scanner.classifier.rules(*classifier_text(rec.messages, rec.prompt)).rules)
    return {
        "id": rec.id,
        "category": row.category,
        "messages": rec.messages,
        "prompt": rec.prompt,
        "reference": rec.reference,
        "source": rec.source or rec.format,
        "meta": meta,
    }
