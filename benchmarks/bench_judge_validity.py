"""How often the default judge is right, on labeled pairs built from the bundled data.

For every bundled record (normalised the way sampling does it) four outputs with a known
label are judged by the configured judge (``conf/base/parameters_judging.yml`` unless
``--conf``), and the failure threshold is applied:

- its own reference, and the reference restated (a lead-in, a marker such as
  ``The answer is``, ``\\boxed{}``, ``ANSWER:``, markdown emphasis): must **pass**;
- another record's reference from the same source whose answer differs, bare and restated:
  must **fail**. For code, the canonical solution must pass (bare, as HumanEval completes
  it, and as a full function in a fenced block) and another task's canonical solution fail.

Printed: accuracy, Cohen's kappa, the rate of wrong answers that pass (the costly error:
a failure the analysis never sees) and of right answers that fail, overall, per rule and per
source. The baseline in the same run is the similarity judge alone on the same pairs.

Usage: ``python benchmarks/bench_judge_validity.py [--limit N] [--seed S]``
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import yaml
from sklearn.metrics import cohen_kappa_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from phase1b_kedro.judges.strategies import score_records  # noqa: E402
from phase1b_kedro.judges.verifiable import reference_answer  # noqa: E402
from phase1b_kedro.records import FieldConfig, Normalised, normalise  # noqa: E402

RESTATE = ["The answer is {a}.", "After working through it, the final answer is **{a}**.", "ANSWER: {a}",
           "Let me think step by step.\n\nSo the answer is: {a}", "Final answer: {a}"]
MATH_RESTATE = ["The answer is $\\boxed{{{a}}}$.", "We compute it carefully.\n\n#### {a}", "The answer is {a}."]


def load_records(path: Path) -> list[Normalised]:
    """The bundled file normalised as sampling does it, exact duplicates dropped."""
    cfg, seen, out = FieldConfig(), set(), []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = normalise(json.loads(line), cfg)
        if isinstance(rec, Normalised) and rec.key not in seen:
            seen.add(rec.key)
            out.append(rec)
    return out


def restated(answer_text: str, reference: str, rng: random.Random) -> str:
    """The reference said another way: prose or markers around the same answer."""
    if len(reference.split()) > 30:  # long free text: a lead-in, the text unchanged
        return "Sure, here is my answer.\n\n" + reference
    template = rng.choice(MATH_RESTATE if any(c.isdigit() for c in answer_text) else RESTATE)
    return template.format(a=answer_text)


def code_outputs(rec: Normalised, other: Normalised) -> list[tuple[str, bool, str]]:
    """(output, must_pass, variant) for a HumanEval record: completion and fenced full function."""
    full = f"Here is the implementation:\n```python\n{rec.prompt}{rec.reference}```\n"
    return [(rec.reference, True, "reference"), (full, True, "restated"),
            (other.reference, False, "other"), (f"```python\n{rec.prompt}{other.reference}```", False, "other restated")]


def build_pairs(records: list[Normalised], seed: int) -> list[dict]:
    """Four labeled outputs per record (see the module docstring)."""
    rng = random.Random(seed)
    by_source: dict[str, list[Normalised]] = defaultdict(list)
    for rec in records:
        by_source[rec.source or "?"].append(rec)
    pairs = []
    for rec in records:
        mine = reference_answer(rec.reference).strip().lower()
        others = [o for o in by_source[rec.source or "?"] if reference_answer(o.reference).strip().lower() != mine]
        if not others:
            continue
        other = rng.choice(others)
        if rec.meta.get("tests"):
            outputs = code_outputs(rec, other)
        else:
            theirs = reference_answer(other.reference)
            outputs = [(rec.reference, True, "reference"),
                       (restated(reference_answer(rec.reference), rec.reference, rng), True, "restated"),
                       (other.reference, False, "other"), (restated(theirs, other.reference, rng), False, "other restated")]
        for output, must_pass, variant in outputs:
            pairs.append({"id": f"{rec.id}:{variant}", "prompt": rec.prompt, "messages": rec.messages,
                          "reference": rec.reference, "meta": rec.meta, "source": rec.source, "output": output,
                          "generation": {"status": "ok"}, "category": "other", "label": must_pass, "variant": variant})
    return pairs


def report(name: str, pairs: list[dict], passed: list[bool | None], rules: list[str]) -> None:
    """Accuracy, kappa, wrong-pass and wrong-fail rates overall, per rule and per source."""
    def figures(idx: list[int]) -> str:
        judged = [i for i in idx if passed[i] is not None]
        neg = [i for i in judged if not pairs[i]["label"]]
        pos = [i for i in judged if pairs[i]["label"]]
        acc = sum(passed[i] == pairs[i]["label"] for i in judged) / max(1, len(judged))
        labels, preds = [pairs[i]["label"] for i in judged], [passed[i] for i in judged]
        kappa = cohen_kappa_score(labels, preds) if len(set(labels) | set(preds)) > 1 else float("nan")
        wrong_pass = sum(passed[i] for i in neg) / max(1, len(neg))
        wrong_fail = sum(not passed[i] for i in pos) / max(1, len(pos))
        return (f"n={len(idx):5d} unjudged={len(idx) - len(judged):3d} accuracy={acc:.3f} kappa={kappa:.3f} "
                f"wrong_pass={wrong_pass:.3f} wrong_fail={wrong_fail:.3f}")

    print(f"\n== {name}: {figures(list(range(len(pairs))))}")
    for title, key in (("rule", lambda i: rules[i]), ("source", lambda i: pairs[i]["source"])):
        groups: dict[str, list[int]] = defaultdict(list)
        for i in range(len(pairs)):
            groups[str(key(i))].append(i)
        print(f"   per {title}:")
        for group, idx in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            print(f"     {group:48s} {figures(idx)}")


def judge(pairs: list[dict], params: dict, threshold: float) -> tuple[list[bool | None], list[str], float]:
    t0 = time.perf_counter()
    verdicts, _ = score_records(pairs, params)
    passed = [None if v.score is None else v.score >= threshold for v in verdicts]
    rules = [f"{v.source}/{v.rule}" for v in verdicts]
    return passed, rules, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data/01_raw/prompts.jsonl"))
    parser.add_argument("--conf", default=str(ROOT / "conf/base/parameters_judging.yml"))
    parser.add_argument("--limit", type=int, default=0, help="records to use (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show-errors", type=int, default=15)
    args = parser.parse_args()
    params = yaml.safe_load(Path(args.conf).read_text())["judging"]
    records = load_records(Path(args.data))
    if args.limit:
        records = random.Random(args.seed).sample(records, min(args.limit, len(records)))
    pairs = build_pairs(records, args.seed)
    threshold = float(params["failure_threshold"])
    print(f"{len(records)} records -> {len(pairs)} labeled outputs "
          f"({sum(p['label'] for p in pairs)} must pass, {sum(not p['label'] for p in pairs)} must fail); "
          f"threshold {threshold}")

    base_passed, base_rules, base_s = judge(pairs, {**params, "strategy": "similarity"}, threshold)
    passed, rules, judge_s = judge(pairs, params, threshold)
    report(f"baseline: similarity alone ({base_s:.1f} s)", pairs, base_passed, base_rules)
    report(f"configured judge: {params['strategy']} + {params.get('fallback')} ({judge_s:.1f} s)", pairs, passed, rules)
    wrong = [i for i in range(len(pairs)) if passed[i] is not None and passed[i] != pairs[i]["label"]]
    print(f"\nfirst {min(args.show_errors, len(wrong))} of {len(wrong)} wrong verdicts:")
    for i in wrong[: args.show_errors]:
        p = pairs[i]
        print(f"  [{rules[i]}] {p['source']} {p['variant']}: must {'pass' if p['label'] else 'fail'}; "
              f"reference {p['reference'][:60]!r} output {p['output'][:60]!r}")


if __name__ == "__main__":
    main()
