"""Sampling: bad input, de-duplication, allocation, determinism and the pipeline run."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from kedro.io import DatasetError

from phase1b_kedro import sampling as sampling_mod
from phase1b_kedro.datasets import RawBytesDataset
from phase1b_kedro.sampling import BadRecordError, allocate, deduplicate, scan_input, stratified_sample
from tests.support.sampling import run_pipeline


def jsonl(*objs) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def records_for(category: str, n: int, start: int = 0) -> list[dict]:
    return [{"id": f"{category}-{i}", "category": category, "prompt": f"{category} prompt {i}", "response": f"r{i}"}
            for i in range(start, start + n)]


def test_bad_lines_are_quarantined_with_line_and_reason(sampling_params):
    good = {"prompt": "What is 2+2?", "response": "4"}
    data = (
        b"\xef\xbb\xbf" + json.dumps(good).encode() + b"\r\n"      # 1 BOM + CRLF: fine
        + b"{not json}\n"                                           # 2 malformed
        + b"[1, 2, 3]\n"                                            # 3 not an object
        + b"\n"                                                     # blank: not a record
        + b'{"prompt": "   ", "response": "x"}\n'                   # 5 empty prompt
        + b'{"prompt": "caf\xe9", "response": "x"}\n'               # 6 invalid UTF-8
        + b'{"foo": "bar"}\n'                                       # 7 unknown format
        + b'{"prompt": "Name a colour", "response": "red"}\n'       # 8 fine
        + b'{"prompt": "trunc'                                      # 9 truncated last line
    )
    out = run_pipeline(data, sampling_params)
    rejected = {r["line"]: r["reason"] for r in out["rejected_records"]}
    assert rejected == {2: "malformed_json", 3: "not_an_object", 5: "empty_prompt", 6: "invalid_utf8",
                        7: "unknown_format", 9: "truncated_last_line"}
    stats = out["test_dataset_stats"]
    assert stats["records_read"] == 8 and stats["blank_lines"] == 1
    assert stats["accepted"] == 2 and stats["rejected"] == 6
    assert stats["records_read"] == stats["accepted"] + stats["rejected"]
    assert sorted(r["meta"]["line"] for r in out["test_dataset"]) == [1, 8]
    assert all(r["raw_preview"] for r in out["rejected_records"])


def test_a_run_that_quarantines_many_lines_says_so(sampling_params, caplog):
    good = jsonl(*records_for("math", 40))
    out = run_pipeline(good + b"{bad\n" * 2, sampling_params)  # 2 of 42 (under 5%): quiet
    assert out["test_dataset_stats"]["rejected"] == 2
    assert "sampling quarantined" not in caplog.text
    run_pipeline(good + b"{bad\n" * 3 + b'{"foo": 1}\n' * 2 + jsonl(*records_for("math", 2)) * 2, sampling_params)
    # Duplicates (2 here) are not bad lines: 5 of 49.
    assert "sampling quarantined 5 of 49 input lines (10%; malformed_json: 3, unknown_format: 2)" in caplog.text


def test_fail_policy_stops_naming_the_line(sampling_params):
    data = jsonl({"prompt": "a", "response": "b"}) + b"{oops\n"
    with pytest.raises(BadRecordError, match="line 2: malformed_json"):
        scan_input(data, {**sampling_params, "on_bad_record": "fail"})


def test_missing_and_empty_files_are_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        RawBytesDataset(str(tmp_path / "nope.jsonl")).load()
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\n \n")
    with pytest.raises(DatasetError, match="empty"):
        RawBytesDataset(str(empty)).load()


def test_duplicates_and_reused_ids_are_rejected(sampling_params):
    data = jsonl(
        {"id": "a", "prompt": "P1", "response": "R1"},
        {"id": "b", "prompt": "P1", "response": "R1"},   # same content: duplicate
        {"id": "a", "prompt": "P2", "response": "R2"},   # same id, other content
        {"prompt": "P3", "response": "R3"},
        {"prompt": "P3", "response": "R3"},              # hash ids: duplicate
    )
    unique, rejected = deduplicate(scan_input(data, sampling_params).records, data, sampling_params)
    assert unique.frame()["line"].tolist() == [1, 4]
    assert [(r["line"], r["reason"]) for r in rejected] == [(2, "duplicate"), (3, "duplicate_id"), (5, "duplicate")]
    assert "id a" in rejected[0]["detail"]
    assert [r["id"] for r in rejected] == ["b", "a", rejected[2]["id"]] and rejected[2]["id"].startswith("h-")
    assert rejected[2]["detail"] == f"same prompt and reference as id {rejected[2]['id']}"
    assert rejected[1]["detail"] == "id already used by the record on line 1 (different content)"
    assert [r["raw_preview"] for r in rejected] == [
        '{"id": "b", "prompt": "P1", "response": "R1"}', '{"id": "a", "prompt": "P2", "response": "R2"}',
        '{"prompt": "P3", "response": "R3"}']


def test_an_own_id_that_spells_another_records_content_hash_id_is_a_reused_id(sampling_params):
    first = {"prompt": "P1", "response": "R1"}
    params = {**sampling_params, "scan_workers": 1}
    hash_id = scan_input(jsonl(first), params).index["key"].map(lambda k: f"h-{k:016x}").iat[0]
    data = jsonl(first, {"id": hash_id, "prompt": "P2", "response": "R2"}, {"id": hash_id.upper(), "prompt": "P3",
                                                                            "response": "R3"})
    unique, rejected = deduplicate(scan_input(data, params).records, data, params)
    assert unique.frame()["line"].tolist() == [1, 3]  # another spelling is another id
    assert [(r["line"], r["reason"], r["id"]) for r in rejected] == [(2, "duplicate_id", hash_id)]


def test_ids_compared_by_hash_are_confirmed_on_their_text(sampling_params, monkeypatch):
    """The index holds ids as 64-bit hashes; if two different ids shared one, neither is rejected."""
    import phase1b_kedro.sampling as sampling_mod

    monkeypatch.setattr(sampling_mod, "id_hash", lambda rec_id: 7)  # every id collides
    data = jsonl(
        {"id": "x", "prompt": "P1", "response": "R1"},
        {"id": "y", "prompt": "P2", "response": "R2"},   # other id, same hash: kept
        {"id": "x", "prompt": "P3", "response": "R3"},   # the same id: rejected
    )
    params = {**sampling_params, "scan_workers": 1}
    unique, rejected = deduplicate(scan_input(data, params).records, data, params)
    assert unique.frame()["line"].tolist() == [1, 2]
    assert [(r["line"], r["reason"], r["id"]) for r in rejected] == [(3, "duplicate_id", "x")]


def test_allocation_proportional_with_minimum_and_caps():
    pop = {"math": 800, "code": 150, "creative": 5, "qa": 45, "other": 0, "reasoning": 0}
    alloc = allocate(pop, 100, 10)
    assert sum(alloc.values()) == 100
    assert alloc["creative"] == 5            # all it has (below the minimum)
    assert alloc["qa"] >= 10                 # minimum honoured
    assert alloc["other"] == 0 and alloc["reasoning"] == 0
    assert alloc["math"] > alloc["code"] > alloc["qa"]
    # the remainder follows the population: math/code ≈ 800/150
    # the unconstrained categories share the rest in proportion: math/code ≈ 800/150
    assert abs(alloc["math"] / alloc["code"] - 800 / 150) < 0.3


def test_allocation_caps_at_population_and_shrinks_minimums():
    assert allocate({"math": 3, "code": 2}, 100, 10) == {"math": 3, "code": 2}
    alloc = allocate({"math": 50, "code": 50, "qa": 50}, 6, 10)
    assert alloc == {"math": 2, "code": 2, "qa": 2}


def test_stratified_sample_is_deterministic_and_seed_dependent(sampling_params):
    data = jsonl(*(records_for("math", 300) + records_for("code", 60) + records_for("creative", 4)))
    index = scan_input(data, sampling_params).records
    a, alloc = stratified_sample(index, 50, 5, seed=1)
    b, _ = stratified_sample(index, 50, 5, seed=1)
    c, _ = stratified_sample(index, 50, 5, seed=2)
    assert a["line"].tolist() == b["line"].tolist()
    assert a["line"].tolist() != c["line"].tolist()
    assert Counter(a["category"]) == {"math": alloc["math"], "code": alloc["code"], "creative": 4}
    assert len(a) == 50


def test_parallel_scan_equals_serial(sampling_params, monkeypatch):
    objs = records_for("math", 700) + records_for("qa", 300)
    for i, obj in enumerate(objs[::3]):  # a third without a category field: inferred
        obj.pop("category")
        obj["source"] = f"s{i % 4}"
    data = jsonl(*objs[:500]) + b"{broken\n\n" + jsonl(*objs[500:]) + b'{"prompt": "x"'
    serial = scan_input(data, {**sampling_params, "scan_workers": 1})
    monkeypatch.setattr(sampling_mod, "PARALLEL_MIN_BYTES", 1000)
    parallel = scan_input(data, {**sampling_params, "scan_workers": 2})
    assert parallel.index.equals(serial.index)
    assert parallel.rejected == serial.rejected
    assert [(r["line"], r["reason"]) for r in serial.rejected] == [(501, "malformed_json"), (1003, "truncated_last_line")]
    assert serial.lines_read == 1002 and serial.blank_lines == 1
    assert serial.index["line"].tolist() == list(range(1, 501)) + list(range(503, 1003))


def test_capped_training_set_is_the_same_whatever_the_worker_count(sampling_params, monkeypatch):
    """The classifier trains on the labelled records with the smallest content hashes: with a
    cap below the labelled count, one range and two ranges must pick the same records."""
    words = ["integral", "function", "story", "capital", "sum", "poem", "list", "river"]
    objs = [{**obj, "prompt": f"{obj['prompt']} {words[i % 8]} {words[(i * 3) % 8]}"}
            for i, obj in enumerate(records_for("math", 150) + records_for("code", 150) + records_for("qa", 150))]
    for obj in objs[1::2]:  # half unlabelled: classified
        obj.pop("category")
    data = jsonl(*objs)
    params = {**sampling_params, "category_inference": {"classifier_max_train": 60}}
    serial = scan_input(data, {**params, "scan_workers": 1})
    monkeypatch.setattr(sampling_mod, "PARALLEL_MIN_BYTES", 1000)
    parallel = scan_input(data, {**params, "scan_workers": 2})
    assert serial.categories["estimated_accuracy"]["labelled_records"] == 60
    assert parallel.categories == serial.categories
    assert parallel.index.equals(serial.index)


def test_the_same_labelled_content_with_and_without_a_source_is_indexed(sampling_params, monkeypatch):
    """Two lines with the same conversation and reference tie on the content hash; one names a
    source and the other none. Breaking the tie by comparing those fields crashed the scan
    (``None < str``); the earlier line wins it, in one range or in several."""
    objs = []
    for i in range(40):
        pair = {"prompt": f"What is {i} + 1?", "response": str(i + 1), "category": "math"}
        objs += [{**pair, "source": "arith"}, pair]
    data = jsonl(*objs)
    params = {**sampling_params, "category_inference": {"classifier_max_train": 30}}
    serial = scan_input(data, {**params, "scan_workers": 1})
    monkeypatch.setattr(sampling_mod, "PARALLEL_MIN_BYTES", 1000)
    parallel = scan_input(data, {**params, "scan_workers": 2})
    assert serial.lines_read == len(serial.index) == 80
    assert serial.categories["estimated_accuracy"]["labelled_records"] == 30
    assert parallel.categories == serial.categories
    assert parallel.index.equals(serial.index)


def test_pipeline_on_bundled_file(sampling_params, project_root):
    data = (project_root / "data" / "01_raw" / "prompts.jsonl").read_bytes()
    out = run_pipeline(data, sampling_params)
    stats, records = out["test_dataset_stats"], out["test_dataset"]
    assert len(records) == stats["sampled"] == sampling_params["num_samples"]
    assert all(stats["sample"][c] >= sampling_params["min_per_category"] for c in stats["sample"])
    assert stats["records_read"] == stats["accepted"] + stats["rejected"]
    assert set(stats["formats"]) == {"alpaca", "evals", "prompt_response", "sharegpt"}
    assert stats["category_method"]["population"]["field"] > 0
    # the bundled evals sources carry no category: their records share their source's rule majority
    assert stats["category_method"]["population"]["source"] > 2000
    ids = [r["id"] for r in records]
    assert len(set(ids)) == len(ids)
    for rec in records:
        assert set(rec) == {"id", "category", "messages", "prompt", "reference", "source", "meta"}
        assert rec["messages"] and rec["messages"][-1]["role"] != "assistant"
        assert rec["prompt"].strip() and rec["reference"].strip()
    assert run_pipeline(data, sampling_params)["test_dataset"] == records


def test_a_null_text_part_is_quarantined_next_to_valid_lines(sampling_params):
    """A text part whose text is null once raised a TypeError that killed the run."""
    data = jsonl(
        {"prompt": "What is 2+2?", "response": "4"},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": None}]},
                      {"role": "assistant", "content": "x"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "Name the largest planet."},
                                                   {"type": "text", "text": "Answer in one word."}]},
                      {"role": "assistant", "content": "Jupiter"}]},
    )
    out = run_pipeline(data, sampling_params)
    assert [(r["line"], r["reason"]) for r in out["rejected_records"]] == [(2, "wrong_type")]
    by_line = {r["meta"]["line"]: r for r in out["test_dataset"]}
    assert sorted(by_line) == [1, 3]
    assert by_line[3]["prompt"] == "Name the largest planet.\nAnswer in one word."


def test_any_exception_on_one_line_quarantines_only_that_line(sampling_params, monkeypatch):
    real = sampling_mod.normalise

    def flaky(obj, cfg, fmt="auto", with_meta=True):
        if obj.get("prompt") == "boom":
            raise KeyError("surprise")
        return real(obj, cfg, fmt, with_meta)

    monkeypatch.setattr(sampling_mod, "normalise", flaky)
    data = jsonl({"prompt": "a", "response": "b"}, {"prompt": "boom", "response": "b"}, {"prompt": "c", "response": "d"})
    out = run_pipeline(data, sampling_params)
    assert [(r["line"], r["reason"], r["detail"]) for r in out["rejected_records"]] == \
        [(2, "unexpected_error", "KeyError: 'surprise'")]
    assert out["test_dataset_stats"]["accepted"] == 2


def test_single_string_list_parameter_from_the_cli(sampling_params):
    """`--params "sampling.prompt_fields=instruction_text"` passes a string: one field, not characters."""
    data = jsonl(*({"instruction_text": f"Task {i}", "response": f"r{i}"} for i in range(5)))
    out = run_pipeline(data, {**sampling_params, "prompt_fields": "instruction_text", "response_fields": "response"})
    assert out["test_dataset_stats"]["accepted"] == 5
    assert sorted(r["prompt"] for r in out["test_dataset"]) == [f"Task {i}" for i in range(5)]


@pytest.mark.parametrize(("key", "value", "match"), [
    ("prompt_fields", 7, r"sampling\.prompt_fields"),
    ("category_fields", ["category", None], r"sampling\.category_fields\[1\]"),
    ("input_format", "csv", r"sampling\.input_format"),
    ("on_bad_record", "skip", r"sampling\.on_bad_record"),
    ("category_inference", {"classifier_min_confidence": 3}, r"sampling\.category_inference\.classifier_min_confidence"),
    ("category_inference", {"clasifier": True}, r"unknown keys \['clasifier'\]"),
    ("max_prompt_chars", 0, r"sampling\.max_prompt_chars must be a positive integer, got 0"),
    ("max_prompt_chars", -5, r"sampling\.max_prompt_chars must be a positive integer, got -5"),
    ("max_prompt_chars", 2.7, r"sampling\.max_prompt_chars must be a positive integer, got 2\.7"),
    ("max_prompt_chars", "abc", r"sampling\.max_prompt_chars must be a positive integer, got 'abc'"),
    ("category_rules", {"math": {"keywords": 5}}, r"sampling\.category_rules\.math\.keywords"),
    ("category_aliases", "code", r"sampling\.category_aliases must be a mapping"),
])
def test_bad_parameters_stop_before_reading_naming_the_parameter(sampling_params, key, value, match):
    from phase1b_kedro.params import ParameterError

    with pytest.raises(ParameterError, match=match):
        scan_input(jsonl({"prompt": "a", "response": "b"}), {**sampling_params, key: value})


def test_zero_accepted_records_is_an_error_naming_the_likely_cause(sampling_params):
    from phase1b_kedro.sampling import NoRecordsError

    data = jsonl(*({"instruction_text": f"Task {i}", "response": "r"} for i in range(4)))
    with pytest.raises(NoRecordsError, match=r"accepted 0 of 4 records.*prompt_fields.*unknown_format: 4 \(e\.g\. line 1"):
        scan_input(data, sampling_params)


def test_streams_from_a_file_and_any_fsspec_url(sampling_params, tmp_path):
    from phase1b_kedro.datasets import RawJSONLinesDataset

    data = b"\xef\xbb\xbf" + jsonl(*records_for("math", 30)) + b"{bad\n" + jsonl(*records_for("qa", 20))
    (tmp_path / "in.jsonl").write_bytes(data)
    import fsspec

    with fsspec.open("memory:///phase1b/in.jsonl", "wb") as fh:
        fh.write(data)
    want = run_pipeline(data, sampling_params)
    for url in (str(tmp_path / "in.jsonl"), "memory:///phase1b/in.jsonl"):
        raw = RawJSONLinesDataset(url).load()
        assert raw.size == len(data) and raw.data is None
        got = run_pipeline(raw, sampling_params)
        assert got["test_dataset"] == want["test_dataset"] and got["rejected_records"] == want["rejected_records"]
    assert [r["line"] for r in want["rejected_records"]] == [31]
    with pytest.raises(DatasetError, match="empty"):
        (tmp_path / "blank.jsonl").write_bytes(b"  \n\n")
        RawJSONLinesDataset(str(tmp_path / "blank.jsonl")).load()


@pytest.mark.parametrize("block", [1, 3, 7, 1 << 20])
def test_block_reader_cuts_lines_like_readline(monkeypatch, block):
    import io

    from phase1b_kedro.datasets import RawInput

    data = b'{"a": 1}\n\n\r\n' + b"x" * 25 + b"\nlast line without newline"
    monkeypatch.setattr(sampling_mod, "_BLOCK", block)
    for start, stop in ((0, len(data)), (0, 9), (9, 12), (12, len(data))):
        fh, pos, want = io.BytesIO(data), start, []
        fh.seek(start)
        while pos < stop and (line := fh.readline()):
            want.append((pos, line))
            pos += len(line)
        assert list(sampling_mod._lines(RawInput(data=data), start, stop)) == want


def test_a_single_truncated_line_after_a_bom_is_a_truncated_last_line(sampling_params):
    from phase1b_kedro.sampling import NoRecordsError

    with pytest.raises(NoRecordsError, match="truncated_last_line"):
        scan_input(b'\xef\xbb\xbf{"prompt": "trunc', sampling_params)


def test_a_last_line_cut_inside_a_utf8_character_is_a_truncated_last_line(sampling_params):
    data = jsonl({"prompt": "a", "response": "b"}) + '{"prompt": "caf\u00e9'.encode()[:-1]
    rejected = scan_input(data, sampling_params).rejected
    assert [(r["line"], r["reason"]) for r in rejected] == [(2, "truncated_last_line")]


def test_numbers_in_text_fields_keep_their_literal_through_the_stage(sampling_params):
    data = (b'{"prompt": "What is 2**100?", "answer": 1267650600228229401496703205376}\n'
            b'{"prompt": "Write 1e5 in full", "answer": 1e5}\n'
            b'{"question": "Price?", "answer": 1.50}\n')
    out = run_pipeline(data, {**sampling_params, "num_samples": 3, "min_per_category": 0})
    assert sorted(r["reference"] for r in out["test_dataset"]) == ["1.50", "1267650600228229401496703205376", "1e5"]
    assert out["test_dataset_stats"]["accepted"] == 3


def test_the_deduplicated_index_is_a_view_of_the_same_store(sampling_params):
    data = jsonl({"id": "a", "prompt": "P1", "response": "R1"}, {"id": "b", "prompt": "P1", "response": "R1"},
                 {"prompt": "P2", "response": "R2"}, {"prompt": "P3", "response": "R3"}, {"prompt": "P2", "response": "R2"})
    params = {**sampling_params, "scan_workers": 1}
    scan = scan_input(data, params)
    unique, rejected = deduplicate(scan.records, data, params)
    assert unique.store is scan.records.store and len(unique) == 3 and len(scan.records) == 5
    assert unique.frame()["line"].tolist() == [1, 3, 4]
    assert unique.frame().equals(scan.index.iloc[[0, 2, 3]].reset_index(drop=True))
    assert [r["line"] for r in rejected] == [2, 5]
    assert unique.counts("category")["other"] + unique.counts("category")["qa"] <= 3


def test_a_json_array_file_gets_the_conversion_hint_and_a_column_not_a_line(sampling_params):
    from phase1b_kedro.sampling import NoRecordsError

    data = b'[{"prompt": "a", "response": "b"}, {"prompt": "c", "response": "d"}]\n'
    with pytest.raises(NoRecordsError, match=r"jq -c '\.\[\]' FILE > FILE\.jsonl"):
        scan_input(data, sampling_params)
    rejected = scan_input(jsonl({"prompt": "a", "response": "b"}) + b'{"prompt": "x",}\n' + jsonl(
        {"prompt": "c", "response": "d"}), sampling_params).rejected
    assert rejected[0]["detail"] == "trailing comma is not allowed at character 15 of the line"


def test_a_parallel_scan_reports_its_progress(sampling_params, monkeypatch, caplog):
    monkeypatch.setattr(sampling_mod, "PARALLEL_MIN_BYTES", 1000)
    monkeypatch.setattr(sampling_mod, "PROGRESS_EVERY", 0.01)
    monkeypatch.setattr(sampling_mod, "_meanwhile", lambda raw, scanner, workers: "sha")  # report at once
    data = jsonl(*({"prompt": f"What is {i} + {i}? " * 20, "response": str(2 * i)} for i in range(20_000)))
    with caplog.at_level("INFO", logger="phase1b_kedro.sampling"):
        scan_input(data, {**sampling_params, "scan_workers": 2})
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("indexing the input: ")]
    assert lines and all(" GB read (" in line and "% of" not in line for line in lines)


def test_when_every_conversation_is_too_long_the_error_names_the_parameter(sampling_params):
    from phase1b_kedro.sampling import NoRecordsError

    data = jsonl({"prompt": "a" * 50, "response": "b"}, {"prompt": "c" * 60, "response": "d"})
    with pytest.raises(NoRecordsError, match=r"longer than sampling.max_prompt_chars: .*raise it above the lengths.*prompt_too_long: 2 \(e.g. line 1: 50 characters > max_prompt_chars=10\)"):
        scan_input(data, {**sampling_params, "max_prompt_chars": 10})


def test_a_source_field_with_a_value_per_record_is_capped(sampling_params, monkeypatch, caplog):
    """Past ``max_sources`` distinct sources (a URL per record, say), records count as without a
    source: the memory sources take is bounded, and the first sources in file order are kept
    whatever the number of workers."""
    objs = [{"prompt": f"What is {i} + {i}?", "response": str(2 * i), "source": f"https://x.org/{i % 40}"}
            for i in range(400)]
    data = jsonl(*objs)
    params = {**sampling_params, "category_inference": {"max_sources": 25}}
    serial = scan_input(data, {**params, "scan_workers": 1})
    assert "more than 25 distinct sources" in caplog.text
    assert serial.records.sources == [f"https://x.org/{i}" for i in range(25)]
    index = serial.index
    assert index["source"].isna().sum() == 400 * 15 // 40 and index["source"].notna().sum() == 400 * 25 // 40
    monkeypatch.setattr(sampling_mod, "PARALLEL_MIN_BYTES", 1000)
    parallel = scan_input(data, {**params, "scan_workers": 2})
    assert parallel.index.equals(index) and parallel.records.sources == serial.records.sources
