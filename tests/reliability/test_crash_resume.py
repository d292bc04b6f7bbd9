"""Crash and resume: a real `kedro run` subprocess killed with SIGKILL part-way, then rerun.

Generation (the real bundled model) and judging (a scripted judge server that counts what
it is sent): no finished item is done again, and the final outputs equal an uninterrupted
run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from phase1b_kedro.judges.cache import VerdictCache
from tests.conftest import copy_project
from tests.support.fake_judge_server import FakeJudge, Script, parse_items
from tests.support.judging import make_records
from tests.reliability.conftest import record


N_GEN = 40


def _kedro(root: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kedro", "run", *args], cwd=root, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", **(env or {})})


def _finish(proc: subprocess.Popen, timeout: float = 600) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()[-3000:]


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, "the run finished before it could be killed: " + proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "never reached the kill point"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _stable(outputs: list[dict]) -> list[dict]:
    """Outputs without the timing fields (latency differs between runs)."""
    return [{**o, "generation": {k: v for k, v in o["generation"].items() if k != "latency_s"}} for o in outputs]


@pytest.mark.slow
def test_generation_killed_midway_resumes_without_redoing_finished_prompts(tmp_path, project_root):
    root = copy_project(tmp_path)
    # one prompt per batch and longish answers: slow enough (~10 s) to be killed part-way
    common = f"sampling.num_samples={N_GEN},generation.checkpoint_every=1,generation.decoding.max_new_tokens=48"

    def use_checkpoint(folder: Path) -> None:
        """The model (one prompt per batch) and the checkpoint folder, in the run's catalog."""
        (root / "conf/local/catalog.yml").write_text(
            "generation_model:\n  type: phase1b_kedro.resource_datasets.LLMDataset\n  backend: transformers\n"
            f"  model: bundled:smollm2-135m-instruct\n  options: {{model_dir: {project_root / 'data/06_models'}, "
            "batch_size: 1}\n"
            f"generation_checkpoint:\n  type: phase1b_kedro.resource_datasets.CheckpointDataset\n  dirpath: {folder}\n")

    _finish(_kedro(root, "--pipelines", "sampling", "--params", common))
    # uninterrupted reference
    use_checkpoint(root / "ref_ckpt")
    _finish(_kedro(root, "--pipelines", "generation", "--params", common))
    reference = _lines(root / "data/07_model_output/model_outputs.jsonl")
    (root / "data/07_model_output/model_outputs.jsonl").unlink()
    # killed run
    ckpt = root / "ckpt"
    use_checkpoint(ckpt)
    proc = _kedro(root, "--pipelines", "generation", "--params", common)

    def done() -> int:
        files = list(ckpt.glob("*.jsonl"))
        return len(files[0].read_text().splitlines()) if files else 0

    _kill_when(proc, lambda: done() >= 5)
    finished = done()
    assert 5 <= finished < N_GEN          # killed part-way
    assert not (root / "data/07_model_output/model_outputs.jsonl").exists()
    _finish(_kedro(root, "--pipelines", "generation", "--params", common))
    stats = json.loads((root / "data/07_model_output/generation_stats.json").read_text())
    assert stats["resumed_from_checkpoint"] == finished and stats["generated_this_run"] == N_GEN - finished
    assert _stable(_lines(root / "data/07_model_output/model_outputs.jsonl")) == _stable(reference)
    record("crash_resume", {"stage": "generation (kedro run, SIGKILL)", "items": N_GEN, "done_before_kill": finished,
                            "redone_after_restart": stats["generated_this_run"] - (N_GEN - finished),
                            "sent_after_restart": stats["generated_this_run"], "equal_to_uninterrupted": True})


@pytest.mark.slow
def test_judging_killed_midway_resends_nothing_already_judged(tmp_path, project_root, allow_local_http):
    root = copy_project(tmp_path)
    out_dir = root / "data/07_model_output"
    out_dir.mkdir(parents=True)
    records = make_records(12)
    (out_dir / "model_outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    env = {"HF_TOKEN": "t"}
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        env[var] = ""
    with FakeJudge(Script(latency=0.4)) as judge:
        # permutations=1: only the first pass, whose resume this is about (judge_70b also
        # re-judges a sample of batches in other orders, which would add sends after the kill)
        base = (f"judge_base_url={judge.base_url},judging.protocol.items_per_call=2,"
                "judging.protocol.agreement_sample=0,judging.protocol.canaries=0,judging.protocol.permutations=1")
        # one call at a time; the reference run keeps its verdicts in a cache of its own
        judge_catalog = (root / "conf/judge_70b/catalog.yml").read_text().replace("concurrency: 8", "concurrency: 1")
        (root / "conf/judge_70b/catalog.yml").write_text(judge_catalog)
        (root / "conf/judge_70b/catalog_ref.yml").write_text(
            "judge_cache:\n  type: phase1b_kedro.resource_datasets.VerdictCacheDataset\n"
            "  filepath: data/ref_cache.sqlite\n")
        _finish(_kedro(root, "--pipelines", "judging", "--env", "judge_70b", "--params", base, env=env))
        (root / "conf/judge_70b/catalog_ref.yml").unlink()
        reference = _lines(out_dir / "judge_scores.jsonl")
        cache = root / "data/07_model_output/judge_cache.sqlite"
        proc = _kedro(root, "--pipelines", "judging", "--env", "judge_70b", "--params", base, env=env)
        _kill_when(proc, lambda: VerdictCache.count(cache) >= 4)
        finished = VerdictCache.count(cache)
        before = len(judge.requests)
        _finish(_kedro(root, "--pipelines", "judging", "--env", "judge_70b", "--params", base, env=env))
        resent = [i["output"] for r in judge.requests[before:] for i in parse_items(r["body"]["messages"])]
    judged_before = {r["output"] for r in records} - set(resent)
    assert len(resent) == 12 - finished and len(set(resent)) == len(resent)
    assert len(judged_before) == finished
    final = _lines(out_dir / "judge_scores.jsonl")
    assert [(r["id"], r["score"]) for r in final] == [(r["id"], r["score"]) for r in reference]
    summary = json.loads((out_dir / "judge_summary.json").read_text())
    assert summary["llm"]["cache_hits"] == finished
    record("crash_resume", {"stage": "judging (kedro run --env judge_70b, SIGKILL)", "items": 12,
                            "done_before_kill": finished, "redone_after_restart": 0,
                            "sent_after_restart": len(resent), "equal_to_uninterrupted": True})
