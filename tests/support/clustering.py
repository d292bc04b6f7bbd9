"""Clustering test builders: failures in planted topics plus noise texts, with the truth."""

from __future__ import annotations

import random

TOPICS = {
    "fractions": ("math", "Add the fractions {a}/7 and {b}/9 and simplify the resulting fraction to lowest terms."),
    "sql": ("code", "Write an SQL query that joins the orders table with customers and counts orders per {w} region."),
    "poems": ("creative", "Write a rhyming poem about the {w} ocean waves crashing on a quiet beach at night."),
    "capitals": ("qa", "What is the capital city of the country {w}, and which river flows through that capital?"),
}
WORDS = ["northern", "southern", "eastern", "western", "central", "coastal", "mountain", "island", "desert",
         "arctic", "tropical", "urban", "rural", "remote", "windy", "sunny", "misty", "rocky", "green", "golden",
         "silver", "ancient", "modern", "little", "great"]
NOISE = ["Explain how photosynthesis converts light into chemical energy.",
         "Translate 'good morning' into Japanese and explain the politeness level.",
         "List three causes of the French Revolution.",
         "Describe how a bicycle gear system works.",
         "Why do cats purr?",
         "Summarise the plot of Hamlet in two sentences."]


def planted(per_topic: int = 20) -> tuple[list[dict], list[int]]:
    """``per_topic`` failures per topic and each noise text once; the topic index (noise: its own negative group)."""
    rng = random.Random(0)
    records, truth = [], []
    for t, (name, (cat, template)) in enumerate(TOPICS.items()):
        for i in range(per_topic):
            prompt = template.format(a=rng.randint(1, 50), b=rng.randint(1, 50), w=WORDS[i % len(WORDS)])
            records.append({"id": f"{name}-{i}", "category": cat, "prompt": prompt, "score": 2.0,
                            "judge": {"source": "similarity", "rationale": "cosine 0.1"}})
            truth.append(t)
    for i, text in enumerate(NOISE):
        records.append({"id": f"noise-{i}", "category": "other", "prompt": text, "score": 1.0, "judge": {}})
        truth.append(-1 - i)  # each noise text its own group
    return records, truth
