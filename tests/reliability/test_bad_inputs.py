"""The bad input corpus (tests/data/bad_inputs/): each file gives a clear error, or keeps the
good records and quarantines every bad one with its line and reason; counts reconcile."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.io import DatasetError

from phase1b_kedro.datasets import RawBytesDataset
from tests.support.sampling import run_pipeline
from tests.reliability.conftest import record

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"

# file -> (ids kept, {line: reason} quarantined)
EXPECTED = {
    "malformed_lines.jsonl": (["g1", "g2", "g3"], {2: "malformed_json", 4: "malformed_json"}),
    "truncated_last_line.jsonl": (["g1", "g2"], {3: "truncated_last_line"}),
    "utf8_bom.jsonl": (["g1", "g2"], {}),
    "crlf_line_ends.jsonl": (["g1", "g2", "g3"], {}),
    "invalid_utf8.jsonl": (["g1", "g2"], {2: "invalid_utf8"}),
    "missing_or_empty_fields.jsonl": (["g1"], {2: "unknown_format", 3: "unknown_format", 4: "empty_prompt",
                                               5: "missing_reference"}),
    # numbers are accepted as text and a list reference is a list of acceptable answers (documented)
    "wrong_types.jsonl": (["g1", "t1", "t2"], {4: "wrong_type", 5: "not_an_object", 6: "not_an_object"}),
    "duplicate_ids_different_content.jsonl": (["dup", "g9"], {2: "duplicate_id", 3: "duplicate"}),
    "huge_prompt_1mb.jsonl": (["g1"], {2: "prompt_too_long"}),
}
#: Files of which no line is usable: the run stops with the likely cause.
NOTHING_USABLE = {"unknown_format.jsonl": "accepted 0 of 3 records. Likely cause: no line matched a known format"}


def test_every_corpus_file_is_covered():
    assert {p.name for p in CORPUS.glob("*.jsonl")} == set(EXPECTED) | set(NOTHING_USABLE) | {"empty.jsonl"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_file_is_quarantined_with_reasons(name, sampling_params):
    data = RawBytesDataset(str(CORPUS / name)).load()
    out = run_pipeline(data, {**sampling_params, "num_samples": 100, "min_per_category": 1})
    kept, quarantined = EXPECTED[name]
    stats = out["test_dataset_stats"]
    assert sorted(r["id"] for r in out["test_dataset"]) == sorted(kept)
    assert {r["line"]: r["reason"] for r in out["rejected_records"]} == quarantined
    assert all(r["detail"] and ("raw_preview" in r or r.get("id")) for r in out["rejected_records"])
    assert stats["records_read"] == stats["accepted"] + stats["rejected"]
    assert all(len(r.get("raw_preview", "")) <= 500 for r in out["rejected_records"])   # a 1 MB line is not copied
    record("bad_inputs", {"file": name, "lines": stats["records_read"], "kept": len(kept),
                          "quarantined": {str(k): v for k, v in quarantined.items()}})


@pytest.mark.parametrize("name", sorted(NOTHING_USABLE))
def test_file_with_no_usable_line_stops_naming_the_cause(name, sampling_params):
    from phase1b_kedro.sampling import NoRecordsError

    data = RawBytesDataset(str(CORPUS / name)).load()
    with pytest.raises(Exception) as info:
        run_pipeline(data, sampling_params)
    chain = [info.value, info.value.__cause__, info.value.__context__]
    assert any(isinstance(e, NoRecordsError) and NOTHING_USABLE[name] in str(e) for e in chain if e is not None)
    record("bad_inputs", {"file": name, "lines": 3, "kept": 0, "quarantined": {},
                          "error": "NoRecordsError: " + NOTHING_USABLE[name]})


def test_empty_file_is_a_clear_error():
    with pytest.raises(DatasetError, match="empty"):
        RawBytesDataset(str(CORPUS / "empty.jsonl")).load()
    record("bad_inputs", {"file": "empty.jsonl", "lines": 0, "kept": 0, "quarantined": {},
                          "error": "DatasetError: Input file is empty"})


def test_fail_policy_names_the_first_bad_line(sampling_params):
    from phase1b_kedro.sampling import BadRecordError

    data = RawBytesDataset(str(CORPUS / "malformed_lines.jsonl")).load()
    with pytest.raises(Exception) as info:
        run_pipeline(data, {**sampling_params, "on_bad_record": "fail"})
    chain = [info.value, info.value.__cause__, info.value.__context__]
    assert any(isinstance(e, BadRecordError) or "line 2" in str(e) for e in chain if e is not None)
