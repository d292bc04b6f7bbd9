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

Memory: about 45 bytes per record for the index, whatever the size of the records or of
their ids (ids are held as 64-bit hashes); the workers hand their columns back through
files, merged into arrays allocated once; whole-index array operations run in chunks of
``_CHUNK`` records; the spilled text lives on disk. A stopped run (Ctrl-C, SIGTERM) kills
its workers and removes its spill (:func:`_map`, :func:`_terminated`).
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import heapq
import io
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
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from phase1b_kedro.allocation import allocate
from phase1b_kedro.categories import (
    METHODS,
    CategoryClassifier,
    InferenceSettings,
    TextCategoryModel,
    classifier_from_params,
    classifier_text,
    documents,
    estimate_accuracy,
    resolve,
    train_classifier,
)
from phase1b_kedro.configs import load_config
from phase1b_kedro.datasets import RawInput
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
_BATCH = 50_000
#: Seconds between two progress lines while a large input is indexed.
PROGRESS_EVERY = 10.0
#: Records per chunk of whole-index array operations (bounds their temporaries).
_CHUNK = 1 << 20


class BadRecordError(ValueError):
    """Raised under ``on_bad_record: fail`` for the first unusable line."""


class NoRecordsError(ValueError):
    """Raised when not one input line could be used; the message names the likely cause."""


@dataclass
class ScanResult:
    """What one pass over the input found."""

    index: pd.DataFrame
    rejected: list[dict[str, Any]]
    lines_read: int
    blank_lines: int
    input_sha256: str
    input_bytes: int
    categories: dict[str, Any] = field(default_factory=dict)


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
    source: array = field(default_factory=lambda: array("l"))
    field_cat: array = field(default_factory=lambda: array("b"))
    id_from_source: array = field(default_factory=lambda: array("b"))
    #: 64-bit hash of the record's id (:func:`id_hash`): ids are not held as strings.
    id_hash: array = field(default_factory=lambda: array("Q"))
    sources: dict[str, int] = field(default_factory=dict)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    #: Labelled records with the smallest content hashes: (-key, system, prompt, source, category).
    train: list[tuple] = field(default_factory=list)
    spill: str = ""
    #: Index rows of this range (kept once the columns are written out and released).
    count: int = 0

    #: The index columns, their dtype in the index, and the file each is written to (``spill`` + name).
    COLUMNS = (("line", np.int64), ("offset", np.int64), ("key", np.uint64), ("fmt", np.int8),
               ("source", np.int64), ("field_cat", np.int8), ("id_from_source", np.int8), ("id_hash", np.uint64))

    def save_columns(self) -> None:
        """Write the columns next to the spill and release them: they go back to the parent
        through the disk, not through a pickled copy, and are merged one at a time."""
        self.count = len(self.line)
        for name, _ in self.COLUMNS:
            with open(f"{self.spill}.{name}", "wb") as fh:
                getattr(self, name).tofile(fh)
            setattr(self, name, None)

    def load_column(self, name: str, dtype: type) -> np.ndarray:
        """One column written by :meth:`save_columns` (``count`` values)."""
        return np.fromfile(f"{self.spill}.{name}", dtype=dtype)


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
    """
    pos, rest = start, []
    with raw.open() as fh:
        fh.seek(start)
        while pos < stop:
            block = fh.read(_BLOCK)
            if not block:
                tail = b"".join(rest)
                if tail:
                    yield pos, tail
                return
            cut = block.rfind(b"\n") + 1
            if not cut:  # a line longer than a block
                rest.append(block)
                continue
            rest.append(block[:cut])
            for line in io.BytesIO(b"".join(rest)):
                if pos >= stop:
                    return
                yield pos, line
                pos += len(line)
            rest = [block[cut:]]


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
    train, sources, rejected = part.train, part.sources, part.rejected
    add_line, add_offset, add_key, add_fmt = part.line.append, part.offset.append, part.key.append, part.fmt.append
    add_source, add_field, add_from, add_id = (part.source.append, part.field_cat.append,
                                               part.id_from_source.append, part.id_hash.append)
    lines = 0
    with os.fdopen(fd, "wb") as spill, _gc_paused():
        write = spill.write
        for offset, line in _lines(raw, start, stop):
            lines += 1
            if progress is not None and not lines & 4095:
                progress[slot] = offset - start
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
                rejected.append(rejection_record(lines, rec, line))
                continue
            key = int(rec.key, 16)
            add_line(lines)
            add_offset(offset)
            add_key(key)
            add_fmt(_FMT_CODE[rec.format])
            add_from(rec.id_from_source)
            add_id(id_hash(rec.id) if rec.id_from_source else key)
            add_source(sources.setdefault(rec.source, len(sources)) if rec.source else -1)
            mapped = cfg_field(rec.source_category)
            add_field(_CAT_CODE[mapped] if mapped is not None else -1)
            if mapped is None:
                write(orjson.dumps(classifier_text(rec.messages, rec.prompt), option=orjson.OPT_APPEND_NEWLINE))
            elif len(train) < train_cap:
                heapq.heappush(train, (-key, *classifier_text(rec.messages, rec.prompt), rec.source, mapped))
            elif -key > train[0][0]:
                heapq.heapreplace(train, (-key, *classifier_text(rec.messages, rec.prompt), rec.source, mapped))
    part.lines = lines
    part.save_columns()
    return part


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


def _classify_worker(job: tuple) -> tuple[np.ndarray, ...]:
    path, codes, use_model, want_rules = job
    return _classify_spill(path, codes, _WORK["source_names"], use_model, want_rules, _WORK["scanner"].classifier,
                           _WORK["model"], _WORK["min_confidence"])


def _classify_spill(path: str, codes: np.ndarray, names: Sequence[str | None], use_model: np.ndarray,
                    want_rules: np.ndarray, rules: CategoryClassifier, model: TextCategoryModel | None,
                    min_confidence: float) -> tuple[np.ndarray, ...]:
    """Classifier and rules for one spill file's texts, only where asked.

    Args:
        path: The spill file (one JSON ``[system, prompt]`` per line).
        codes: Each text's source code (an index into ``names``; -1, the last name, is none).
        names: The source names, with ``None`` last.
        use_model: Rows the classifier may answer.
        want_rules: Rows whose rules are needed, if the classifier does not answer confidently.

    Returns:
        Classifier category code and probability, rule category code, whether a rule matched,
        whether the rules were applied.
    """
    n = len(codes)
    clf_cat = np.full(n, -1, dtype=np.int8)
    clf_conf = np.zeros(n, dtype=np.float32)
    rule_cat = np.zeros(n, dtype=np.int8)
    rule_hit = np.zeros(n, dtype=bool)
    rule_done = np.zeros(n, dtype=bool)
    use_model = use_model & (model is not None)
    with open(path, "rb") as fh, _gc_paused():
        for start in range(0, n, _BATCH):
            stop = min(n, start + _BATCH)
            lines = [fh.readline() for _ in range(start, stop)]
            rows = [i for i in range(start, stop) if use_model[i]]
            if rows:
                texts = [orjson.loads(lines[i - start]) for i in rows]
                cats, conf = model.predict(documents(texts, [names[c] for c in codes[rows].tolist()]))
                clf_cat[rows] = [_CAT_CODE[c] for c in cats]
                clf_conf[rows] = conf
            for i in range(start, stop):
                if not want_rules[i] or (clf_cat[i] >= 0 and clf_conf[i] >= min_confidence):
                    continue  # the rules are the last resort
                decision = rules.rules(*orjson.loads(lines[i - start]))
                rule_cat[i] = _CAT_CODE[decision.category]
                rule_hit[i] = bool(decision.rules)
                rule_done[i] = True
    return clf_cat, clf_conf, rule_cat, rule_hit, rule_done


def _workers(settings: SamplingSettings, size: int) -> int:
    workers = settings.scan_workers
    workers = (os.cpu_count() or 1) if workers == "auto" else workers
    workers = max(1, min(workers, math.ceil(size / PARALLEL_MIN_BYTES)))
    return workers if "fork" in mp.get_all_start_methods() else 1


def _map(func: Any, jobs: list, workers: int, meanwhile: Any = None, report: Any = None) -> tuple[list, Any]:
    """``[func(job) ...]`` in forked workers; ``meanwhile()`` runs in this process as they work,
    then ``report()`` every ``PROGRESS_EVERY`` seconds until they are done.

    A worker that dies (killed, out of memory) fails the run (``BrokenProcessPool``) instead
    of leaving it waiting. If anything interrupts this process (an error, Ctrl-C, SIGTERM: see
    :func:`_terminated`), the workers are killed before the exception goes on; a worker also
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
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):  # not Linux: the parent's terminate still applies
        pass


_SPILL_PREFIX = "phase1b-scan-"


def _remove_stale_spills() -> None:
    """Remove spill directories left by a scan whose process was killed outright (SIGKILL, OOM):
    ``phase1b-scan-<pid>-*`` in the temporary directory, where no process ``<pid>`` exists."""
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        pid = name[len(_SPILL_PREFIX):].split("-", 1)[0]
        if not name.startswith(_SPILL_PREFIX) or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            logger.info("removing %s, left by a killed sampling run", name)
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        except OSError:  # someone else's process: not ours to judge
            continue


@contextmanager
def _terminated() -> Iterator[None]:
    """SIGTERM raises ``SystemExit(143)`` in this process while the block runs, so that its
    ``finally`` clauses (killing the workers, removing the spill directory) run as they do on
    Ctrl-C; Python's default would end the process without them."""
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
        The index of usable records (input order), the rejected lines, counts, and how
        categories were decided (with each method's estimated accuracy).

    Raises:
        BadRecordError: Under ``on_bad_record: fail``, for the first unusable line.
        NoRecordsError: When not one line could be used.
    """
    scanner = Scanner(params)
    raw = RawInput.of(raw)
    workers = _workers(scanner.settings, raw.size)
    cuts = _line_starts(raw, workers)
    # Each range keeps its own smallest-hash labelled records: the union holds the file's, so
    # the training set does not depend on how many workers scanned it.
    train_cap = max(1, scanner.inference.classifier_max_train)
    _remove_stale_spills()
    with _terminated(), tempfile.TemporaryDirectory(prefix=f"{_SPILL_PREFIX}{os.getpid()}-") as spill_dir:
        # Bytes done per range, in memory the forked workers share (no lock: one writer each).
        progress = mp.get_context("fork").Array("q", len(cuts) - 1, lock=False) if workers > 1 else None
        _WORK.update(raw=raw, scanner=scanner, spill_dir=spill_dir, train_cap=train_cap, progress=progress)
        try:
            jobs = [(slot, start, stop) for slot, (start, stop) in enumerate(zip(cuts[:-1], cuts[1:], strict=True))]
            parts, sha256 = _map(_scan_worker, jobs, workers, meanwhile=lambda: _meanwhile(raw, scanner, workers),
                                 report=_progress_reporter(raw, progress) if progress is not None else None)
            index, rejected, blanks, lines, sources = _merge(parts)
            if index.empty:
                raise NoRecordsError(_no_records_message(rejected, lines - blanks, params))
            categories = _decide_categories(index, parts, sources, scanner, params, workers)
        finally:
            _WORK.clear()
    return ScanResult(index=index, rejected=rejected, lines_read=lines - blanks, blank_lines=blanks,
                      input_sha256=sha256, input_bytes=raw.size, categories=categories)


def _merge(parts: list[_Part]) -> tuple[pd.DataFrame, list[dict], int, int, list[str]]:
    """One index in input order from the ranges' parts (global line numbers, global source codes).

    Each column is allocated once at its final size (about 30 bytes per record in all, plus
    the ids that records bring) and filled part by part from the files the workers wrote.
    """
    sources: dict[str, int] = {}
    bounds = np.cumsum([0] + [part.count for part in parts])
    cols = {name: np.empty(bounds[-1], dtype=dtype) for name, dtype in _Part.COLUMNS}
    rejected: list[dict] = []
    first = blanks = 0
    for part, lo, hi in zip(parts, bounds[:-1], bounds[1:], strict=True):
        remap = np.array([sources.setdefault(name, len(sources)) for name in part.sources] + [-1], dtype=np.int64)
        for name, dtype in _Part.COLUMNS:
            cols[name][lo:hi] = part.load_column(name, dtype)
        cols["line"][lo:hi] += first
        cols["source"][lo:hi] = remap[cols["source"][lo:hi]]
        rejected.extend({**r, "line": r["line"] + first} for r in part.rejected)
        first += part.lines
        blanks += part.blanks
    index = pd.DataFrame({
        "line": cols["line"],
        "offset": cols["offset"],
        # Ids are held as hashes (a string each would cost more than the rest of the row): the
        # few that are shown (duplicates) are read back from their lines.
        "id_hash": cols["id_hash"],
        "id_from_source": cols["id_from_source"].view(np.bool_),
        "key": cols["key"],
        "format": pd.Categorical.from_codes(cols["fmt"], categories=list(FORMATS)),
        "source_code": cols.pop("source").astype(np.int32),
        "field_cat": cols["field_cat"],
    }, copy=False)
    return index, rejected, blanks, first, list(sources)


def _decide_categories(index: pd.DataFrame, parts: list[_Part], sources: list[str], scanner: Scanner,
                       params: Mapping[str, Any], workers: int) -> dict[str, Any]:
    """Second pass: the file's classifier and the rules over the spilled texts, then resolution.

    Work is skipped where it cannot change a decision: the classifier runs only where it may
    be used (sources with labelled records, or all when it generalises to unseen sources);
    the rules run on every record without a source, and on a deterministic sample of
    ``source_sample`` records per source (enough to know the source's majority); a third
    pass applies them to the rest of a source only when it has no clear majority.

    Adds ``category``, ``category_method``, ``category_confidence`` and ``source`` (and drops
    the working columns) in place.
    """
    settings = scanner.inference
    seed = scanner.settings.seed
    # Rows are (-key, ...): the largest -key are the smallest content hashes, the same set (and
    # order) whatever the number of ranges the file was scanned in.
    train = heapq.nlargest(settings.classifier_max_train, (row for part in parts for row in part.train))
    texts = [(row[1], row[2]) for row in train]
    train_sources = [row[3] for row in train]
    labels = [row[4] for row in train]
    model = train_classifier(texts, train_sources, labels, settings, seed)
    field = index["field_cat"].to_numpy()
    src = index["source_code"].to_numpy()
    n, undecided = len(index), field < 0
    trained_on = set(train_sources)
    known = np.zeros(len(sources) + 1, dtype=bool)  # the last slot serves source -1
    known[[i for i, name in enumerate(sources) if name in trained_on]] = True
    per_source = np.bincount(src[undecided & (src >= 0)], minlength=len(sources) + 1)
    rate = np.minimum(1.0, settings.source_sample / np.maximum(per_source, 1))
    rate[-1] = 1.0  # records without a source: always
    # A content hash is uniform: the records whose key / 2**64 is below the rate (in chunks: no
    # per-record float array of the whole file).
    key = index["key"].to_numpy()
    want_rules = np.zeros(n, dtype=bool)
    for lo in range(0, n, _CHUNK):
        hi = lo + _CHUNK
        want_rules[lo:hi] = undecided[lo:hi] & (key[lo:hi] / 2.0**64 < rate[src[lo:hi]])

    clf_cat = np.full(n, -1, dtype=np.int8)
    clf_conf = np.zeros(n, dtype=np.float32)
    rule_cat = np.zeros(n, dtype=np.int8)
    rule_hit = np.zeros(n, dtype=bool)
    rule_done = np.zeros(n, dtype=bool)
    # Source codes, not names, travel to the workers (4 bytes a record, not a pickled list).
    _WORK.update(model=model, min_confidence=settings.classifier_min_confidence, source_names=[*sources, None])

    def run(model_rows: np.ndarray, rule_rows: np.ndarray, meanwhile: Any = None) -> Any:
        jobs, first = [], 0
        for part in parts:
            rows = np.flatnonzero(undecided[first:first + part.count]) + first
            first += part.count
            if model_rows[rows].any() or rule_rows[rows].any():
                jobs.append((rows, (part.spill, src[rows], model_rows[rows], rule_rows[rows])))
        results, extra = _map(_classify_worker, [job for _, job in jobs], workers, meanwhile)
        for (rows, _), (c, p, r, h, d) in zip(jobs, results, strict=True):
            done = rows[d]
            rule_cat[done], rule_hit[done], rule_done[done] = r[d], h[d], True
            asked = rows[model_rows[rows]]
            clf_cat[asked], clf_conf[asked] = c[model_rows[rows]], p[model_rows[rows]]
        return extra

    # Records of sources the classifier was trained on do not depend on the accuracy estimate:
    # the workers classify them while this process computes it (cross-validation: seconds).
    of_known = undecided & known[src]
    report = run(of_known & (model is not None), want_rules & of_known,
                 meanwhile=lambda: estimate_accuracy(texts, train_sources, labels, scanner.classifier, settings, seed))
    report["classifier_trained"] = model is not None
    # Within a source that has labelled records the classifier has seen its kind; elsewhere it
    # is used only if the estimate with whole sources held out says it generalises.
    unseen_ok = (report.get("classifier", {}).get("accuracy_when_confident") or 0) \
        >= settings.classifier_unseen_min_accuracy
    report["classifier_used_for_unlabelled_sources"] = bool(model is not None and unseen_ok)
    use_model = undecided & (known | unseen_ok)[src] & (model is not None)
    run(use_model & ~of_known, want_rules & ~of_known)
    category, method = resolve(field, clf_cat, clf_conf, rule_cat, rule_hit, src, settings)
    missing = (method == METHODS.index("rules")) & ~rule_done
    if missing.any():  # sources without a clear majority: their remaining records need their rules
        run(np.zeros(n, dtype=bool), missing)
        category, method = resolve(field, clf_cat, clf_conf, rule_cat, rule_hit, src, settings)
    index["category"] = pd.Categorical.from_codes(category, categories=list(CATEGORIES))
    index["category_method"] = pd.Categorical.from_codes(method, categories=list(METHODS))
    index["category_confidence"] = np.where(method == 1, clf_conf, np.float32(np.nan))
    index["source"] = pd.Categorical.from_codes(src, categories=sources) if sources else None
    index.drop(columns=["field_cat", "source_code"], inplace=True)
    report["rules_applied"] = int(rule_done.sum())
    # Records whose source has no labelled record: only the rules (or a classifier that
    # generalises) speak for them; on unfamiliar datasets the rules may be weak.
    labelled = np.zeros(len(sources) + 1, dtype=bool)
    labelled[np.unique(src[field >= 0])] = True
    report["records_in_unlabelled_sources"] = int((undecided & ~labelled[src]).sum())
    report["classifier_applied"] = int(use_model.sum())
    return {"estimated_accuracy": report}


_HINTS = {
    "unknown_format": "no line matched a known format: check sampling.prompt_fields / response_fields "
                      "(a single field name is fine) or set sampling.input_format",
    "missing_reference": "no line had a reference answer: check sampling.response_fields",
    "missing_prompt": "no line had a prompt: check sampling.prompt_fields",
    "malformed_json": "the file is not JSON Lines (one JSON object per line)",
    "not_an_object": "the lines are not JSON objects (a JSON array file is not JSON Lines)",
    "invalid_utf8": "the file is not UTF-8",
    "duplicate": "every line repeats another",
}


def _no_records_message(rejected: list[dict], lines: int, params: Mapping[str, Any]) -> str:
    """Why nothing could be used: the commonest reasons, an example of each, the likely fix."""
    if not rejected:
        return "the input has no records (only blank lines)"
    counts: dict[str, list[dict]] = {}
    for rej in rejected:
        counts.setdefault(rej["reason"], []).append(rej)
    top = sorted(counts.items(), key=lambda kv: -len(kv[1]))
    reason = top[0][0]
    lines_txt = "; ".join(f"{r}: {len(v)} (e.g. line {v[0]['line']}: {v[0]['detail']})" for r, v in top[:3])
    hint = _HINTS.get(reason, "see the rejections listed next")
    if top[0][1][0].get("raw_preview", "").lstrip().startswith("["):
        hint += ("; the file looks like one JSON array (or pretty-printed JSON): convert it to one object per "
                 "line, e.g. `jq -c '.[]' FILE > FILE.jsonl`")
    fields = {k: params.get(k) for k in ("input_format", "prompt_fields", "response_fields") if k in params}
    return (f"sampling accepted 0 of {lines} records. Likely cause: {hint}. Rejections: {lines_txt}. "
            f"Settings: {fields}")


def _meanwhile(raw: RawInput, scanner: Scanner, workers: int) -> str:
    """What this process does while the workers scan: the input's SHA-256, then (when the
    scan is parallel, so that it costs no wall time of its own) the import of scikit-learn
    that training the classifier needs (seconds of CPU)."""
    digest = _sha256(raw)
    if workers > 1 and scanner.inference.classifier:
        import sklearn.linear_model  # noqa: F401
    return digest


def _sha256(raw: RawInput) -> str:
    digest = hashlib.sha256()
    with raw.open() as fh:
        while block := fh.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()


def id_hash(rec_id: str) -> int:
    """The 64-bit number under which the index holds a record's id.

    A content-hash id (``h-`` + 16 hex digits, made for records without one, or brought by a
    record in that form) is its hash itself, so that a record whose own id spells another
    record's content-hash id is caught as a reused id; any other id is hashed (BLAKE2b of its
    UTF-8, 8 bytes).
    """
    if len(rec_id) == 18 and rec_id.startswith("h-") and _HEX16.fullmatch(rec_id, 2):
        return int(rec_id[2:], 16)
    return int.from_bytes(hashlib.blake2b(rec_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


_HEX16 = re.compile(r"[0-9a-f]{16}")


def display_id(rec_id: str, key: int) -> str:
    """A record's id: its own, or ``h-`` + its content hash."""
    return rec_id or f"h-{int(key):016x}"


def deduplicate(index: pd.DataFrame, raw: RawInput | bytes, params: Mapping[str, Any],
                consume: bool = False) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Drop exact duplicates (same conversation and reference) and reused ids.

    The first occurrence is kept. A later record with the same content is rejected as
    ``duplicate``; one whose id an earlier record already has (its own, or its content-hash id
    ``h-...``) as ``duplicate_id``. Ids are compared by :func:`id_hash`; every id a rejection
    names is read back from its line, and a reused id is confirmed on the text (a hash
    collision cannot reject a record).

    Args:
        index: The record index (see :func:`scan_input`), in input order.
        raw: The input the index was built from.
        params: The ``sampling`` parameter group (to read lines back).
        consume: The caller gives ``index`` up: its columns are moved into the result one at a
            time (``index`` is left without columns), so that the index is never held twice.

    Returns:
        The de-duplicated index and the rejections (with line numbers and the kept id).
    """
    keys = index["key"]
    own = index["id_from_source"].to_numpy()
    hashes = index["id_hash"].to_numpy()
    dup_key = keys.duplicated(keep="first").to_numpy()
    # Masks and row numbers, not copies of the index.
    if own.any():
        candidates = np.flatnonzero(~dup_key)
        by_hash = pd.Series(hashes[candidates])
        reused = by_hash.duplicated(keep="first").to_numpy()
        # The first record of each reused hash (a few rows, not one per record).
        firsts = candidates[~reused & by_hash.isin(by_hash[reused]).to_numpy()]
        del by_hash
    else:  # content-hash ids only: their hashes are the keys, unique once duplicates are out
        candidates = reused = firsts = np.zeros(0, dtype=np.int64)
    first_of_hash = dict(zip(hashes[firsts].tolist(), firsts.tolist(), strict=True))
    # The kept record of each duplicated content (a few rows, not millions).
    kept = np.flatnonzero(~dup_key & keys.isin(keys[dup_key]).to_numpy())
    first_by_key = dict(zip(keys.to_numpy()[kept].tolist(), kept.tolist(), strict=True))
    dup_rows = np.flatnonzero(dup_key)
    reused_rows = candidates[reused]
    # One pass over the lines involved, in file order: the ids they bring and the previews of
    # the ones that may be dropped.
    ids, previews = _read_back(raw, index, params, np.concatenate([
        kept, [first_of_hash[h] for h in hashes[reused_rows].tolist()]]).astype(np.int64),
        np.concatenate([dup_rows, reused_rows]).astype(np.int64))
    lines, key_col = index["line"].to_numpy(), keys.to_numpy()

    def shown(row: int) -> str:
        return display_id(ids.get(row, ""), key_col[row])

    # The same id, not a hash collision.
    same_id = np.array([shown(r) == shown(first_of_hash[int(hashes[r])]) for r in reused_rows.tolist()], dtype=bool)
    id_rows = reused_rows[same_id] if len(reused_rows) else reused_rows
    dropped = np.concatenate([dup_rows, id_rows])
    rejected = [
        {"line": int(lines[r]), "reason": "duplicate", "id": shown(r),
         "detail": f"same prompt and reference as id {shown(first_by_key[int(key_col[r])])}",
         "raw_preview": previews[r]}
        for r in dup_rows.tolist()
    ] + [
        {"line": int(lines[r]), "reason": "duplicate_id", "id": shown(r),
         "detail": f"id already used by the record on line {int(lines[first_of_hash[int(hashes[r])]])} (different content)",
         "raw_preview": previews[r]}
        for r in id_rows.tolist()
    ]
    rejected.sort(key=lambda r: r["line"])
    keep = np.ones(len(index), dtype=bool)
    keep[dropped] = False
    if keep.all():
        return index, rejected
    if not consume:
        return index.loc[keep].reset_index(drop=True), rejected
    columns = {}
    for name in list(index.columns):
        columns[name] = index.pop(name).array[keep]  # one column at a time: freed as it goes
    return pd.DataFrame(columns, copy=False), rejected


def _read_back(raw: RawInput | bytes, index: pd.DataFrame, params: Mapping[str, Any], rows: np.ndarray,
               preview_rows: np.ndarray) -> tuple[dict[int, str], dict[int, str]]:
    """Read the lines of ``rows`` and ``preview_rows`` back once, in file order.

    Returns:
        ``{row: id}`` of every one that brings its own id (only the id is decoded: these lines
        normalised once), and ``{row: raw_preview}`` of ``preview_rows``.
    """
    own = index["id_from_source"].to_numpy()
    wanted = np.unique(np.concatenate([rows[own[rows]], preview_rows]))  # ascending rows: ascending offsets
    if not len(wanted):
        return {}, {}
    cfg = FieldConfig.from_params(params)
    preview_set = set(preview_rows.tolist())
    ids: dict[int, str] = {}
    previews: dict[int, str] = {}
    with _gc_paused():
        for row, line in zip(wanted.tolist(), iter_lines(raw, index["offset"].to_numpy()[wanted].tolist()), strict=True):
            if own[row]:
                ids[row] = source_id(orjson.loads(line), cfg)
            if row in preview_set:
                previews[row] = _preview(line)
    return ids, previews


def stratified_sample(index: pd.DataFrame, num_samples: int, min_per_category: int,
                      seed: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """Choose rows of ``index`` per category, deterministically for a given seed and input.

    Returns:
        The chosen rows (in input order) and the allocation per category.
    """
    groups = {cat: np.asarray(rows) for cat, rows in index.groupby("category", sort=True).indices.items()}
    population = {c: len(groups.get(c, ())) for c in CATEGORIES}
    population.update({c: len(r) for c, r in groups.items()})
    alloc = allocate(population, num_samples, min_per_category)
    chosen: list[np.ndarray] = []
    for cat in sorted(groups):
        k = alloc.get(cat, 0)
        if k == 0:
            continue
        # One generator per category, seeded from (seed, category): adding records of one
        # category does not change which records another category draws.
        cat_seed = int.from_bytes(hashlib.blake2b(cat.encode(), digest_size=4).digest(), "big")
        rng = np.random.default_rng([int(seed), cat_seed])
        chosen.append(groups[cat][rng.choice(len(groups[cat]), size=k, replace=False)])
    rows = np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)
    return index.iloc[rows].reset_index(drop=True), alloc


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
