"""Print the Markdown tables of docs/RELIABILITY.md from tests/artifacts/reliability.json.

The reliability tests (tests/reliability/) record what they measured; run them, then this:
    python -m pytest tests/reliability && python scripts/reliability_tables.py
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def table(rows: list[dict], columns: list[str]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        out.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return "\n".join(out)


def main() -> None:
    data = json.loads((ROOT / "tests/artifacts/reliability.json").read_text())
    sections = {
        "judge_faults": ["case", "items_in", "judged", "unjudged", "requests", "calls", "retries", "rejudged"],
        "crash_resume": ["stage", "items", "done_before_kill", "sent_after_restart", "redone_after_restart",
                         "equal_to_uninterrupted"],
        "bad_inputs": ["file", "lines", "kept", "quarantined", "error"],
        "injection": ["case", "items_in", "compromised_calls", "canary_accuracy", "neighbours_honest",
                      "injected_item_score", "items_seen_by_judge", "verdicts_changed", "unknown_ids_ignored"],
        "secrets": ["files_scanned", "log_bytes_scanned", "requests_with_token", "leaks"],
    }
    for name, columns in sections.items():
        rows = sorted(data.get(name, []), key=lambda r: str(r.get(columns[0])))
        used = [c for c in columns if any(c in r for r in rows)]
        print(f"### {name}\n\n{table(rows, used)}\n")


if __name__ == "__main__":
    main()
