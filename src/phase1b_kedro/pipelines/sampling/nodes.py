"""Sampling nodes: index the raw JSONL, drop duplicates, draw a stratified sample."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from phase1b_kedro.records import CATEGORIES
from phase1b_kedro.sampling import (
    build_records,
    deduplicate,
    index_frame,
    scan_input,
    split_lines,
    stratified_sample,
)


def index_records(raw_prompts: bytes, params: dict[str, Any]) -> tuple[pd.DataFrame, list[dict], dict]:
    """Parse, normalise and categorise every input line into a compact index.

    Args:
        raw_prompts: The raw JSONL file contents.
        params: The ``sampling`` parameter group.

    Returns:
        The index of usable records (one row each, input order), the quarantined lines
        (line number, reason, preview) and the scan's counts.
    """
    scan = scan_input(raw_prompts, params)
    info = {
        "lines_read": scan.lines_read,
        "blank_lines": scan.blank_lines,
        "input_sha256": scan.input_sha256,
        "input_bytes": scan.input_bytes,
    }
    return index_frame(scan.index), scan.rejected, info


def deduplicate_records(record_index: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """Remove exact duplicates and reused ids; the first occurrence stays.

    Args:
        record_index: The index from :func:`index_records`.

    Returns:
        The de-duplicated index and one rejection per dropped record.
    """
    return deduplicate(record_index)


def sample_records(unique_index: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Draw the stratified sample (proportional, with a per-category minimum).

    Args:
        unique_index: The de-duplicated index.
        params: The ``sampling`` parameter group (``num_samples``, ``min_per_category``, ``seed``).

    Returns:
        The sampled rows of the index, in input order.
    """
    sample, _ = stratified_sample(
        unique_index, int(params["num_samples"]), int(params.get("min_per_category", 0)), int(params["seed"])
    )
    return sample


def build_test_dataset(raw_prompts: bytes, sampled_index: pd.DataFrame, params: dict[str, Any]) -> list[dict]:
    """Normalise the sampled lines into full test records (ordered by category, then line).

    Args:
        raw_prompts: The raw JSONL file contents.
        sampled_index: The rows chosen by :func:`sample_records`.
        params: The ``sampling`` parameter group.

    Returns:
        Test records in the record contract's shape.
    """
    ordered = sampled_index.sort_values(["category", "line"], kind="stable")
    return build_records(split_lines(raw_prompts), ordered["line"].tolist(), params)


def summarise_sampling(
    scan_info: dict,
    record_index: pd.DataFrame,
    unique_index: pd.DataFrame,
    sampled_index: pd.DataFrame,
    quarantined: list[dict],
    duplicates: list[dict],
    params: dict[str, Any],
) -> tuple[dict, list[dict]]:
    """Reconcile the counts and gather every rejected line in one list.

    Args:
        scan_info: Counts from :func:`index_records`.
        record_index: All usable records.
        unique_index: Usable records after de-duplication.
        sampled_index: The sample.
        quarantined: Lines that could not be used.
        duplicates: Records dropped as duplicates.
        params: The ``sampling`` parameter group.

    Returns:
        ``test_dataset_stats`` and ``rejected_records`` (sorted by line).

    Raises:
        AssertionError: If the counts do not reconcile (a record would be lost).
    """
    rejected = sorted(quarantined + duplicates, key=lambda r: r["line"])
    read = scan_info["lines_read"]
    if read != len(unique_index) + len(rejected):
        raise AssertionError(f"sampling lost records: read {read} != accepted {len(unique_index)} + rejected {len(rejected)}")

    def per_category(frame: pd.DataFrame) -> dict[str, int]:
        counts = Counter(frame["category"])
        return {c: int(counts.get(c, 0)) for c in CATEGORIES}

    def by_source(frame: pd.DataFrame) -> dict[str, int]:
        return {k: int(v) for k, v in sorted(Counter(frame["category_source"]).items())}

    stats = {
        "input_sha256": scan_info["input_sha256"],
        "input_bytes": scan_info["input_bytes"],
        "records_read": read,
        "blank_lines": scan_info["blank_lines"],
        "accepted": len(unique_index),
        "rejected": len(rejected),
        "rejected_by_reason": dict(sorted(Counter(r["reason"] for r in rejected).items())),
        "duplicates_dropped": sum(r["reason"] == "duplicate" for r in rejected),
        "formats": {k: int(v) for k, v in sorted(Counter(record_index["format"]).items())},
        "population": per_category(unique_index),
        "sample": per_category(sampled_index),
        "sampled": len(sampled_index),
        "category_source": {"population": by_source(unique_index), "sample": by_source(sampled_index)},
        "ids_from_source": int(unique_index["id_from_source"].sum()),
        "seed": int(params["seed"]),
        "num_samples_requested": int(params["num_samples"]),
        "min_per_category": int(params.get("min_per_category", 0)),
        "on_bad_record": params.get("on_bad_record", "quarantine"),
        "input_format": params.get("input_format", "auto"),
    }
    return stats, rejected
