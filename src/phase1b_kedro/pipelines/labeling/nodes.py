"""Labeling nodes: keywords and names per cluster, then the data generation plan."""

from __future__ import annotations

import logging
from typing import Any

from phase1b_kedro.cache import ResponseCache
from phase1b_kedro.clustering import UNCLUSTERED, failure_text
from phase1b_kedro.labeler import (
    LabelingSettings,
    PlanSettings,
    contamination_check,
    ctfidf_keywords,
    fix_hint,
    heldout_split,
    llm_labels,
    offline_label,
    plan_counts,
    teacher_instruction,
)
from phase1b_kedro.llm import LLMClient

logger = logging.getLogger(__name__)

def _example(record: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(record["id"]), "category": record.get("category"), "prompt": record.get("prompt"),
            "reference": record.get("reference"), "output": record.get("output"), "score": record.get("score"),
            "judge_rationale": (record.get("judge") or {}).get("rationale")}


def label_patterns(failures: list[dict], clusters: dict[str, Any], judge_model: LLMClient,
                   label_cache: ResponseCache, params: dict[str, Any],
                   pattern_rates: dict[str, Any] | None = None) -> dict[str, Any]:
    """Name every cluster (and the unclustered group): keywords, label, description, examples.

    Args:
        failures: Failed records.
        clusters: Output of the clustering stage.
        judge_model: The model that writes labels when ``labeling.llm.enabled`` (never
            called otherwise).
        label_cache: Labels already written, by request (catalog ``label_cache``); closed here.
        params: The ``labeling`` parameter group (:class:`~phase1b_kedro.labeler.LabelingSettings`).
        pattern_rates: Failure rate, interval and lift per cluster (clustering stage).

    Returns:
        ``patterns``: one entry per group, ranked by the failures their lift explains
        (``excess_failures``; by size without rates), ``unclustered`` last, and counters.
    """
    settings = LabelingSettings.from_params(params)
    by_id = {str(r["id"]): r for r in failures}
    groups = list(clusters["clusters"]) + ([clusters["unclustered"]] if clusters["unclustered"]["size"] else [])
    docs = {g["cluster_id"]: [failure_text(by_id[i], settings.keywords.fields) for i in g["member_ids"]]
            for g in groups}
    keywords = ctfidf_keywords(docs, settings.keywords.top_k, settings.keywords.ngram_range)
    examples = {g["cluster_id"]: [_example(by_id[i]) for i in g["representative_ids"][:settings.examples_per_pattern]]
                for g in groups}
    labels = {g["cluster_id"]: offline_label(g, keywords[g["cluster_id"]],
                                             (examples[g["cluster_id"]] or [{}])[0].get("prompt") or "")
              for g in groups}
    with label_cache:
        counters = _model_labels(groups, keywords, examples, labels, judge_model, label_cache, settings)
    patterns = [_pattern_entry(n, g, labels[g["cluster_id"]], keywords[g["cluster_id"]], examples[g["cluster_id"]])
                for n, g in enumerate(groups, 1)]
    return {"n_failures": clusters["n_failures"], "n_patterns": sum(g["cluster_id"] != UNCLUSTERED for g in groups),
            "patterns": _ranked(patterns, (pattern_rates or {}).get("patterns", {})), "labeling": counters}


def _model_labels(groups: list[dict[str, Any]], keywords: dict[str, list[str]], examples: dict[str, list[dict]],
                  labels: dict[str, dict[str, str]], client: LLMClient, cache: ResponseCache,
                  settings: LabelingSettings) -> dict[str, Any]:
    """With ``labeling.llm.enabled``, replace the named clusters' offline labels (in ``labels``)
    by the model's; return the counters."""
    named = [g for g in groups if g["cluster_id"] != UNCLUSTERED]
    if not (settings.llm.enabled and named):
        return {"mode": "offline"}
    written, counters = llm_labels([(g, keywords[g["cluster_id"]], examples[g["cluster_id"]]) for g in named],
                                   client, settings.llm, cache)
    labels.update({g["cluster_id"]: lab for g, lab in zip(named, written, strict=True)})
    return {**counters, "mode": "llm", "model": client.describe().get("model")}


def _pattern_entry(n: int, group: dict[str, Any], label: dict[str, str], keywords: list[str],
                   examples: list[dict]) -> dict[str, Any]:
    """One pattern of ``patterns``: its label, keywords, size, categories, modes and examples."""
    cid = group["cluster_id"]
    if cid == UNCLUSTERED:
        label = {**label, "label": "Unclustered failures", "source": "fixed"}
    return {
        "pattern_id": f"P{n:02d}" if cid != UNCLUSTERED else UNCLUSTERED,
        "cluster_id": cid,
        "label": label["label"],
        "description": label["description"],
        "what_model_gets_wrong": label["what_model_gets_wrong"],
        "label_source": label["source"],
        **({"fallback_reason": label["fallback_reason"]} if "fallback_reason" in label else {}),
        "keywords": keywords,
        "size": group["size"], "coverage": group["coverage"], "categories": group["categories"],
        "failure_modes": group.get("failure_modes", {}), "fix": fix_hint(group.get("failure_modes", {})),
        "mean_score": group["mean_score"], "member_ids": group["member_ids"], "examples": examples,
    }


def _ranked(patterns: list[dict[str, Any]], rates: dict[str, Any]) -> list[dict[str, Any]]:
    """Patterns with their rates, named ones ordered by excess failures (then size) and
    numbered P01, P02, ... in that order; ``unclustered`` stays last."""
    with_rates = [{**p, **{k: v for k, v in rates.get(p["cluster_id"], {}).items() if k != "pass_ids"}}
                  for p in patterns]
    named = [p for p in with_rates if p["cluster_id"] != UNCLUSTERED]
    named.sort(key=lambda p: (-(p.get("excess_failures") if p.get("excess_failures") is not None else p["size"]),
                              -p["size"], p["cluster_id"]))
    return [{**p, "pattern_id": f"P{n:02d}"} for n, p in enumerate(named, 1)] + \
        [p for p in with_rates if p["cluster_id"] == UNCLUSTERED]


def plan_data_generation(patterns: dict[str, Any], failures: list[dict], params: dict[str, Any],
                         judged_results: list[dict] | None = None,
                         pattern_rates: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[dict]]:
    """How many targeted examples to generate per pattern, with seeds and a teacher
    instruction, and a held-out evaluation set per pattern that the seeds never touch.

    Args:
        patterns: Output of :func:`label_patterns`.
        failures: Failed records (seed examples come from here).
        params: The ``labeling`` group (``plan``: :class:`~phase1b_kedro.labeler.PlanSettings`).
        judged_results: Every judged record (the held-out passes come from here).
        pattern_rates: Passing records assigned to each pattern (clustering stage).

    Returns:
        ``data_generation_plan`` (per-pattern counts summing to the budget, the entries, the
        contamination check) and ``pattern_eval_set`` (held-out records with their pattern).

    Raises:
        ValueError: If the counts do not add up to the budget.
    """
    settings = LabelingSettings.from_params(params)
    plan = settings.plan
    include = [p for p in patterns["patterns"] if p["pattern_id"] != UNCLUSTERED or plan.include_unclustered]
    counts = plan_counts({p["pattern_id"]: p["size"] for p in include}, plan.total_examples, plan.min_per_pattern)
    by_id = {str(r["id"]): r for r in [*(judged_results or []), *failures]}
    heldout = heldout_split(patterns["patterns"], (pattern_rates or {}).get("patterns", {}), plan.heldout_share,
                            plan.seed)
    entries = [_plan_entry(p, counts[p["pattern_id"]], set(heldout.get(p["pattern_id"], [])), by_id, plan)
               for p in include]
    allocated = sum(e["examples_to_generate"] for e in entries)
    if entries and allocated != plan.total_examples:
        raise ValueError(f"plan allocates {allocated} examples, budget is {plan.total_examples}")
    eval_set = [{**{k: by_id[i].get(k) for k in ("id", "category", "messages", "prompt", "reference", "source", "meta")},
                 "pattern_id": pid, "failed_in_this_run": by_id[i].get("passed") is False}
                for pid, ids in heldout.items() for i in ids if i in by_id]
    check = contamination_check(entries, eval_set, plan.contamination_threshold, settings.embedding_model)
    return ({"total_examples": plan.total_examples, "allocated": allocated, "min_per_pattern": plan.min_per_pattern,
             "n_failures": patterns["n_failures"], "heldout_records": len(eval_set), "contamination_check": check,
             "patterns": entries}, eval_set)


def _plan_entry(p: dict[str, Any], count: int, held: set[str], by_id: dict[str, dict],
                plan: PlanSettings) -> dict[str, Any]:
    """One pattern's plan: counts, rates, seeds (never held-out records) and the teacher instruction."""
    usable = [i for i in [*(e["id"] for e in p["examples"]), *p["member_ids"]] if i not in held]
    seeds = [_example(by_id[i]) for i in dict.fromkeys(usable)][:max(3, min(5, plan.seed_examples))]
    return {
        "pattern_id": p["pattern_id"], "label": p["label"], "description": p["description"],
        "what_model_gets_wrong": p["what_model_gets_wrong"], "failures": p["size"], "share": p["coverage"],
        "categories": p["categories"], "failure_modes": p.get("failure_modes", {}), "fix": p.get("fix"),
        **{k: p.get(k) for k in ("failure_rate", "failure_rate_ci95", "passes", "base_rate", "lift",
                                 "excess_failures")},
        "keywords": p["keywords"], "examples_to_generate": count, "heldout_ids": sorted(held),
        "seed_examples": [{k: s[k] for k in ("id", "prompt", "reference", "output")} for s in seeds],
        "teacher_instruction": teacher_instruction(p, count, seeds),
    }


def render_plan_markdown(data_generation_plan: dict[str, Any]) -> str:
    """A person-readable version of the plan.

    Args:
        data_generation_plan: Output of :func:`plan_data_generation`.

    Returns:
        Markdown text.
    """
    plan = data_generation_plan
    lines = ["# Data generation plan", "",
             f"{plan['n_failures']} failures in {len(plan['patterns'])} patterns; "
             f"{plan['allocated']} new training examples to generate (budget {plan['total_examples']}, "
             f"at least {plan['min_per_pattern']} per pattern).", "",
             f"{plan.get('heldout_records', 0)} records are held out in `pattern_eval_set.jsonl` (run the next model on "
             f"it to measure exactly these weaknesses); contamination check: "
             f"{_contamination(plan.get('contamination_check') or {})}.", "",
             "| # | pattern | failures | share | failure rate (95% CI) | lift | examples to generate |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for e in plan["patterns"]:
        lines.append(f"| {e['pattern_id']} | {_md(e['label'])} | {e['failures']} | {e['share']:.0%} | "
                     f"{_rate(e)} | {e['lift'] if e.get('lift') is not None else '-'} | {e['examples_to_generate']} |")
    for e in plan["patterns"]:
        lines += ["", f"## {e['pattern_id']}: {_md(e['label'])}", "", f"**What it is.** {_md(e['description'])}", "",
                  f"**What the model gets wrong.** {_md(e['what_model_gets_wrong'])}", "",
                  *([f"**Fix first.** {_md(e['fix'])}", ""] if e.get("fix") else []),
                  f"**Generate {e['examples_to_generate']} examples.** Keywords: {', '.join(e['keywords']) or '-'}. "
                  f"Held out for evaluation (never seeds): {len(e.get('heldout_ids', []))} records.",
                  "", "Seed examples:", ""]
        for s in e["seed_examples"]:
            lines += [f"- **Prompt:** {_md(_short(s['prompt']))}", f"  - **Reference:** {_md(_short(s['reference']))}",
                      f"  - **Model output:** {_md(_short(s['output']))}"]
        lines += ["", "Teacher instruction:", "", "```text", e["teacher_instruction"].replace("```", "'''"), "```"]
    return "\n".join(lines) + "\n"


def _contamination(check: dict[str, Any]) -> str:
    if not check.get("pairs_checked"):
        return "nothing to check"
    return (f"{len(check['flagged'])} of {check['pairs_checked']} seed/instruction vs held-out pairs at cosine >= "
            f"{check['threshold']}")


def _rate(entry: dict[str, Any]) -> str:
    ci = entry.get("failure_rate_ci95")
    if entry.get("failure_rate") is None:
        return "-"
    return f"{entry['failure_rate']:.0%}" + (f" ({ci[0]:.0%}-{ci[1]:.0%})" if ci else "")


def _short(text: str | None, limit: int = 300) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
