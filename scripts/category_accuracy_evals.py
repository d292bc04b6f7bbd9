"""Category accuracy on sources the rules were not written for: OpenAI-evals datasets.

The ``evals`` package (PyPI, the OpenAI evals registry) ships its datasets as JSONL under
``evals/registry/data``. This script takes the first ``--per-dataset`` records of each dataset
in :data:`DATASETS` (none of them is among the bundled sources the rules were written for),
gives each its true category (assigned by hand per dataset, from the dataset's task, before
any measurement), and measures the inferred categories as ``scripts/category_accuracy.py``
does, in the same three layouts, rules off and on. Nothing is downloaded here and no data is
committed: fetch the package yourself, e.g.
``pip download evals --no-deps -d /tmp/evals && unzip -q /tmp/evals/evals-*.whl -d /tmp/evals/x``.

Usage: python scripts/category_accuracy_evals.py /tmp/evals/x/evals/registry/data [--set classifier=false]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from category_accuracy import LAYOUTS, accuracy, construction  # noqa: E402

from phase1b_kedro.sampling import scan_input  # noqa: E402

#: ``(dataset file under the registry's data folder, category)``: one file per dataset.
DATASETS: tuple[tuple[str, str], ...] = (
    ("css-selectors/explain.jsonl", "code"),
    ("json_patch_object/samples.jsonl", "code"),
    ("syntax-check/samples.jsonl", "code"),
    ("csharp-linq/questions.jsonl", "code"),
    ("count_intersections_polynomial/samples.jsonl", "math"),
    ("linear_equations/samples.jsonl", "math"),
    ("math-derivatives/questions.jsonl", "math"),
    ("chinese-remainder-theorem/samples.jsonl", "math"),
    ("logic-riddles/samples.jsonl", "reasoning"),
    ("theory_of_mind/tomi/test.jsonl", "reasoning"),
    ("seating_arrangements/samples.jsonl", "reasoning"),
    ("polish_rhymes_generation/samples.jsonl", "creative"),
    ("cissp-study-questions/samples.jsonl", "qa"),
    ("nutrition/facts.jsonl", "qa"),
    ("atpl_exams/samples.jsonl", "qa"),
    ("banking77/samples.jsonl", "other"),
    ("sarcasm/samples.jsonl", "other"),
    ("irony/samples.jsonl", "other"),
)


def rows_and_truth(data: Path, per_dataset: int) -> tuple[list[dict], dict[str, str]]:
    """The first ``per_dataset`` records of each dataset, with ``source`` set; source -> category."""
    rows, truth = [], {}
    for path, category in DATASETS:
        source = "evals/" + path.split("/")[0]
        truth[source] = category
        with (data / path).open(encoding="utf-8") as fh:
            for _, line in zip(range(per_dataset), fh, strict=False):
                rows.append({**json.loads(line), "source": source})
    return rows, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the evals package's registry/data folder")
    parser.add_argument("--per-dataset", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a category_inference setting, e.g. classifier=false (YAML value)")
    args = parser.parse_args()
    rows, truth = rows_and_truth(args.data, args.per_dataset)
    base = yaml.safe_load((ROOT / "conf/base/parameters_sampling.yml").read_text())["sampling"]
    inference = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    for layout in LAYOUTS:
        for rules in (False, True):
            params = {**base, "category_inference": {**base["category_inference"], **inference}}
            if not rules:
                params["category_rules"] = {}
            scan = scan_input(construction(layout, args.seed, rows, truth), params)
            print(json.dumps({**accuracy(scan, truth, layout, rules), "records": len(scan.index)}))


if __name__ == "__main__":
    main()
