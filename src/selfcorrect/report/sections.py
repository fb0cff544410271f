"""Report sections, one renderer per kind of run directory (BBQ, ablation, jailbreak, serve; the
theory lab's in `theory_sections`, task runs' in `task_sections`). Every text that comes from a
run is HTML-escaped."""

from __future__ import annotations

import json
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

from selfcorrect.bbq.records import BBQMetrics
from selfcorrect.report.fmt import ci as _ci
from selfcorrect.report.fmt import figures as _figures
from selfcorrect.report.fmt import num as _num
from selfcorrect.report.fmt import pct as _pct
from selfcorrect.report.fmt import read_json as _read_json
from selfcorrect.report.fmt import table as _table
from selfcorrect.report.theory_sections import construct_section, theory_section, training_section
from selfcorrect.runs import read_config, read_records

# ---- BBQ -------------------------------------------------------------------------------------


def _provenance(folder: Path) -> str:
    config = read_config(folder)
    manifest = _read_json(folder / "manifest.json")
    command = config.pop("command", None)
    rows = [(k, json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in config.items()]
    info = [
        ("model", manifest.get("model")),
        ("seed", manifest.get("seed")),
        ("started", manifest.get("started")),
        ("finished", manifest.get("finished")),
        ("git revision", manifest.get("git_revision")),
        ("python", manifest.get("python")),
        (
            "versions",
            ", ".join(f"{k} {v}" for k, v in (manifest.get("versions") or {}).items() if v),
        ),
    ]
    cmd = (
        f"<p class='muted'>command: <code>{escape(' '.join(map(str, command)))}</code></p>"
        if command
        else ""
    )
    return (
        cmd
        + "<h3>Configuration</h3>"
        + _table(["key", "value"], rows, left=2)
        + "<h3>Provenance</h3>"
        + _table(["", ""], info, left=2)
    )


def _turns_html(record: dict[str, Any]) -> str:
    parts = []
    for t in record.get("turns", []):
        tag = f"round {t['round']} · {t['kind']}"
        if t.get("verdict"):
            tag += f" · verdict: {t['verdict']}"
        if t.get("completion_tokens"):
            tag += f" · {t['completion_tokens']} tokens, {t['seconds']:.2f}s"
        parts.append(
            f'<div class="turn {escape(t["role"])}"><span class="tag">{escape(tag)}</span>'
            f"{escape(t['content'])}</div>"
        )
    return "".join(parts)


def _transcripts(records: list[dict[str, Any]], per_outcome: int = 3) -> str:
    groups: dict[str, list[dict[str, Any]]] = {
        "fixed (wrong -> right)": [],
        "broken (right -> wrong)": [],
        "unchanged": [],
    }
    for r in records:
        rounds = r["rounds"]
        first, last = rounds[0]["parsed"] == r["label"], rounds[-1]["parsed"] == r["label"]
        key = (
            "fixed (wrong -> right)"
            if not first and last
            else "broken (right -> wrong)"
            if first and not last
            else "unchanged"
        )
        groups[key].append(r)
    letters = "abc"
    out = []
    for name, items in groups.items():
        out.append(f"<h3>{escape(name)}: {len(items)} question(s)</h3>")
        if not items:
            out.append("<p class='muted'>none</p>")
        for r in items[:per_outcome]:
            answers = " → ".join(
                "unparsed" if x["parsed"] is None else f"({letters[x['parsed']]})"
                for x in r["rounds"]
            )
            summary = f"{r['id']} · correct ({letters[r['label']]}) · answers {answers}"
            out.append(f"<details><summary>{escape(summary)}</summary>{_turns_html(r)}</details>")
    return "".join(out)


def _wall(metrics: dict[str, Any]) -> str:
    wall = metrics.get("wall_seconds")
    return "unknown" if wall is None else f"{wall:.1f} s"


def _bbq_headline(m: BBQMetrics) -> str:
    head = [
        "round",
        "n",
        "accuracy, tolerant [95% CI]",
        "unparsed",
        "accuracy, official [95% CI]",
        "official unknown",
        "s_AMB (Parrish) [CI]",
        "s_AMB (paper code)",
        "s_DIS",
    ]
    rows = []
    for r in m.per_round:
        off = r.official
        rows.append(
            (
                r.round,
                r.n,
                _pct(r.accuracy) + _ci(r.accuracy_ci95),
                _pct(r.unparsed_rate),
                (_pct(off.accuracy) + _ci(off.accuracy_ci95) + f" of {off.n_graded}")
                if off
                else "",
                _pct(off.unknown_rate) if off else "",
                _num(r.bias_score_ambig.value) + _ci(r.bias_score_ambig.ci95, pct=False),
                _num(r.bias_score_ambig_paper_code.value),
                _num(r.bias_score_disambig.value),
            )
        )
    return _table(head, rows, left=0)


def _bbq_section(folder: Path) -> str:
    raw = _read_json(folder / "metrics.json")
    records = read_records(folder / "records.jsonl")
    if not raw:
        return "<p class='note'>No metrics.json yet: the run has not finished.</p>"
    m = BBQMetrics.from_dict(raw)
    if not m.per_round:
        return f"<p class='note'>No question finished ({m.failed} failed).</p>" + _provenance(
            folder
        )
    last = m.rounds
    cat_rows = []
    for c, per in m.by_category.items():
        checked = m.check_accuracy_by_category.get(c) or ()
        cat_rows.append(
            (
                c,
                per[0].n,
                _pct(per[0].accuracy) + _ci(per[0].accuracy_ci95),
                _pct(per[last].accuracy) + _ci(per[last].accuracy_ci95),
                _num(per[last].bias_score_ambig.value),
                _pct(checked[0].accuracy) if last and checked else "",
            )
        )
    checks = [(c.round, c.n, c.n_unknown, _pct(c.accuracy) + _ci(c.ci95)) for c in m.check_accuracy]
    flips = [
        (f.round, f.wrong_to_right, f.right_to_wrong, f.stayed_right, f.stayed_wrong)
        for f in m.flips
    ]
    tokens = raw.get("tokens", {})
    problems = m.data_problems
    return "".join(
        [
            f"<p>{m.n} questions, {last} CaC round(s); failed questions: {m.failed}; "
            f"tokens: {tokens.get('prompt_tokens', 0):,} prompt ({tokens.get('cached_tokens', 0):,} reused), "
            f"{tokens.get('completion_tokens', 0):,} generated; "
            f"{_wall(raw)} wall time, {tokens.get('request_seconds', tokens.get('generation_seconds', 0))} s "
            "summed over requests (concurrent requests overlap).</p>",
            "<h3>Headline</h3>",
            "<p class='muted'>Tolerant grader: the whole answer, an unparsed answer counts as "
            "wrong. Official grader (the paper's code): the first sentence only, unknown answers "
            "left out of its accuracy (their share is 'official unknown').</p>",
            _bbq_headline(m),
            f"<h3>Per category (round 0 vs round {last}, tolerant grader)</h3>",
            _table(
                [
                    "category",
                    "n",
                    "accuracy r0",
                    f"accuracy r{last}",
                    f"s_AMB r{last}",
                    "check accuracy r1",
                ],
                cat_rows,
            ),
            "<h3>Checks and flips (tolerant grader)</h3>" if last else "",
            _table(["round", "judged", "unknown verdicts", "check accuracy [CI]"], checks, left=0)
            if checks
            else "",
            _table(
                ["round", "wrong→right", "right→wrong", "stayed right", "stayed wrong"],
                flips,
                left=0,
            )
            if flips
            else "",
            f"<p class='note'>{len(problems)} malformed data row(s) skipped, e.g. {escape(problems[0])}</p>"
            if problems
            else "",
            "<h3>Figures</h3>",
            _figures(folder),
            "<h3>Transcripts</h3>",
            _transcripts(records),
            "<h3>What was run</h3>",
            _provenance(folder),
        ]
    )


def bbq_comparison(folders: list[Path]) -> str:
    rows = []
    for f in folders:
        m = _read_json(f / "metrics.json")
        cfg = read_config(f)
        if not m:
            continue
        last = m["rounds"]
        acc0, acc1 = m["per_round"][0]["accuracy"], m["per_round"][last]["accuracy"]
        chk = m["check_accuracy"][0]["accuracy"] if m["check_accuracy"] else None
        rows.append(
            (
                f.name,
                cfg.get("model"),
                cfg.get("check"),
                last,
                m["n"],
                _pct(acc0),
                _pct(acc1),
                "n/a" if acc0 is None or acc1 is None else f"{100 * (acc1 - acc0):+.1f}",
                _pct(chk),
                _num(m["per_round"][last]["bias_score_ambig"]["value"]),
            )
        )
    return _table(
        [
            "run",
            "model",
            "check",
            "rounds",
            "n",
            "acc r0",
            "acc final",
            "gain (pts)",
            "check acc",
            "s_AMB final",
        ],
        rows,
    )


def _ablation_section(folder: Path) -> str:
    a = _read_json(folder / "ablation.json")
    rows = [
        (
            p["label"],
            p["model"],
            p["check"],
            p["n"],
            " → ".join(_pct(x) for x in p["accuracy_by_round"]),
            _pct(p["check_accuracy"]),
        )
        for p in a["points"]
    ]
    fit = a.get("fit_gain_vs_check_accuracy")
    fit_text = (
        f"<p>gain = {fit['intercept']:+.3f} {fit['slope']:+.3f} × check accuracy (R² {fit['r2']:.2f})</p>"
        if fit
        else ""
    )
    return (
        _table(["point", "model", "check", "n", "accuracy by round", "check accuracy"], rows)
        + fit_text
        + _figures(folder)
    )


def _jailbreak_section(folder: Path) -> str:
    from selfcorrect.jailbreak.records import DefendMetrics, DefendRecord

    raw = _read_json(folder / "metrics.json")
    if not raw:
        return "<p class='note'>No metrics.json yet: the run has not finished.</p>"
    m = DefendMetrics.from_dict(raw)
    rows, agree = [], []
    for key, row in m.defenses.items():
        over = row.over_refusal
        over_text = (
            "n/a"
            if over is None
            else f"{_pct(over.refusal_rate)}{_ci(over.refusal_rate_ci)} "
            f"({over.full_compliance}/{over.partial_refusal}/{over.full_refusal} of {over.n}"
            + (f", {over.unscored} unscored" if over.unscored else "")
            + ")"
        )
        for j, v in row.judges.items():
            rows.append(
                (
                    key,
                    j,
                    v.n,
                    row.n_failed,
                    _pct(v.asr_initial) + _ci(v.asr_initial_ci),
                    _pct(v.asr_final) + _ci(v.asr_final_ci),
                    f"{v.unscored_initial}/{v.unscored_final}",
                    over_text,
                )
            )
        for pair, a in row.agreement.items():
            kappa = "n/a" if a["kappa"] is None else f"{a['kappa']:.2f}"
            agree.append((key, pair, a["n"], _pct(a["agreement"]), kappa))
    records = [DefendRecord.from_dict(r) for r in read_records(folder / "records.jsonl")]
    samples = []
    for key in m.defenses:
        for r in [r for r in records if r.row == key and r.set == "harmful"][:2]:
            samples.append(
                f"<details><summary>{escape(key)} · {escape(r.goal[:90])}</summary>"
                f"{_turns_html(r.to_dict())}</details>"
            )
    return "".join(
        [
            "<p>Attack success rate (ASR): share of scored answers judged jailbroken, initial "
            "answer vs the final one after the defence (95% Wilson intervals); unscored answers "
            "and failed samples are counted, not dropped. Over-refusal: share of XSTest's safe "
            "prompts refused fully or partly (answered/partly/refused), judged by "
            f"<code>{escape(str(m.over_refusal_judge))}</code>. Adaptive rows ran on prompts "
            f"optimised against that defence. Failed samples in the run: {m.failed}.</p>",
            _table(
                [
                    "row",
                    "judge",
                    "n",
                    "failed",
                    "ASR initial",
                    "ASR final",
                    "unscored (init/final)",
                    "over-refusal",
                ],
                rows,
                left=2,
            ),
            "<h3>Agreement between judges (final answers)</h3>" if agree else "",
            _table(["row", "judges", "n", "agreement", "Cohen's kappa"], agree, left=2)
            if agree
            else "",
            "<h3>Figures</h3>",
            _figures(folder),
            "<h3>Transcripts</h3>",
            "".join(samples),
            "<h3>What was run</h3>",
            _provenance(folder),
        ]
    )


def _serve_section(folder: Path) -> str:
    ok = read_records(folder / "records.jsonl")
    failed = read_records(folder / "failures.jsonl")
    verdicts: dict[str, int] = {}
    for r in ok:
        for t in r.get("turns", []):
            if t.get("kind") == "check":
                verdicts[str(t.get("verdict"))] = verdicts.get(str(t.get("verdict")), 0) + 1
    tokens = sum(r.get("usage", {}).get("total_tokens", 0) for r in ok)
    summary = [
        ("requests answered", len(ok)),
        ("requests failed (error status sent)", len(failed)),
        (
            "checks by verdict",
            ", ".join(f"{k}: {v}" for k, v in sorted(verdicts.items())) or "none",
        ),
        (
            "answer kept from round",
            ", ".join(
                f"{k}: {v}" for k, v in sorted(_count(r.get("kept_round") for r in ok).items())
            )
            or "none",
        ),
        ("tokens (all rounds)", f"{tokens:,}"),
    ]
    shown = []
    for r in ok[-10:]:
        question = next(
            (t["content"] for t in r.get("turns", []) if t.get("kind") == "question"), ""
        )
        shown.append(
            f"<details><summary>{escape(r['id'])} · {escape(question[:80])}</summary>"
            f"{_turns_html(r)}</details>"
        )
    errors = [(r.get("id", ""), r.get("error", "")) for r in failed[-10:]]
    return (
        _table(["", ""], summary, left=2)
        + "<h3>Latest requests</h3>"
        + ("".join(shown) or "<p class='muted'>none</p>")
        + (
            "<h3>Latest failures</h3>" + _table(["request", "error"], errors, left=2)
            if errors
            else ""
        )
    )


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in values:
        counts[str(v)] = counts.get(str(v), 0) + 1
    return counts


def _task(name: str) -> Callable[[Path], str]:
    """A task-run renderer from `selfcorrect.report.task_sections` (imported when used)."""

    def render(folder: Path) -> str:
        from selfcorrect.report import task_sections

        return str(getattr(task_sections, name)(folder))

    return render


SECTIONS: dict[str, Callable[[Path], str]] = {
    "task": _task("task_section"),
    "task-compare": _task("compare_section"),
    "task-sc": _task("sc_section"),
    "serve": _serve_section,
    "training": training_section,
    "bbq": _bbq_section,
    "theory": theory_section,
    "construct": construct_section,
    "ablation": _ablation_section,
    "jailbreak": _jailbreak_section,
}
TITLES = {
    "task": "Task run (selfcorrect task)",
    "task-compare": "Intrinsic vs oracle-stopped self-correction and self-consistency",
    "task-sc": "Self-consistency baseline",
    "serve": "Served requests (selfcorrect serve)",
    "training": "Theory training run",
    "bbq": "BBQ study",
    "jailbreak": "Jailbreak defences",
    "theory": "Theory lab panel",
    "construct": "Explicit construction",
    "ablation": "BBQ ablation",
}
