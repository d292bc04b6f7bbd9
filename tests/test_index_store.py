"""The on-disk index and record log: reads and writes, chunk independence, lifetime."""

from __future__ import annotations

import copy
import gc
import json
import os

import numpy as np
import pytest

from phase1b_kedro import index_store, sampling
from phase1b_kedro.index_store import ColumnStore, RecordLog, in_sorted
from phase1b_kedro.sampling import deduplicate, scan_input, stratified_sample


def test_columns_read_write_take_and_count_by_range(tmp_path):
    os.mkdir(tmp_path / "s")
    store = ColumnStore(str(tmp_path / "s"), 10)
    store.add("a", np.int64)
    store.add("b", np.int8, fill=-1)
    assert store.read("a").tolist() == [0] * 10 and store.read("b").tolist() == [-1] * 10
    store.write("a", 3, np.array([5, 6, 7]))
    assert store.read("a", 2, 7).tolist() == [0, 5, 6, 7, 0]
    assert store.take(["a"], np.array([3, 5, 9]))["a"].tolist() == [5, 7, 0]
    store.write("b", 0, np.array([0, 1, 1, 2, -1, 0, 0, 0, 0, 0], dtype=np.int8))
    assert store.count("b", 3).tolist() == [6, 2, 1]
    assert store.count("b", 3, skip=np.array([0, 1, 3])).tolist() == [5, 1, 0]


def test_chunked_reads_give_the_same_answers_whatever_the_chunk(tmp_path, monkeypatch):
    os.mkdir(tmp_path / "s")
    store = ColumnStore(str(tmp_path / "s"), 1000)
    store.add("v", np.int64)
    store.write("v", 0, np.arange(1000) % 7)
    rows = np.array([0, 3, 250, 251, 999])
    whole = (store.take(["v"], rows)["v"].tolist(), store.count("v", 7, skip=rows).tolist())
    monkeypatch.setattr(index_store, "CHUNK", 64)
    assert (store.take(["v"], rows)["v"].tolist(), store.count("v", 7, skip=rows).tolist()) == whole
    assert sum(hi - lo for lo, hi in store.ranges()) == 1000 and len(list(store.ranges())) == 16


def test_in_sorted():
    assert in_sorted(np.array([1, 5, 9, 10]), np.array([2, 5, 10])).tolist() == [False, True, False, True]
    assert in_sorted(np.array([1]), np.array([], dtype=np.int64)).tolist() == [False]


def test_the_index_directory_goes_with_the_index_and_survives_a_copy(sampling_params):
    data = b"".join(json.dumps({"prompt": f"p{i}", "response": "r"}).encode() + b"\n" for i in range(5))
    scan = scan_input(data, {**sampling_params, "scan_workers": 1})
    directory = scan.records.store.directory
    assert os.listdir(directory) and not os.path.exists(os.path.join(directory, "spill"))  # the spill went with the scan
    clone = copy.deepcopy(scan.records)  # what a Kedro MemoryDataset may do
    assert clone.store is scan.records.store
    del scan, clone
    gc.collect()
    assert not os.path.exists(directory)


def _records(n: int) -> bytes:
    rng = np.random.default_rng(0)
    cats = ["math", "code", "qa", "creative"]
    lines = []
    for i in range(n):
        j = int(rng.integers(0, n // 3))  # about a third repeat an earlier record's content
        rec = {"prompt": f"question {j}", "response": f"answer {j}", "category": cats[j % 4]}
        if i % 5 == 0:
            rec["id"] = f"id-{int(rng.integers(0, n))}"  # some ids reused with other content
        lines.append(json.dumps(rec).encode() + b"\n")
    return b"".join(lines)


def test_partitioned_deduplication_and_chunked_sampling_match_the_in_memory_answer(sampling_params, monkeypatch):
    """The on-disk paths (hash partitions, small chunks, workers flushing their rows often)
    give what one pass in memory gives."""
    data = _records(9000)
    params = {**sampling_params, "scan_workers": 1}
    unique, rejected = deduplicate(scan_input(data, params).records, data, params)
    sample, alloc = stratified_sample(unique, 300, 10, seed=3)
    monkeypatch.setattr(sampling, "_PARTITION_ROWS", 200)  # 16 partitions
    monkeypatch.setattr(index_store, "CHUNK", 128)
    monkeypatch.setattr(sampling._Part, "FLUSH", 1)  # flushed at lines 4096 and 8192
    unique_p, rejected_p = deduplicate(scan_input(data, params).records, data, params)
    sample_p, alloc_p = stratified_sample(unique_p, 300, 10, seed=3)
    assert rejected_p == rejected and len(rejected) > 3000
    assert {r["reason"] for r in rejected} == {"duplicate", "duplicate_id"}
    assert unique_p.frame().equals(unique.frame())
    assert alloc_p == alloc and sample_p.equals(sample) and len(sample) == 300
    monkeypatch.setattr(sampling, "PARALLEL_MIN_BYTES", 1000)  # two workers, each flushing
    parallel = scan_input(data, {**params, "scan_workers": 2})
    assert parallel.index.equals(scan_input(data, params).index)
    assert deduplicate(parallel.records, data, params)[1] == rejected
    # Every repeat names the first record with its content, which is kept.
    kept_lines = set(unique.frame()["line"].tolist())
    assert all(r["line"] not in kept_lines for r in rejected)


def test_the_sample_of_a_category_is_its_k_smallest_priorities(sampling_params):
    data = _records(600)
    params = {**sampling_params, "scan_workers": 1}
    unique, _ = deduplicate(scan_input(data, params).records, data, params)
    sample, alloc = stratified_sample(unique, 40, 5, seed=11)
    frame = unique.frame()
    frame["priority"] = sampling.sample_priority(frame["key"].to_numpy(), 11)
    for cat, k in alloc.items():
        expected = frame[frame["category"] == cat].nsmallest(k, "priority")["line"]
        assert sorted(sample.loc[sample["category"] == cat, "line"]) == sorted(expected)
    assert stratified_sample(unique, 40, 5, seed=12)[0]["line"].tolist() != sample["line"].tolist()


def test_a_record_log_keeps_its_records_on_disk_in_order():
    log = RecordLog.of({"line": i, "text": f"t{i}"} for i in range(5))
    log.append({"line": 5, "text": "lone \ud800 surrogate"})  # orjson refuses it: escaped instead
    assert len(log) == 6 and log[0] == {"line": 0, "text": "t0"} and log[-1]["text"] == "lone \ud800 surrogate"
    assert [r["line"] for r in log] == list(range(6)) and log[1:3] == [log[1], log[2]]
    assert log == [dict(r) for r in log] and log != [] and log == log
    with pytest.raises(IndexError):
        log[6]
    assert copy.deepcopy(log) is log
    path = log.path
    assert os.path.getsize(path) > 0
    del log
    gc.collect()
    assert not os.path.exists(path)


def test_rejections_are_written_to_disk_as_they_are_found(sampling_params):
    data = b"{bad\n" * 50 + json.dumps({"prompt": "p", "response": "r"}).encode() + b"\n"
    scan = scan_input(data, {**sampling_params, "scan_workers": 1})
    assert isinstance(scan.rejected, RecordLog) and len(scan.rejected) == 50
    assert [r["line"] for r in scan.rejected] == list(range(1, 51))
    assert {r["reason"] for r in scan.rejected} == {"malformed_json"}


def test_a_full_temporary_directory_is_named_with_the_fix(sampling_params, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sampling, "_merge", full)
    data = json.dumps({"prompt": "p", "response": "r"}).encode() + b"\n"
    with pytest.raises(OSError, match="no space left in the temporary directory .* set TMPDIR") as err:
        scan_input(data, {**sampling_params, "scan_workers": 1})
    assert err.value.errno == errno.ENOSPC


def test_deduplication_is_the_one_pass_in_file_order(sampling_params, monkeypatch):
    """A record is dropped only for an earlier *kept* record: one dropped for its id does not
    block a later record with its content (checked against a plain sequential pass)."""
    lines = [json.dumps(r).encode() + b"\n" for r in (
        {"id": "x", "prompt": "c1", "response": "r"},
        {"id": "x", "prompt": "c2", "response": "r"},   # id x taken: duplicate_id
        {"id": "z", "prompt": "c2", "response": "r"},   # c2 was not kept: kept
        {"id": "z", "prompt": "c3", "response": "r"},   # id z now taken: duplicate_id of line 3
        {"id": "w", "prompt": "c2", "response": "r"},   # c2 kept at line 3: duplicate
    )]
    data = b"".join(lines) + _records(4000)
    params = {**sampling_params, "scan_workers": 1}
    unique, rejected = deduplicate(scan_input(data, params).records, data, params)
    assert [(r["line"], r["reason"], r["id"]) for r in rejected[:3]] == [
        (2, "duplicate_id", "x"), (4, "duplicate_id", "z"), (5, "duplicate", "w")]
    assert rejected[1]["detail"] == "id already used by the record on line 3 (different content)"
    assert rejected[2]["detail"] == "same prompt and reference as id z"
    # The whole file against a sequential pass with sets.
    kept, contents, ids, expected = [], set(), set(), []
    for lineno, raw in enumerate(data.splitlines(), start=1):
        rec = json.loads(raw)
        content = (rec["prompt"], rec["response"])
        rec_id = rec.get("id", content)
        if content in contents:
            expected.append((lineno, "duplicate"))
        elif rec_id in ids:
            expected.append((lineno, "duplicate_id"))
        else:
            kept.append(lineno)
            contents.add(content)
            ids.add(rec_id)
    assert [(r["line"], r["reason"]) for r in rejected] == expected
    assert unique.frame()["line"].tolist() == kept
    monkeypatch.setattr(sampling, "_PARTITION_ROWS", 300)  # the same through hash partitions
    assert deduplicate(scan_input(data, params).records, data, params)[1] == rejected


def test_a_tmpdir_python_passes_over_is_named_in_a_warning(tmp_path, monkeypatch, caplog):
    """Python quietly falls back to /tmp when TMPDIR is not a writable directory; the stage says
    so, naming both, since it may put gigabytes there."""
    import tempfile

    missing = tmp_path / "not-mounted"
    monkeypatch.setenv("TMPDIR", str(missing))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() looks again
    with caplog.at_level("WARNING", logger="phase1b_kedro.sampling"):
        sampling._warn_if_tmpdir_unused()
    assert f"TMPDIR={missing} is not a writable directory" in caplog.text
    assert tempfile.gettempdir() in caplog.text
    caplog.clear()
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    with caplog.at_level("WARNING", logger="phase1b_kedro.sampling"):
        sampling._warn_if_tmpdir_unused()
    assert caplog.text == ""
