"""Sampling nodes: index the raw JSONL (streamed), drop duplicates, draw a stratified sample."""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from phase1b_kedro.categories import METHODS
from phase1b_kedro.datasets import RawInput
from phase1b_kedro.index_store import RecordLog
from phase1b_kedro.records import CATEGORIES
from phase1b_kedro.sampling import (
    RecordIndex,
    SamplingSettings,
    build_records,
    deduplicate,
    disk_space_named,
    scan_input,
    sigterm_as_exit,
    stratified_sample,
    temp_dir,
)

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

#: Above this share of input lines quarantined (duplicates aside), the run logs a warning.
BAD_LINES_WARN_SHARE = 0.05


def index_records(raw_prompts: RawInput | bytes,
                  params: dict[str, Any]) -> tuple[RecordIndex, RecordLog, RecordLog, dict]:
    """Parse, normalise and categorise every input line into a compact index, without duplicates.

    Exact duplicates (same conversation and reference) and reused ids are dropped here, the
    first occurrence kept. The index is kept on disk (:class:`RecordIndex`: a temporary
    directory, removed when the run no longer needs it) and read in chunks, so that the
    memory the stage takes does not grow with the input.

    Args:
        raw_prompts: The raw JSONL input (a handle streamed in byte ranges, or bytes).
        params: The ``sampling`` parameter group (checked before any line is read).

    Returns:
        The index of usable, unique records (one row each, input order); the quarantined lines
        (line number, reason, preview); one rejection per dropped duplicate; and the scan's
        counts, with the formats of all usable records, how categories were decided and each
        method's estimated accuracy.

    Raises:
        NoRecordsError: When no line is usable (the message names the likely cause).
    """
    with sigterm_as_exit(), disk_space_named():  # a stopped run removes its on-disk index and logs
        return _index_records(raw_prompts, params)


def _index_records(raw_prompts: RawInput | bytes,
                   params: dict[str, Any]) -> tuple[RecordIndex, RecordLog, RecordLog, dict]:
    scan = scan_input(raw_prompts, params)
    info = {
        "lines_read": scan.lines_read,
        "blank_lines": scan.blank_lines,
        "input_sha256": scan.input_sha256,
        "input_bytes": scan.input_bytes,
        "categories": scan.categories,
        "formats": {k: v for k, v in scan.records.counts("format").items() if v},
    }
    unique, duplicates = deduplicate(scan.records, raw_prompts, params)
    return unique, scan.rejected, duplicates, info


def sample_records(unique_index: RecordIndex, params: dict[str, Any]) -> pd.DataFrame:
    """Draw the stratified sample (proportional, with a per-category minimum).

    Args:
        unique_index: The de-duplicated index.
        params: The ``sampling`` parameter group (``num_samples``, ``min_per_category``, ``seed``).

    Returns:
        The sampled rows of the index, in input order.
    """
    settings = SamplingSettings.from_params(params)
    sample, _ = stratified_sample(unique_index, settings.num_samples, settings.min_per_category, settings.seed)
    return sample


def build_test_dataset(raw_prompts: RawInput | bytes, sampled_index: pd.DataFrame,
                       params: dict[str, Any]) -> list[dict]:
    """Normalise the sampled lines into full test records (ordered by category, then line).

    Args:
        raw_prompts: The raw JSONL input (only the sampled lines are read, by offset).
        sampled_index: The rows chosen by :func:`sample_records`.
        params: The ``sampling`` parameter group.

    Returns:
        Test records in the record contract's shape.
    """
    ordered = sampled_index.assign(category=sampled_index["category"].astype(str)).sort_values(
        ["category", "line"], kind="stable")
    return build_records(raw_prompts, ordered, params)


def summarise_sampling(
    scan_info: dict,
    unique_index: RecordIndex,
    sampled_index: pd.DataFrame,
    quarantined: RecordLog,
    duplicates: RecordLog,
    params: dict[str, Any],
) -> tuple[dict, RecordLog]:
    """Reconcile the counts and gather every rejected line in one log.

    Args:
        scan_info: Counts from :func:`index_records` (with the formats of all usable records).
        unique_index: Usable records after de-duplication.
        sampled_index: The sample.
        quarantined: Lines that could not be used.
        duplicates: Records dropped as duplicates.
        params: The ``sampling`` parameter group.

    Returns:
        ``test_dataset_stats`` and ``rejected_records`` (by line; both inputs are, so they
        are merged as they are read, on disk).

    Raises:
        AssertionError: If the counts do not reconcile (a record would be lost).
    """
    by_reason: Counter[str] = Counter()

    def counted(records: Iterable[dict]) -> Iterator[dict]:  # reasons counted as the merge writes them
        for record in records:
            by_reason[record["reason"]] += 1
            yield record

    with disk_space_named():
        rejected = RecordLog.of(counted(heapq.merge(quarantined, duplicates, key=lambda r: r["line"])), temp_dir(),
                                "rejected-")
    read = scan_info["lines_read"]
    if read != len(unique_index) + len(rejected):
        raise AssertionError(f"sampling lost records: read {read} != accepted {len(unique_index)} + rejected {len(rejected)}")
    bad = {reason: n for reason, n in by_reason.items() if reason not in ("duplicate", "duplicate_id")}
    if sum(bad.values()) > BAD_LINES_WARN_SHARE * read:
        top = ", ".join(f"{reason}: {n}" for reason, n in sorted(bad.items(), key=lambda kv: -kv[1])[:3])
        logger.warning("sampling quarantined %d of %d input lines (%.0f%%; %s): see rejected_records for each "
                       "line and its reason", sum(bad.values()), read, 100 * sum(bad.values()) / read, top)
    settings = SamplingSettings.from_params(params)
    stats = {
        "input_sha256": scan_info["input_sha256"],
        "input_bytes": scan_info["input_bytes"],
        "records_read": read,
        "blank_lines": scan_info["blank_lines"],
        "accepted": len(unique_index),
        "rejected": len(rejected),
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "duplicates_dropped": by_reason.get("duplicate", 0),
        "formats": dict(sorted(scan_info["formats"].items())),
        **_category_counts(unique_index, sampled_index, scan_info),
        "ids_from_source": unique_index.total("id_from_source"),
        "seed": settings.seed,
        "num_samples_requested": settings.num_samples,
        "min_per_category": settings.min_per_category,
        "on_bad_record": settings.on_bad_record,
        "input_format": settings.input_format,
    }
    return stats, rejected


def _category_counts(unique_index: RecordIndex, sampled_index: pd.DataFrame, scan_info: dict) -> dict[str, Any]:
    """Population and sample per category; how categories were decided (field > classifier >
    source > rules) and each method's accuracy estimated on the file's own labelled records
    (the classifier's with whole sources held out)."""
    def per_category(frame: pd.DataFrame) -> dict[str, int]:
        counts = _counts(frame["category"])
        return {c: counts.get(c, 0) for c in CATEGORIES}

    def by_method(frame: pd.DataFrame) -> dict[str, int]:
        counts = _counts(frame["category_method"])
        return {m: counts.get(m, 0) for m in METHODS}

    return {
        "population": unique_index.counts("category"),
        "sample": per_category(sampled_index),
        "sampled": len(sampled_index),
        "category_method": {"population": unique_index.counts("category_method"), "sample": by_method(sampled_index)},
        "category_accuracy_estimate": scan_info.get("categories", {}).get("estimated_accuracy", {}),
    }


def _counts(column: pd.Series) -> dict[str, int]:
    """``{value: count}`` of the values present in a column (counted in pandas, not per row in Python)."""
    return {str(k): int(v) for k, v in column.value_counts(sort=False).items() if v}
