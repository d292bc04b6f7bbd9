"""Charts (plotly figures, shown by kedro-viz) and the self-contained HTML report.

All text that comes from data (prompts, outputs, labels) is untrusted: the report is
rendered by Jinja2 with autoescaping, hover texts are HTML-escaped before plotly sees them,
and plotly's own JSON embedding escapes ``</script>``.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from phase1b_kedro.contract import verdict_ok
from phase1b_kedro.records import CATEGORIES

SOURCES = ("verifiable", "similarity", "llm", "unjudged")
_COLOURS = {"verifiable": "#2ca02c", "similarity": "#1f77b4", "llm": "#9467bd", "unjudged": "#7f7f7f"}


def _ordered(categories: Sequence[str]) -> list[str]:
    return [c for c in CATEGORIES if c in categories] + sorted(set(categories) - set(CATEGORIES))


def _layout(fig: go.Figure, title: str, **kwargs: Any) -> go.Figure:
    kwargs.setdefault("margin", {"l": 60, "r": 20, "t": 60, "b": 50})
    fig.update_layout(title=title, template="plotly_white", height=kwargs.pop("height", 420), **kwargs)
    return fig


def failure_rate_figure(judge_summary: Mapping[str, Any]) -> go.Figure:
    """Failure rate per category with Wilson 95% error bars (asymmetric)."""
    per_cat = judge_summary.get("per_category", {})
    cats = [c for c in _ordered(list(per_cat)) if per_cat[c]["failure_rate"] is not None]
    rates = [per_cat[c]["failure_rate"] for c in cats]
    low = [r - per_cat[c]["failure_rate_ci95"][0] for c, r in zip(cats, rates, strict=True)]
    high = [per_cat[c]["failure_rate_ci95"][1] - r for c, r in zip(cats, rates, strict=True)]
    labels = [f"{per_cat[c]['failed']} of {per_cat[c]['passed'] + per_cat[c]['failed']} failed" for c in cats]
    fig = go.Figure(go.Bar(x=cats, y=rates, error_y={"type": "data", "symmetric": False, "array": high,
                                                      "arrayminus": low}, hovertext=labels, marker_color="#d62728"))
    threshold = judge_summary.get("failure_threshold")
    return _layout(fig, f"Failure rate by category (score < {threshold:g}), Wilson 95% intervals",
                   yaxis={"title": "failure rate", "range": [0, 1], "tickformat": ".0%"})


def score_distribution_figure(judged_results: Sequence[Mapping[str, Any]], threshold: float) -> go.Figure:
    """Scores per category (box with every point), with the threshold line."""
    by_cat: dict[str, list[float]] = defaultdict(list)
    for r in judged_results:
        if r.get("score") is not None:
            by_cat[r.get("category", "other")].append(float(r["score"]))
    fig = go.Figure([go.Box(y=by_cat[c], name=c, boxpoints="all", jitter=0.4, pointpos=0, marker_size=4)
                     for c in _ordered(list(by_cat))])
    fig.add_hline(y=threshold, line_dash="dash", line_color="#d62728", annotation_text=f"threshold {threshold:g}")
    return _layout(fig, "Score distribution by category", showlegend=False,
                   yaxis={"title": "score (0-10)", "range": [-0.5, 10.5]})


def verdict_sources_figure(judged_results: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Where each verdict came from, per category (stacked)."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for r in judged_results:
        judge = r.get("judge") or {}
        source = judge.get("source", "unjudged") if verdict_ok(r) else "unjudged"
        counts[source][r.get("category", "other")] += 1
    cats = _ordered(list({c for cnt in counts.values() for c in cnt}))
    fig = go.Figure([go.Bar(name=s, x=cats, y=[counts[s][c] for c in cats], marker_color=_COLOURS[s])
                     for s in SOURCES if counts.get(s)])
    return _layout(fig, "Verdict sources by category", barmode="stack", yaxis={"title": "records"})


def _hover(text: str | None, limit: int = 160) -> str:
    text = " ".join((text or "").split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    # <, > and & only: plotly decodes &lt; &gt; &amp; for display but shows &quot; and &#x27;
    # literally, so escaping quotes made labels read `&quot;` (escaped twice, in effect).
    return html.escape(text, quote=False)


def cluster_map_figure(clusters: Mapping[str, Any], patterns: Mapping[str, Any],
                       failures: Sequence[Mapping[str, Any]]) -> go.Figure:
    """The 2-D map of failures, coloured by pattern, with the prompt in the hover text."""
    label_of = {p["cluster_id"]: f"{p['pattern_id']}: {p['label']}" for p in patterns.get("patterns", [])}
    prompt_of = {str(r["id"]): r.get("prompt") for r in failures}
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for point in clusters.get("points", []):
        groups[point["cluster_id"]].append(point)
    order = [p["cluster_id"] for p in patterns.get("patterns", []) if p["cluster_id"] in groups]
    order += sorted(set(groups) - set(order))
    fig = go.Figure()
    for cid in order:
        pts = groups[cid]
        fig.add_trace(go.Scattergl(
            x=[p["x"] for p in pts], y=[p["y"] for p in pts], mode="markers", name=_hover(label_of.get(cid, cid), 60),
            marker={"size": 7, "opacity": 0.8, **({"color": "#bbbbbb"} if cid == "unclustered" else {})},
            hovertext=[f"{_hover(p['id'], 40)} ({p['category']}, score {p['score']})<br>{_hover(prompt_of.get(p['id']))}"
                       for p in pts],
            hoverinfo="text"))
    return _layout(fig, "Failure map (2-D projection of the embeddings), coloured by pattern", height=560,
                   xaxis={"title": "component 1"}, yaxis={"title": "component 2"}, legend={"font": {"size": 10}})


def pattern_sizes_figure(patterns: Mapping[str, Any]) -> go.Figure:
    """Failures per pattern (largest first)."""
    items = patterns.get("patterns", [])
    names = [_hover(f"{p['pattern_id']}: {p['label']}", 70) for p in items][::-1]
    sizes = [p["size"] for p in items][::-1]
    shares = [f"{p['coverage']:.0%} of failures" for p in items][::-1]
    fig = go.Figure(go.Bar(x=sizes, y=names, orientation="h", hovertext=shares, marker_color="#ff7f0e"))
    return _layout(fig, "Failures per pattern", height=max(300, 28 * len(items) + 120),
                   xaxis={"title": "failures"}, margin={"l": 320, "r": 20, "t": 60, "b": 50})


_TRANSITION_COLOURS = {"fixed": "#2ca02c", "broken": "#d62728", "still_failing": "#ff7f0e", "still_passing": "#1f77b4",
                       "only_baseline": "#bbbbbb", "only_current": "#888888", "unjudged": "#dddddd"}


def run_comparison_figure(run_comparison: Mapping[str, Any]) -> go.Figure:
    """Records per transition (fixed, broken, ...) for each category, McNemar p in the axis label."""
    fig = go.Figure()
    groups = run_comparison.get("per_category") or {}
    names = [f"{_hover(c, 30)} (p={row['mcnemar_p']:.3g})" for c, row in groups.items()]
    for t, colour in _TRANSITION_COLOURS.items():
        values = [row.get(t, 0) for row in groups.values()]
        if any(values):
            fig.add_trace(go.Bar(name=t.replace("_", " "), x=names, y=values, marker_color=colour))
    title = "Before/after: transitions per category (exact McNemar p)" if run_comparison.get("baseline_given") \
        else "Before/after: no baseline run given"
    return _layout(fig, title, barmode="stack", yaxis={"title": "records"})


def chart_html(fig: go.Figure) -> str:
    """A figure as an HTML fragment for the report (plotly's JS is inlined once, by the page)."""
    import plotly.io as pio

    return pio.to_html(fig, include_plotlyjs=False, full_html=False, config={"displaylogo": False})


def render_report(**context: Any) -> str:
    """``templates/report.html.j2`` rendered with ``context`` and plotly's JS inlined.

    Every text from the data is escaped (Jinja2 autoescaping); the page needs no server and
    no internet.
    """
    from importlib.resources import files

    from jinja2 import Environment, select_autoescape
    from plotly.offline import get_plotlyjs

    template = Environment(autoescape=select_autoescape(default=True, default_for_string=True)).from_string(
        files("phase1b_kedro").joinpath("templates/report.html.j2").read_text(encoding="utf-8"))
    return template.render(**context, plotly_js=get_plotlyjs().replace("</script", "<\\/script"))
