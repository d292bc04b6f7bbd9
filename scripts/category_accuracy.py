"""How often inferred categories are right on files that mix sources, built from the bundled file.

The bundled file's 19 sources each have one known category (``EXPECTED_CATEGORY``). Their
own category fields are removed, then some records get the true category back as a
``category`` field, about a third of the file, in one of three layouts:

- ``records``: a random share of every source's records is labelled (a third overall);
- ``sources``: whole sources are labelled (a third of the records), the others not at all;
- ``mixed``: 5 of the 19 sources unlabelled, the others labelled on ~45% of their records.

Accuracy is measured on the records whose category was inferred (not taken from the field),
with the rule classifier switched off (``rules: off``: the rules were written for these very
sources, so with them the file is not "unfamiliar") and on (``rules: on``). The estimate that
``test_dataset_stats`` reports for the classifier (cross-validated with whole sources held
out) is printed next to the accuracy it actually reached on unlabelled sources.

Usage: python scripts/category_accuracy.py [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from build_bundled_dataset import EXPECTED_CATEGORY  # noqa: E402

from phase1b_kedro.sampling import scan_input  # noqa: E402

LAYOUTS = ("records", "sources", "mixed")


def construction(layout: str, seed: int = 0, rows: list[dict] | None = None,
                 truth: dict[str, str] | None = None) -> bytes:
    """``rows`` (default: the bundled file's) with category fields as ``layout`` says (JSONL bytes).

    ``truth`` maps each row's ``source`` to its true category (default: the bundled sources').
    """
    rng = random.Random(seed)
    if rows is None:
        rows = [json.loads(line) for line in (ROOT / "data/01_raw/prompts.jsonl").open(encoding="utf-8")]
    truth = truth or EXPECTED_CATEGORY
    sources = sorted(truth)
    rng.shuffle(sources)
    if layout == "records":
        share = dict.fromkeys(sources, 1 / 3)
    elif layout == "sources":
        share, labelled = {}, 0
        for src in sources:  # whole sources until a third of the records carry a category
            size = sum(r["source"] == src for r in rows)
            share[src] = 1.0 if labelled + size <= len(rows) / 3 else 0.0
            labelled += size * share[src]
    elif layout == "mixed":
        share = {src: (0.0 if i < 5 else 0.45) for i, src in enumerate(sources)}
    else:
        raise ValueError(f"layout must be one of {LAYOUTS}")
    out = []
    for row in rows:
        row.pop("category", None)
        if rng.random() < share[row["source"]]:
            row["category"] = truth[row["source"]]
        out.append(json.dumps(row, ensure_ascii=False))
    return ("\n".join(out) + "\n").encode()


def measure(layout: str, rules: bool, seed: int = 0, inference: dict | None = None) -> dict:
    """Accuracy of the inferred categories, per method, and the classifiers' estimates.

    ``inference`` overrides ``category_inference`` settings (e.g. ``{"classifier": False}``).
    """
    params = yaml.safe_load((ROOT / "conf/base/parameters_sampling.yml").read_text())["sampling"]
    if not rules:
        params["category_rules"] = {}
    params["category_inference"] = {**params["category_inference"], **(inference or {})}
    return accuracy(scan_input(construction(layout, seed), params), EXPECTED_CATEGORY, layout, rules)


def accuracy(scan: Any, truth_by_source: dict[str, str], layout: str, rules: bool) -> dict:
    """The figures of one scan against each source's true category."""
    index = scan.index
    truth = index["source"].astype(str).map(truth_by_source)
    right = truth == index["category"].astype(str)
    inferred = index["category_method"] != "field"
    labelled_sources = set(index.loc[~inferred, "source"].astype(str))
    unseen = inferred & ~index["source"].astype(str).isin(labelled_sources)
    estimate = scan.categories["estimated_accuracy"]
    return {
        "layout": layout,
        "rules": "on" if rules else "off",
        "labelled_share": round(1 - inferred.mean(), 3),
        "inferred": int(inferred.sum()),
        "accuracy": round(float(right[inferred].mean()), 4),
        "by_method": {m: [int(right[index["category_method"] == m].sum()), int((index["category_method"] == m).sum())]
                      for m in ("classifier", "source", "rules")},
        "unlabelled_sources_accuracy": round(float(right[unseen].mean()), 4) if unseen.any() else None,
        "classifier_estimate_held_out_sources": estimate.get("classifier", {}).get("accuracy"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a category_inference setting, e.g. classifier=false (YAML value)")
    args = parser.parse_args()
    inference = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    for layout in LAYOUTS:
        for rules in (False, True):
            print(json.dumps(measure(layout, rules, args.seed, inference)))


if __name__ == "__main__":
    main()
