"""Report sections of task runs: one run, a comparison of modes, a self-consistency run. Every
text that comes from a run is HTML-escaped (by `table` or `escape`)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from selfcorrect.report.fmt import ci, figures, pct, read_json, table
from selfcorrect.report.sections import _provenance, _turns_html, _wall
from selfcorrect.runs import read_records

ORACLE_NOTE = (
    "<p class='note'>Oracle-stopped rows use the ground truth to decide when to stop (Huang et "
    "al. 2024): their gains are an upper bound that no deployable method reaches. Intrinsic "
    "rows use no ground truth. oracle-check lets the model read the oracle's verdict.</p>"
)


def _outcome(record: dict[str, Any]) -> str:
    first, last = record["rounds"][0]["correct"], record["rounds"][-1]["correct"]
    if not first and last:
        return "fixed (wrong -> right)"
    if first and not last:
        return "broken (right -> wrong)"
    return "unchanged"


def _transcripts(records: list[dict[str, Any]], per_outcome: int = 3) -> str:
    groups: dict[str, list[dict[str, Any]]] = {
        "fixed (wrong -> right)": [],
        "broken (right -> wrong)": [],
        "unchanged": [],
    }
    for r in records:
        groups[_outcome(r)].append(r)
    out = []
    for name, items in groups.items():
        out.append(f"<h3>{escape(name)}: {len(items)} question(s)</h3>")
        for r in items[:per_outcome]:
            said = " → ".join(
                "unscored" if x["extracted"] is None else str(x["extracted"]) for x in r["rounds"]
            )
            summary = f"{r['id']} · gold {r['answer']} · read {said}"
            out.append(f"<details><summary>{escape(summary)}</summary>{_turns_html(r)}</details>")
    return "".join(out)


def task_section(folder: Path) -> str:
    """One task run: accuracy per round, flips, checks, tokens, figures, transcripts."""
    m = read_json(folder / "metrics.json")
    if not m:
        return "<p class='note'>No metrics.json yet: the run has not finished.</p>"
    tokens = {t["round"]: t for t in m["tokens_per_question"]}
    rows = [
        (
            r["round"],
            r["n"],
            pct(r["accuracy"]) + ci(r["accuracy_ci95"]),
            pct(r["unscored_rate"]),
            f"{tokens[r['round']]['generated_mean']:.1f}",
            f"{tokens[r['round']]['cumulative_mean']:.1f}",
        )
        for r in m["per_round"]
    ]
    flips = [
        (f["round"], f["wrong_to_right"], f["right_to_wrong"], f["stayed_right"], f["stayed_wrong"])
        for f in m["flips"]
    ]
    checks = [
        (c["round"], c["n"], c["n_unknown"], pct(c["accuracy"]) + ci(c["ci95"]))
        for c in m["check_accuracy"]
    ]
    problems = m.get("data_problems", [])
    t = m.get("tokens", {})
    return "".join(
        [
            f"<p>{m['n']} questions, scorer {escape(str(m.get('scorer')))}, check "
            f"{escape(str(m.get('check')))}, stop: {escape(str(m.get('stop')))}, {m['rounds']} "
            f"round(s); stopped early: {m['stopped_early']}; failed: {m.get('failed', 0)}; "
            f"{t.get('completion_tokens', 0):,} tokens generated, {_wall(m)} wall time. An "
            "unscored answer (the scorer could not read it) counts as wrong.</p>",
            table(
                ["round", "n", "accuracy [95% CI]", "unscored", "tokens/question", "cumulated"],
                rows,
                left=0,
            ),
            "<h3>Flips and checks</h3>" if flips else "",
            table(
                ["round", "wrong→right", "right→wrong", "stayed right", "stayed wrong"],
                flips,
                left=0,
            )
            if flips
            else "",
            table(["round", "judged", "no verdict", "check accuracy [CI]"], checks, left=0)
            if checks
            else "",
            f"<p class='note'>{len(problems)} data row(s) skipped, e.g. {escape(problems[0])}</p>"
            if problems
            else "",
            "<h3>Figures</h3>",
            figures(folder),
            "<h3>Transcripts</h3>",
            _transcripts(read_records(folder / "records.jsonl")),
            "<h3>What was run</h3>",
            _provenance(folder),
        ]
    )


def compare_rows(summary: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The side-by-side table's rows: one per self-correction mode, then self-consistency."""
    rows: list[tuple[Any, ...]] = []
    for r in summary["modes"]:
        rows.append(
            (
                r["mode"],
                f"{r['check']}, stop {r['stop']}, {r['rounds']} round(s)",
                r["n"],
                pct(r["accuracy_first"]),
                pct(r["accuracy_final"]) + ci(r["accuracy_final_ci95"]),
                pct(r["unscored_final"]),
                r["wrong_to_right"],
                r["right_to_wrong"],
                f"{pct(r['check_accuracy'])} of {r['checks_judged']}",
                "n/a" if r["tokens_per_question"] is None else f"{r['tokens_per_question']:.1f}",
            )
        )
    sc = summary.get("self_consistency")
    if sc:
        rows.append(
            (
                "self-consistency",
                f"majority of k = {sc['k']} samples, T = {sc['temperature']:g}",
                sc["n"],
                pct(sc["curve"][0]["accuracy"]),
                pct(sc["accuracy"]) + ci(sc["accuracy_ci95"]),
                pct(sc["unscored_rate"]),
                "",
                "",
                "",
                f"{sc['tokens_per_question']:.1f}",
            )
        )
    return rows


COMPARE_HEAD = [
    "mode",
    "setting",
    "n",
    "acc first answer",
    "acc final [95% CI]",
    "unscored final",
    "wrong→right",
    "right→wrong",
    "check acc (of judged)",
    "tokens/question",
]


def compare_section(folder: Path) -> str:
    """Intrinsic vs oracle-stopped (and self-consistency) in one table, and the figure."""
    summary = read_json(folder / "compare.json")
    if not summary:
        return "<p class='note'>No compare.json yet: the comparison has not finished.</p>"
    sc = summary.get("self_consistency")
    matched = (
        f"<p>Self-consistency: k = {sc['k']} matched to the {escape(str(sc['matched_to']))} run's "
        f"{sc['target_tokens_per_question']:.1f} generated tokens per question "
        f"({sc['k_drawn']} sample(s) drawn; 'acc first answer' is k = 1).</p>"
        if sc and sc.get("matched_to")
        else ""
    )
    return (
        ORACLE_NOTE
        + table(COMPARE_HEAD, compare_rows(summary), left=2)
        + matched
        + figures(folder)
        + "<h3>What was run</h3>"
        + _provenance(folder)
    )


def sc_section(folder: Path) -> str:
    """A self-consistency run: accuracy and tokens for every k drawn."""
    m = read_json(folder / "metrics.json")
    if not m:
        return "<p class='note'>No metrics.json yet: the run has not finished.</p>"
    rows = [
        (
            p["k"],
            pct(p["accuracy"]) + ci(p["accuracy_ci95"]),
            pct(p["unscored_rate"]),
            f"{p['tokens_per_question']:.1f}",
            "chosen" if p["k"] == m["k"] else "",
        )
        for p in m["curve"]
    ]
    return (
        f"<p>{m['n']} questions, temperature {m['temperature']:g}, {m['k_drawn']} sample(s) "
        f"drawn per question, failed samples: {m['failed']}.</p>"
        + table(["k", "accuracy [95% CI]", "unscored", "tokens/question", ""], rows, left=0)
        + figures(folder)
        + "<h3>What was run</h3>"
        + _provenance(folder)
    )
