"""Record datasets on any fsspec URL, with credentials and Kedro versioning."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import ClassVar

import fsspec
import numpy as np
import pytest
import yaml
from fsspec.implementations.memory import MemoryFileSystem
from kedro.io import DataCatalog, DatasetError, Version

from phase1b_kedro.datasets import JSONLinesDataset, NpzDataset, RawBytesDataset, RawJSONLinesDataset
from phase1b_kedro.hooks import _shown_path
from tests.conftest import PROJECT_ROOT, copy_project

RECORDS = [
    {"id": "007", "score": None, "meta": {"messages": [{"role": "user", "content": "héllo"}]}},
    {"id": "b", "score": np.int64(7), "passed": True},
]
# What RECORDS read back as: numpy scalars become plain numbers, nothing else changes.
LOADED = [RECORDS[0], {"id": "b", "score": 7, "passed": True}]
JSONL_BYTES = ('{"id":"007","score":null,"meta":{"messages":[{"role":"user","content":"héllo"}]}}\n'
               '{"id":"b","score":7,"passed":true}\n').encode()


@pytest.fixture
def mem_dir() -> str:
    """A fresh folder on fsspec's process-wide memory filesystem, removed afterwards."""
    folder = f"/phase1b-test-{uuid.uuid4().hex}"
    yield f"memory://{folder}"
    fs = fsspec.filesystem("memory")
    if fs.exists(folder):
        fs.rm(folder, recursive=True)


def _url(kind: str, mem_dir: str, tmp_path: Path, name: str) -> str:
    return f"{mem_dir}/{name}" if kind == "memory" else f"file://{tmp_path}/{name}"


def _cat(url: str) -> bytes:
    with fsspec.open(url, "rb") as fh:
        return fh.read()


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_jsonlines_round_trip_on_a_url(kind, mem_dir, tmp_path):
    url = _url(kind, mem_dir, tmp_path, "sub/records.jsonl")
    ds = JSONLinesDataset(url)
    assert not ds.exists()
    ds.save(RECORDS)
    assert ds.exists()
    assert _cat(url) == JSONL_BYTES
    assert JSONLinesDataset(url).load() == LOADED
    assert ds._describe() == {"filepath": url.split("://", 1)[1], "protocol": kind, "version": None}


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_npz_round_trip_on_a_url(kind, mem_dir, tmp_path):
    url = _url(kind, mem_dir, tmp_path, "emb/failure_embeddings.npz")
    ds = NpzDataset(url)
    ds.save({"ids": ["a", "b", "c"], "vectors": np.arange(6, dtype=np.float32).reshape(3, 2)})
    got = NpzDataset(url).load()
    assert sorted(got) == ["ids", "vectors"]
    assert got["ids"].tolist() == ["a", "b", "c"] and got["ids"].dtype.kind == "U"
    assert got["vectors"].dtype == np.float32 and got["vectors"].tolist() == [[0, 1], [2, 3], [4, 5]]
    assert _cat(url)[:2] == b"PK"  # a zip archive, as numpy writes it


def test_npz_compress_save_arg_writes_a_smaller_archive(mem_dir):
    arrays = {"vectors": np.zeros((200, 64), dtype=np.float32)}
    NpzDataset(f"{mem_dir}/plain.npz").save(arrays)
    NpzDataset(f"{mem_dir}/small.npz", save_args={"compress": True}).save(arrays)
    assert len(_cat(f"{mem_dir}/small.npz")) < len(_cat(f"{mem_dir}/plain.npz")) / 10
    assert NpzDataset(f"{mem_dir}/small.npz").load()["vectors"].shape == (200, 64)
    with pytest.raises(DatasetError, match="unknown allow_pickle"):
        NpzDataset(f"{mem_dir}/x.npz", save_args={"allow_pickle": True})


def test_relative_local_path_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = JSONLinesDataset("data/07_model_output/judged_results.jsonl")
    ds.save(RECORDS)
    assert (tmp_path / "data/07_model_output/judged_results.jsonl").read_bytes() == JSONL_BYTES
    assert ds.load() == LOADED
    assert ds._describe()["filepath"] == "data/07_model_output/judged_results.jsonl"
    assert ds._describe()["protocol"] == "file"
    assert _shown_path(ds._describe()) == "data/07_model_output/judged_results.jsonl"


def test_local_save_is_atomic_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out.jsonl"
    ds = JSONLinesDataset(str(target))
    ds.save(RECORDS)
    with pytest.raises(DatasetError):
        ds.save([{"ok": 1}, {"not_json": {1, 2}}])  # fails after the first line was written
    assert target.read_bytes() == JSONL_BYTES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
    (tmp_path / "plain.txt").write_bytes(b"")  # created the ordinary way: 0o666 less the umask
    assert target.stat().st_mode == (tmp_path / "plain.txt").stat().st_mode


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_versioned_judged_results_load_by_each_version_and_latest(kind, mem_dir, tmp_path):
    url = _url(kind, mem_dir, tmp_path, "judged_results.jsonl")
    first, second = [{"id": "x", "passed": False}], [{"id": "x", "passed": True}]
    JSONLinesDataset(url, version=Version(None, "2025-01-01T10.00.00.000Z")).save(first)
    JSONLinesDataset(url, version=Version(None, "2025-01-02T10.00.00.000Z")).save(second)
    assert JSONLinesDataset(url, version=Version("2025-01-01T10.00.00.000Z", None)).load() == first
    assert JSONLinesDataset(url, version=Version("2025-01-02T10.00.00.000Z", None)).load() == second
    latest = JSONLinesDataset(url, version=Version(None, None))
    assert latest.load() == second
    assert latest.list_versions(full_path=False) == ["2025-01-02T10.00.00.000Z", "2025-01-01T10.00.00.000Z"]
    assert _cat(f"{url}/2025-01-01T10.00.00.000Z/judged_results.jsonl") == b'{"id":"x","passed":false}\n'
    with pytest.raises(DatasetError, match="must not exist"):
        JSONLinesDataset(url, version=Version(None, "2025-01-01T10.00.00.000Z")).save(second)


def test_release_forgets_the_cached_latest_version(mem_dir):
    url = f"{mem_dir}/judged_results.jsonl"
    JSONLinesDataset(url, version=Version(None, "v1")).save([{"v": 1}])
    reader = JSONLinesDataset(url, version=Version(None, None))
    assert reader.load() == [{"v": 1}]
    JSONLinesDataset(url, version=Version(None, "v2")).save([{"v": 2}])
    assert reader.load() == [{"v": 1}]  # the latest version is resolved once, as Kedro does
    reader.release()
    assert reader.load() == [{"v": 2}]


def test_versioning_a_dataset_saved_before_without_versions_is_explained(tmp_path):
    target = tmp_path / "judged_results.jsonl"
    JSONLinesDataset(str(target)).save(RECORDS)
    with pytest.raises(DatasetError, match="versioning was enabled on a dataset already saved"):
        JSONLinesDataset(str(target), version=Version(None, None)).save(RECORDS)


def _catalog(url: str, **kwargs) -> DataCatalog:
    """The project's own ``judged_results`` entry at ``url``, with ``versioned: true``."""
    entries = {}
    for part in sorted((PROJECT_ROOT / "conf/base").glob("catalog*.yml")):
        entries.update(yaml.safe_load(part.read_text()) or {})
    base = entries["judged_results"]
    entry = {**base, "filepath": url, "versioned": True}
    return DataCatalog.from_config({"judged_results": entry}, **kwargs)


def test_versioned_judged_results_through_the_catalog(tmp_path):
    url = f"file://{tmp_path}/07_model_output/judged_results.jsonl"
    old, new = "2025-03-01T09.00.00.000Z", "2025-03-02T09.00.00.000Z"
    _catalog(url, save_version=old).save("judged_results", [{"id": "a", "score": 3}])
    _catalog(url, save_version=new).save("judged_results", [{"id": "a", "score": 9}])
    catalog = _catalog(url)
    assert catalog.load("judged_results") == [{"id": "a", "score": 9}]
    assert catalog.load("judged_results", version=old) == [{"id": "a", "score": 3}]
    assert catalog.load("judged_results", version=new) == [{"id": "a", "score": 9}]
    pinned = _catalog(url, load_versions={"judged_results": old})  # what --load-versions does
    assert pinned.load("judged_results") == [{"id": "a", "score": 3}]
    described = pinned.get("judged_results")._describe()
    assert described["filepath"] == f"{tmp_path}/07_model_output/judged_results.jsonl"
    assert described["protocol"] == "file" and described["version"].load == old


def test_missing_ok_with_a_url(mem_dir, tmp_path):
    for url in (f"{mem_dir}/human_labels.jsonl", f"file://{tmp_path}/human_labels.jsonl"):
        assert JSONLinesDataset(url, missing_ok=True).load() == []
        assert JSONLinesDataset(url, missing_ok=True, version=Version(None, None)).load() == []
        with pytest.raises(DatasetError, match=r"File not found: .*human_labels\.jsonl$"):
            JSONLinesDataset(url).load()
        with pytest.raises(DatasetError, match=r"File not found: .*human_labels\.jsonl/v9/human_labels\.jsonl"):
            JSONLinesDataset(url, missing_ok=True, version=Version("v9", None)).load()
    with pytest.raises(DatasetError, match=f"File not found: {mem_dir}/x.npz"):
        NpzDataset(f"{mem_dir}/x.npz").load()


def test_malformed_line_names_file_and_line(mem_dir):
    url = f"{mem_dir}/judge_scores.jsonl"
    with fsspec.open(url, "wb") as fh:
        fh.write(b'{"id": 1}\n\n{"id": 2,\n{"id": 3}\n')
    with pytest.raises(DatasetError, match=rf"^{mem_dir}/judge_scores\.jsonl:3: malformed JSON"):
        JSONLinesDataset(url).load()


def test_loading_streams_line_by_line(mem_dir, monkeypatch):
    """The loader iterates the fsspec file object; it never calls ``read()`` for the whole file."""
    url = f"{mem_dir}/big.jsonl"
    JSONLinesDataset(url).save([{"i": i} for i in range(1000)])
    calls = []
    real_open = MemoryFileSystem.open

    def recording_open(self, path, *args, **kwargs):
        fh = real_open(self, path, *args, **kwargs)
        read = fh.read
        fh.read = lambda *a: calls.append(a) or read(*a)
        return fh

    monkeypatch.setattr(MemoryFileSystem, "open", recording_open)
    assert len(JSONLinesDataset(url).load()) == 1000
    assert calls == []


class RecordingFileSystem(MemoryFileSystem):
    """A memory filesystem under its own protocol that remembers its constructor arguments."""

    protocol = "phase1brec"
    seen: ClassVar[list[dict]] = []

    def __init__(self, **storage_options):
        super().__init__(**storage_options)
        RecordingFileSystem.seen.append(storage_options)


@pytest.fixture
def recording_fs():
    fsspec.register_implementation("phase1brec", RecordingFileSystem, clobber=True)
    RecordingFileSystem.seen.clear()
    RecordingFileSystem.clear_instance_cache()
    yield RecordingFileSystem
    RecordingFileSystem.clear_instance_cache()


def test_credentials_and_fs_args_reach_the_filesystem(recording_fs):
    folder = f"/phase1b-rec-{uuid.uuid4().hex}"
    options = {"credentials": {"token": "s3cr3t"}, "fs_args": {"endpoint": "http://x"}}
    want = {"token": "s3cr3t", "endpoint": "http://x"}
    JSONLinesDataset(f"phase1brec://{folder}/a.jsonl", **options).save(RECORDS)
    assert recording_fs.seen == [want]
    # the raw input's handle reopens the file with the same options (as worker processes do)
    raw = RawJSONLinesDataset(f"phase1brec://{folder}/a.jsonl", **options).load()
    recording_fs.clear_instance_cache()
    with raw.open() as fh:
        assert fh.read() == JSONL_BYTES
    assert RawBytesDataset(f"phase1brec://{folder}/a.jsonl", **options).load() == JSONL_BYTES
    assert NpzDataset(f"phase1brec://{folder}/b.npz", **options)._fs.storage_options == want
    assert all(seen == want for seen in recording_fs.seen) and len(recording_fs.seen) >= 2
    with pytest.raises(DatasetError, match="token given in both credentials and fs_args"):
        JSONLinesDataset(f"phase1brec://{folder}/c.jsonl", credentials={"token": "a"}, fs_args={"token": "b"})


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_open_args_reach_open(kind, mem_dir, tmp_path):
    url = _url(kind, mem_dir, tmp_path, "model_outputs.jsonl.gz")
    fs_args = {"open_args_save": {"compression": "gzip"}, "open_args_load": {"compression": "gzip"}}
    JSONLinesDataset(url, fs_args=fs_args).save(RECORDS)
    assert gzip.decompress(_cat(url)) == JSONL_BYTES
    assert JSONLinesDataset(url, fs_args=fs_args).load() == LOADED


def test_raw_datasets_on_a_url(mem_dir):
    url = f"{mem_dir}/prompts.jsonl"
    for dataset in (RawBytesDataset, RawJSONLinesDataset):
        with pytest.raises(DatasetError, match=f"Input file not found: {url} \\(set raw_prompts"):
            dataset(url).load()
        assert not dataset(url).exists()
    with fsspec.open(url, "wb") as fh:
        fh.write(JSONL_BYTES)
    assert RawBytesDataset(url).load() == JSONL_BYTES
    raw = RawJSONLinesDataset(url).load()
    assert (raw.protocol, raw.size, raw.data) == ("memory", len(JSONL_BYTES), None)
    assert RawJSONLinesDataset(url).exists() and RawBytesDataset(url).exists()
    with pytest.raises(DatasetError, match="read-only input"):
        RawBytesDataset(url).save(b"x")
    assert _shown_path(RawJSONLinesDataset(url)._describe()) == url


def _run_sampling(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src"), "KEDRO_DISABLE_TELEMETRY": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "400"}
    return subprocess.run([sys.executable, "-m", "kedro", "run", "--pipeline", "sampling"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def test_kedro_run_with_a_file_url_input_and_memory_outputs(tmp_path):
    root = copy_project(tmp_path)
    out = "memory:///phase1b-run"
    (root / "conf/local/catalog.yml").write_text(yaml.safe_dump({
        "raw_prompts": {"type": "phase1b_kedro.datasets.RawJSONLinesDataset",
                        "filepath": f"file://{root}/data/01_raw/prompts.jsonl"},
        "test_dataset": {"type": "phase1b_kedro.datasets.JSONLinesDataset", "filepath": f"{out}/test_dataset.jsonl"},
        "rejected_records": {"type": "phase1b_kedro.datasets.JSONLinesDataset",
                             "filepath": f"{out}/rejected_records.jsonl"},
    }))
    run = _run_sampling(root)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    stats = json.loads((root / "data/05_model_input/test_dataset_stats.json").read_text())
    assert stats["sampled"] == 200 and stats["records_read"] == stats["accepted"] + stats["rejected"]
    assert stats["input_sha256"] == hashlib.sha256((root / "data/01_raw/prompts.jsonl").read_bytes()).hexdigest()
    assert not (root / "data/05_model_input/test_dataset.jsonl").exists()
    assert not (root / "data/05_model_input/rejected_records.jsonl").exists()
    assert f"test_dataset -> {out}/test_dataset.jsonl" in run.stdout + run.stderr


@pytest.mark.parametrize(("content", "what"), [
    (gzip.compress(b'{"prompt": "a", "response": "b"}\n'), "gzip-compressed"),
    ('{"prompt": "a", "response": "b"}\n'.encode("utf-16"), "UTF-16"),
    (b"PK\x03\x04rest", "a zip archive"),
    ('{"prompt": "a", "response": "b"}\n'.encode("utf-16-le"), "UTF-16 text \\(no byte-order mark\\)"),
])
def test_raw_input_that_is_compressed_or_not_utf8_is_named_with_the_fix(tmp_path, content, what):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=f"is {what}.*convert it once"):
        RawJSONLinesDataset(str(path)).load()


@pytest.mark.parametrize(("codec", "what", "fix"), [
    ("utf-32", "UTF-32 text", "iconv -f UTF-32 "),      # with a byte-order mark (UTF-16LE's is its start)
    ("utf-32-le", "UTF-32 text \\(no byte-order mark\\)", "iconv -f UTF-32LE "),
    ("utf-32-be", "UTF-32 text \\(no byte-order mark\\)", "iconv -f UTF-32BE "),
    ("utf-16", "UTF-16 text", "iconv -f UTF-16 "),
    ("utf-16-be", "UTF-16 text \\(no byte-order mark\\)", "iconv -f UTF-16BE "),
])
def test_utf16_and_utf32_are_told_apart_and_get_their_own_conversion(tmp_path, codec, what, fix):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes('{"prompt": "a", "response": "b"}\n{"prompt": "c", "response": "d"}\n'.encode(codec))
    with pytest.raises(DatasetError, match=f"is {what},.*`{fix}") as err:
        RawJSONLinesDataset(str(path)).load()
    # The conversion it names gives a file that loads.
    iconv = fix.split()[2]
    path.write_bytes(path.read_bytes().decode({"UTF-32": "utf-32", "UTF-32LE": "utf-32-le", "UTF-32BE": "utf-32-be",
                                               "UTF-16": "utf-16", "UTF-16BE": "utf-16-be"}[iconv]).encode())
    assert RawJSONLinesDataset(str(path)).load().size == path.stat().st_size, err


@pytest.mark.parametrize("content", [
    b'[\n  {\n    "prompt": "a",\n    "response": "b"\n  }\n]\n',                       # pretty-printed
    b'[\n{"prompt": "a", "response": "b"},\n{"prompt": "c", "response": "d"}\n]\n',     # one object per line
    b'\xef\xbb\xbf  [{"prompt": "a", "response": "b"},\n{"prompt": "c", "response": "d"}]\n',
])
def test_a_json_array_document_is_refused_with_the_conversion(tmp_path, content):
    path = tmp_path / "prompts.json"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=r"looks like one JSON array.*jq -c '\.\[\]' FILE > FILE\.jsonl"):
        RawJSONLinesDataset(str(path)).load()
    path.write_bytes(b'[1, 2]\n{"prompt": "a", "response": "b"}\n')  # JSON Lines whose first line is an array
    assert RawJSONLinesDataset(str(path)).load().size == path.stat().st_size


def test_json_lines_wrapped_in_brackets_get_the_conversion_that_works(tmp_path):
    path = tmp_path / "prompts.json"
    path.write_bytes(b'[\n{"prompt": "a", "response": "b"}\n{"prompt": "c", "response": "d"}\n]\n')  # no commas
    with pytest.raises(DatasetError, match=r"looks like one JSON array.*sed '1d;\$d' FILE > FILE\.jsonl"):
        RawJSONLinesDataset(str(path)).load()


def test_raw_input_through_compression_is_refused_naming_the_setting(tmp_path):
    path = tmp_path / "prompts.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"prompt": "a", "response": "b"}\n'))
    with pytest.raises(DatasetError, match=r"compression='gzip'.*decompress it once"):
        RawJSONLinesDataset(str(path), fs_args={"open_args_load": {"compression": "gzip"}}).load()


def test_raw_input_with_cr_only_line_ends_is_named_with_the_fix(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(b'{"prompt": "a", "response": "b"}\r{"prompt": "c", "response": "d"}\r')
    with pytest.raises(DatasetError, match="CR only"):
        RawJSONLinesDataset(str(path)).load()
    path.write_bytes(b'{"prompt": "a", "response": "b"}\r\n{"prompt": "c", "response": "d"}\r\n')  # CRLF is fine
    assert RawJSONLinesDataset(str(path)).load().size == path.stat().st_size


def test_a_killed_writers_temp_file_is_removed_by_the_next_save_and_a_live_ones_is_not(tmp_path):
    """A run killed (SIGKILL, or SIGTERM outside the stage that converts it) while saving leaves
    `.<name>.<hex>.tmp` beside the output. The next save of that output removes it once nobody
    holds it locked; a live writer's (another process, mid-write) stays, and so do other
    outputs' temp files."""
    import signal
    import time

    target = tmp_path / "out.jsonl"
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from phase1b_kedro.datasets import JSONLinesDataset\n"
         "def records():\n"
         "    yield {'a': 1}\n"
         "    time.sleep(600)\n"
         f"JSONLinesDataset({str(target)!r}).save(records())\n"],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")})
    try:
        deadline = time.monotonic() + 60
        while not (temps := list(tmp_path.glob(".out.jsonl.*.tmp"))) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(temps) == 1, "the writer never started its temp file"
        live = temps[0]
        other = tmp_path / ".other.jsonl.0123.tmp"
        other.write_bytes(b"x")
        old = time.time() - 3600
        for path in (live, other):
            os.utime(path, (old, old))
        JSONLinesDataset(str(target)).save(RECORDS)
        assert live.exists()  # locked by its live writer
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
        os.utime(live, (old, old))
        JSONLinesDataset(str(target)).save(RECORDS)
        assert not live.exists()
        assert other.exists()  # another output's
        assert target.read_bytes() == JSONL_BYTES
    finally:
        writer.kill()
        writer.wait(30)
