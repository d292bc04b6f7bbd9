"""Reading, indexing and stratified sampling of a large JSONL of prompt/reference pairs.

The input is scanned once into a compact index (line number, id, category, content hash),
in parallel worker processes for large files; only the sampled lines are normalised into
full records afterwards. This keeps 500K-record inputs to seconds and little memory.
"""

from __future__ import annotations

import hashlib
import logging
import math
import multiprocessing as mp
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from phase1b_kedro.categories import classifier_from_params
from phase1b_kedro.records import CATEGORIES, FORMATS, FieldConfig, Normalised, Rejection, normalise

logger = logging.getLogger(__name__)

_BOM = b"\xef\xbb\xbf"
#: Below this many lines the scan stays in-process (forking costs more than it saves).
PARALLEL_MIN_LINES = 50_000
_RAW_PREVIEW = 300


class BadRecordError(ValueError):
    """Raised under ``on_bad_record: fail`` for the first unusable line."""


@dataclass
class RecordIndex:
    """Column-oriented index of the usable records, in input order."""

    line: list[int] = field(default_factory=list)
    id: list[str] = field(default_factory=list)
    id_from_source: list[bool] = field(default_factory=list)
    key: list[str] = field(default_factory=list)
    category: list[str] = field(default_factory=list)
    category_source: list[str] = field(default_factory=list)
    format: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.line)

    def extend(self, other: RecordIndex) -> None:
        """Append another index's rows."""
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))


@dataclass
class ScanResult:
    """What one pass over the input found."""

    index: RecordIndex
    rejected: list[dict[str, Any]]
    lines_read: int
    blank_lines: int
    input_sha256: str
    input_bytes: int


def split_lines(data: bytes) -> list[bytes]:
    """Split raw file bytes into lines: BOM stripped, CRLF tolerated, final newline optional."""
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def parse_line(raw: bytes, is_last: bool) -> Any | Rejection:
    """Decode one line to a JSON value, or say precisely why it cannot be."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as uexc:
            return Rejection("invalid_utf8", f"byte 0x{raw[uexc.start]:02x} at column {uexc.start + 1}")
        if is_last:
            return Rejection("truncated_last_line", f"last line is not complete JSON ({exc})")
        return Rejection("malformed_json", str(exc))


def rejection_record(lineno: int, rej: Rejection, raw: bytes) -> dict[str, Any]:
    """The quarantined form of a bad line: where, why, and a preview of what it held."""
    return {
        "line": lineno,
        "reason": rej.reason,
        "detail": rej.detail,
        "id": None,  # a line that does not normalise has no trustworthy id
        "raw_preview": raw[:_RAW_PREVIEW].decode("utf-8", errors="replace"),
    }


class Scanner:
    """Turns lines into index rows and rejections, under one configuration."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        """Args:
        params: The ``sampling`` parameter group.
        """
        self.cfg = FieldConfig.from_params(params)
        self.forced_format = params.get("input_format", "auto")
        if self.forced_format != "auto" and self.forced_format not in FORMATS:
            raise ValueError(f"sampling.input_format must be auto or one of {FORMATS}, got {self.forced_format!r}")
        self.policy = params.get("on_bad_record", "quarantine")
        if self.policy not in ("quarantine", "fail"):
            raise ValueError(f"sampling.on_bad_record must be quarantine or fail, got {self.policy!r}")
        self.classifier = classifier_from_params(params)

    def record(self, raw: bytes, is_last: bool) -> Normalised | Rejection:
        """Parse and normalise one line."""
        obj = parse_line(raw, is_last)
        if isinstance(obj, Rejection):
            return obj
        return normalise(obj, self.cfg, self.forced_format)

    def scan(self, lines: Sequence[bytes], first_lineno: int, unterminated: int) -> tuple[RecordIndex, list[dict], int]:
        """Index ``lines`` (numbered from ``first_lineno``); returns index, rejections, blanks.

        ``unterminated`` is the number of the file's last line when it lacks a newline, else -1.
        """
        index, rejected, blanks = RecordIndex(), [], 0
        decide = self.classifier.decide
        for offset, raw in enumerate(lines):
            lineno = first_lineno + offset
            if not raw.strip():
                blanks += 1
                continue
            rec = self.record(raw, lineno == unterminated)
            if isinstance(rec, Rejection):
                if self.policy == "fail":
                    raise BadRecordError(f"input line {lineno}: {rec.reason}: {rec.detail}")
                rejected.append(rejection_record(lineno, rec, raw))
                continue
            decision = decide(rec.source_category, rec.messages, rec.prompt)
            index.line.append(lineno)
            index.id.append(rec.id)
            index.id_from_source.append(rec.id_from_source)
            index.key.append(rec.key)
            index.category.append(decision.category)
            index.category_source.append(decision.source)
            index.format.append(rec.format)
        return index, rejected, blanks


# Set in the parent just before forking so workers share the lines without pickling them.
_WORK: dict[str, Any] = {}


def _scan_chunk(bounds: tuple[int, int]) -> tuple[RecordIndex, list[dict], int]:
    start, stop = bounds
    lines = _WORK["lines"]
    return _WORK["scanner"].scan(lines[start:stop], start + 1, _WORK["unterminated"])


def scan_input(data: bytes, params: Mapping[str, Any]) -> ScanResult:
    """Index every line of a JSONL file's bytes.

    Args:
        data: The raw file contents.
        params: The ``sampling`` parameter group (``scan_workers``: ``auto`` or a number).

    Returns:
        The index of usable records, the rejected lines and counts.
    """
    scanner = Scanner(params)
    lines = split_lines(data)
    n = len(lines)
    # A last line with no newline after it and broken JSON is reported as truncated.
    last_unterminated = n if not data.endswith(b"\n") else -1
    workers = params.get("scan_workers", "auto")
    workers = (os.cpu_count() or 1) if workers == "auto" else int(workers)
    workers = max(1, min(workers, math.ceil(n / PARALLEL_MIN_LINES)))
    index, rejected, blanks = RecordIndex(), [], 0
    if workers == 1 or "fork" not in mp.get_all_start_methods():
        parts = [scanner.scan(lines, 1, last_unterminated)]
    else:
        step = math.ceil(n / workers)
        bounds = [(s, min(s + step, n)) for s in range(0, n, step)]
        _WORK.update(lines=lines, scanner=scanner, unterminated=last_unterminated)
        try:
            with ProcessPoolExecutor(len(bounds), mp_context=mp.get_context("fork")) as pool:
                parts = list(pool.map(_scan_chunk, bounds))
        finally:
            _WORK.clear()
    for part_index, part_rejected, part_blanks in parts:
        index.extend(part_index)
        rejected.extend(part_rejected)
        blanks += part_blanks
    return ScanResult(
        index=index,
        rejected=rejected,
        lines_read=n - blanks,
        blank_lines=blanks,
        input_sha256=hashlib.sha256(data).hexdigest(),
        input_bytes=len(data),
    )


def index_frame(index: RecordIndex) -> pd.DataFrame:
    """The index as a DataFrame (cheap to copy between nodes, vectorised group-bys)."""
    return pd.DataFrame({name: getattr(index, name) for name in RecordIndex.__dataclass_fields__})


def deduplicate(index: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Drop exact duplicates (same conversation and reference) and reused ids.

    The first occurrence is kept. A later record with the same content is rejected as
    ``duplicate``; one that reuses an id with different content as ``duplicate_id``.

    Args:
        index: The record index (columns of :class:`RecordIndex`), in input order.

    Returns:
        The de-duplicated index and the rejections (with line numbers and the kept id).
    """
    dup_key = index["key"].duplicated(keep="first")
    first_id_by_key = index.loc[~dup_key].set_index("key")["id"]
    rest = index.loc[~dup_key]
    dup_id = rest["id"].duplicated(keep="first")
    rejected = [
        {"line": int(line), "reason": "duplicate", "id": rec_id,
         "detail": f"same prompt and reference as id {first_id_by_key[key]}"}
        for line, rec_id, key in index.loc[dup_key, ["line", "id", "key"]].itertuples(index=False)
    ] + [
        {"line": int(line), "reason": "duplicate_id", "id": rec_id,
         "detail": "id already used by an earlier record with different content"}
        for line, rec_id in rest.loc[dup_id, ["line", "id"]].itertuples(index=False)
    ]
    rejected.sort(key=lambda r: r["line"])
    return rest.loc[~dup_id].reset_index(drop=True), rejected


def allocate(population: Mapping[str, int], num_samples: int, min_per_category: int) -> dict[str, int]:
    """How many records to draw per category.

    Proportional allocation, ``n * N_c / N``, with two constraints: a category never gets
    fewer than ``min(N_c, min_per_category)`` (lowered evenly when the minimums alone exceed
    ``num_samples``) nor more than it has. Constrained categories are fixed at their bound
    and the others re-share what is left in proportion to their size; the final integer
    counts use the largest-remainder method (ties broken by category name).

    Args:
        population: Records available per category.
        num_samples: Total wanted; capped at the population size.
        min_per_category: Floor per category so rare categories appear.

    Returns:
        ``{category: count}`` summing to ``min(num_samples, total population)``.
    """
    cats = sorted(c for c in population if population[c] > 0)
    total = min(int(num_samples), sum(population[c] for c in cats))
    if total <= 0:
        return {c: 0 for c in population}
    floor = min(int(min_per_category), total // len(cats))
    lower = {c: min(population[c], floor) for c in cats}
    fixed: dict[str, int] = {}
    while True:
        free = [c for c in cats if c not in fixed]
        left = total - sum(fixed.values())
        weight = sum(population[c] for c in free)
        ideal = {c: left * population[c] / weight for c in free} if weight else {}
        newly = {c: lower[c] for c in free if ideal[c] < lower[c]}
        newly.update({c: population[c] for c in free if ideal[c] > population[c]})
        if not newly:
            break
        fixed.update(newly)
    alloc = {**fixed, **{c: math.floor(v) for c, v in ideal.items()}}
    rest = total - sum(alloc.values())
    for c in sorted(ideal, key=lambda c: (-(ideal[c] - math.floor(ideal[c])), c))[:rest]:
        alloc[c] += 1
    return {c: alloc.get(c, 0) for c in population}


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


def build_records(lines: Sequence[bytes], line_numbers: Sequence[int], params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Normalise the given input lines into full test records (the record contract)."""
    scanner = Scanner(params)
    out = []
    for lineno in line_numbers:
        lineno = int(lineno)
        rec = scanner.record(lines[lineno - 1], False)
        assert isinstance(rec, Normalised), f"line {lineno} was indexed but does not normalise"
        decision = scanner.classifier.decide(rec.source_category, rec.messages, rec.prompt)
        meta = {
            **rec.meta,
            "line": lineno,
            "category_source": decision.source,
            "source_category": rec.source_category,
        }
        if decision.rules:
            meta["category_rules"] = list(decision.rules)
        out.append({
            "id": rec.id,
            "category": decision.category,
            "messages": rec.messages,
            "prompt": rec.prompt,
            "reference": rec.reference,
            "source": rec.source or rec.format,
            "meta": meta,
        })
    return out
