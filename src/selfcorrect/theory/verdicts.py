"""What the Figure 2 panels say about the paper's claims: one table and one verdict per claim.

Reads the panels under a root (``<root>/<panel>/metrics.json``, as ``theory figure`` writes them)
and decides each claim by rules fixed here, before any result is seen, so every variant and every
preset is judged the same way:

- a comparison "A is lower than B" at t = 15 uses a paired z: the panels evaluate every predictor
  on the same sequences and store each one's per-sequence errors at t = 15, so z is the mean of
  the per-sequence differences B_i - A_i over its standard error. A metrics.json written before
  those were stored falls back to the unpaired z = (B - A) / sqrt(se_A^2 + se_B^2) (from the
  full-precision ``curves.csv`` beside it where there is one), which treats positively correlated
  errors as independent and so understates the evidence (conservative); the verdict says
  "unpaired". z >= 2: **holds**; z <= -2: **contradicted** (clearly the other way); otherwise
  **not supported** (no difference beyond noise);
- "TF tracks GD": holds when |TF - GD| <= 0.05 at each of t = 5, 10 and 15 (the original code's
  own gap there is 0.008, 0.001 and 0.001);
- "noise hurts": holds when the TF error at t = 15 rises at every step of the noise grid.

A panel that has not been run yields "not run yet". Nothing here trains or evaluates.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from selfcorrect.runfiles import read_json_file
from selfcorrect.theory.evaluate import read_curves
from selfcorrect.theory.figures import (
    GD_LABEL,
    PANELS,
    PAPER_GD,
    PAPER_TF,
    REPORT_T,
    VERDICT_T,
)

T_END = str(VERDICT_T)
TRACK_GAP = 0.05
Z = 2.0

PAPER_NOISE_T15 = {"0.5": (0.624, 0.467)}  # p -> (TF, GD), the original code's artifacts


@dataclass(frozen=True)
class Verdict:
    claim: str
    panel: str
    outcome: str  # holds | not supported | contradicted | does not hold | not run yet | not applicable (...)
    evidence: str


@dataclass(frozen=True)
class Measured:
    """One predictor's error at t: mean, standard error and, where the panel stored them, the
    error of each evaluation sequence (in the panel's sequence order)."""

    error: float
    stderr: float
    per_sequence: tuple[float, ...] | None = None


class Comparison(NamedTuple):
    outcome: str
    z: float
    paired: bool  # z from per-sequence differences (else the unpaired, conservative rule)


Metrics = dict[str, Any]


def load_panels(root: str | Path) -> dict[str, Metrics]:
    """Panel -> its metrics.json (with `with_unrounded`), for the panels under `root` that have
    finished; a corrupt metrics file is named (`RunDirError`)."""
    found = {}
    for panel in PANELS:
        metrics = read_json_file(Path(root) / panel / "metrics.json")
        if metrics:
            found[panel] = with_unrounded(metrics, Path(root) / panel / "curves.csv")
    return found


def with_unrounded(metrics: Metrics, curves: Path) -> Metrics:
    """`metrics` with ``unrounded``: the full-precision error and standard error of
    ``curves.csv`` wherever they round to metrics.json's 4-decimal values (so both come from the
    same evaluation); without a readable curves file, `metrics` as it is."""
    try:
        rows = read_curves(curves) if curves.is_file() else []
    except (OSError, ValueError, KeyError, csv.Error):
        rows = []
    unrounded: dict[str, dict[str, dict[str, list[float]]]] = {}
    for r in rows:
        label, noise, t = str(r["predictor"]), f"{r['noise']:g}", str(r["t"])
        error, stderr = float(r["error"]), float(r["stderr"])
        kept = metrics["error_stderr"].get(label, {}).get(noise, {}).get(t)
        if kept is not None and [round(error, 4), round(stderr, 4)] == list(kept):
            unrounded.setdefault(label, {}).setdefault(noise, {})[t] = [error, stderr]
    return {**metrics, "unrounded": unrounded} if unrounded else metrics


def _at(metrics: Metrics, label: str, t: str = T_END, noise: str = "0") -> Measured:
    """`label`'s error at `t`: from its per-sequence errors where stored, else full precision
    where known (`with_unrounded`), else metrics.json's rounded values."""
    stored = metrics.get("per_sequence") or {}
    errors = (stored.get("errors") or {}).get(label, {}).get(noise)
    if errors and str(stored.get("t")) == t and len(errors) >= 2:
        values = tuple(float(e) for e in errors)
        return Measured(*mean_and_stderr(values), values)
    found = (metrics.get("unrounded") or {}).get(label, {}).get(noise, {}).get(t)
    error, stderr = found if found is not None else metrics["error_stderr"][label][noise][t]
    return Measured(float(error), float(stderr))


def _shown(metrics: Metrics, label: str, t: str = T_END, noise: str = "0") -> Measured:
    """`label`'s error at `t` as the table shows it (metrics.json's values): what a verdict
    quotes, while it computes from `_at`."""
    error, stderr = metrics["error_stderr"][label][noise][t]
    return Measured(float(error), float(stderr))


def _tf_label(metrics: Metrics) -> str:
    return next(k for k in metrics["error_stderr"] if k.startswith("TF "))


def _by_number(metrics: Metrics, pattern: str) -> dict[int, str]:
    """{number in the label: label}, e.g. "15 layers" -> 15, "3 heads (96 wide)" -> 3."""
    out = {}
    for label in metrics["error_stderr"]:
        m = re.match(pattern, label)
        if m:
            out[int(m.group(1))] = label
    return out


def compare(
    lower: Measured | tuple[float, float], higher: Measured | tuple[float, float]
) -> Comparison:
    """Outcome of the claim "`lower` has the lower error", and its z: paired when both sides
    carry per-sequence errors of the same sequences (mean difference over its standard error),
    else unpaired ((B - A) / sqrt(se_A^2 + se_B^2), treating the two as independent)."""
    a, b = (x if isinstance(x, Measured) else Measured(*x) for x in (lower, higher))
    if a.per_sequence and b.per_sequence and len(a.per_sequence) == len(b.per_sequence) >= 2:
        diffs = [hi - lo for lo, hi in zip(a.per_sequence, b.per_sequence)]
        z, paired = _ratio(*mean_and_stderr(diffs)), True
    else:
        z, paired = _ratio(b.error - a.error, math.hypot(a.stderr, b.stderr)), False
    if z >= Z:
        return Comparison("holds", z, paired)
    if z <= -Z:
        return Comparison("contradicted", z, paired)
    return Comparison("not supported", z, paired)


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (sample standard deviation / sqrt(n)) of two or more values."""
    n = len(values)
    mean = math.fsum(values) / n
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


def _ratio(difference: float, spread: float) -> float:
    """difference / spread, a signed infinity (or 0) when there is no spread."""
    if spread > 0:
        return difference / spread
    return math.inf if difference > 0 else -math.inf if difference < 0 else 0.0


def _z_note(found: list[Comparison]) -> str:
    """How the z values of a verdict were computed."""
    if all(c.paired for c in found):
        return "z paired by evaluation sequence"
    return "z unpaired (metrics.json predates per-sequence errors; conservative)"


def _fmt(value: Measured) -> str:
    return f"{value.error:.3f} ± {value.stderr:.3f}"


def _worst(outcomes: list[str]) -> str:
    for outcome in ("contradicted", "not supported"):
        if outcome in outcomes:
            return outcome
    return "holds"


def _tracks(m: Metrics) -> Verdict:
    tf = _tf_label(m)
    gaps = {t: _at(m, tf, t).error - _at(m, GD_LABEL, t).error for t in ("5", "10", "15")}
    ok = all(abs(g) <= TRACK_GAP for g in gaps.values())
    text = ", ".join(f"t = {t}: {g:+.3f}" for t, g in gaps.items())
    return Verdict(
        "TF tracks GD",
        "2a",
        "holds" if ok else "does not hold",
        f"TF - GD {text} (rule: |gap| <= {TRACK_GAP}); TF {_fmt(_shown(m, tf))}, "
        f"GD {_fmt(_shown(m, GD_LABEL))} at t = 15",
    )


def _noise(m: Metrics) -> Verdict:
    tf = _tf_label(m)
    levels = sorted(m["error_stderr"][tf], key=float)
    errors = [_at(m, tf, noise=p).error for p in levels]
    ok = all(b > a for a, b in zip(errors, errors[1:], strict=False))
    text = ", ".join(f"p = {p}: {_shown(m, tf, noise=p).error:.3f}" for p in levels)
    return Verdict(
        "more reward noise, worse correction",
        "2b",
        "holds" if ok else "does not hold",
        f"TF at t = 15, {text}",
    )


def _depth(m: Metrics) -> Verdict:
    claim = "depth helps up to about 15 layers, then saturates"
    layers = _by_number(m, r"^(\d+) layers?$")
    errs = {n: _at(m, label) for n, label in sorted(layers.items())}
    text = ", ".join(f"{n}: {_fmt(_shown(m, label))}" for n, label in sorted(layers.items()))
    if 15 not in errs or min(errs) >= 15 or max(errs) <= 15:
        return Verdict(claim, "2c", "not applicable (the grid does not bracket 15 layers)", text)
    helps = compare(errs[15], errs[min(errs)])
    # saturation: the deepest model is not clearly better than 15 layers
    more = compare(errs[max(errs)], errs[15])
    saturates = "holds" if more.z < Z else "contradicted"
    outcome = _worst([helps.outcome, saturates])
    return Verdict(
        claim,
        "2c",
        outcome,
        f"t = 15 by depth {text}; {min(errs)} -> 15 layers z = {helps.z:.1f}, "
        f"15 -> {max(errs)} layers z = {more.z:.1f}; {_z_note([helps, more])}",
    )


def _heads(m: Metrics) -> Verdict:
    heads = _by_number(m, r"^(\d+) heads?\b")
    errs = {n: _at(m, label) for n, label in sorted(heads.items())}
    text = ", ".join(f"{n}: {_fmt(_shown(m, label))}" for n, label in sorted(heads.items()))
    if 3 not in errs or len(errs) < 2:
        return Verdict(
            "3 heads are best", "2e", "not applicable (no 3-head model in the grid)", text
        )
    results = {n: compare(errs[3], e) for n, e in errs.items() if n != 3}
    outcome = _worst([r.outcome for r in results.values()])
    zs = ", ".join(f"vs {n}: z = {r.z:.1f}" for n, r in results.items())
    note = _z_note(list(results.values()))
    return Verdict(
        "3 heads are best", "2e", outcome, f"t = 15 by heads {text}; 3 heads {zs}; {note}"
    )


def _pair(m: Metrics, claim: str, panel: str, better: str, others: list[str]) -> Verdict:
    present = [o for o in others if o in m["error_stderr"]]
    if better not in m["error_stderr"] or not present:
        return Verdict(claim, panel, "not run yet", "")
    parts, found = [f"{better} {_fmt(_shown(m, better))}"], []
    for other in present:
        result = compare(_at(m, better), _at(m, other))
        found.append(result)
        parts.append(f"{other} {_fmt(_shown(m, other))} (z = {result.z:.1f})")
    evidence = "t = 15: " + "; ".join(parts) + f"; {_z_note(found)}"
    return Verdict(claim, panel, _worst([r.outcome for r in found]), evidence)


def verdicts(panels: dict[str, Metrics]) -> list[Verdict]:
    """One verdict per claim of the paper, in the paper's order."""
    rules = [
        ("2a", "TF tracks GD", _tracks),
        ("2b", "more reward noise, worse correction", _noise),
        ("2c", "depth helps up to about 15 layers, then saturates", _depth),
        ("2e", "3 heads are best", _heads),
        (
            "2d",
            "softmax attention is essential",
            lambda m: _pair(
                m, "softmax attention is essential", "2d", "softmax attention", ["linear attention"]
            ),
        ),
        (
            "2f",
            "the FFN is needed",
            lambda m: _pair(
                m,
                "the FFN is needed",
                "2f",
                "with FFN",
                ["without FFN", "without FFN, ln_2 kept (official block)"],
            ),
        ),
    ]
    out = []
    for panel, claim, rule in rules:
        if panel not in panels:
            out.append(Verdict(claim, panel, "not run yet", ""))
            continue
        try:
            out.append(rule(panels[panel]))
        except KeyError as exc:  # e.g. a panel evaluated at fewer points than t = 15
            why = f"the panel has no error for {exc} at t = {T_END}"
            out.append(Verdict(claim, panel, f"not applicable ({why})", ""))
    return out


def _wall_time(run: dict[str, Any]) -> str:
    """The wall-time cell, e.g. "85 min (1 thread)" or "12 min (cuda)", from the devices and
    thread counts the training recorded (``devices``; the ``device`` of older summaries is the
    configured one, not where the steps ran, so it is not used). Models trained before these
    were recorded get no note."""
    if not run.get("seconds"):
        return ""
    kinds = sorted({str(d).split(":")[0] for d in run.get("devices") or []})
    threads = run.get("torch_threads")
    if kinds and kinds != ["cpu"]:
        note = "/".join(kinds)
    elif threads:
        note = "/".join(str(n) for n in threads) + (" thread" if threads == [1] else " threads")
    else:
        note = ""
    return f"{run['seconds'] / 60:.0f} min" + (f" ({note})" if note else "")


def table(panels: dict[str, Metrics]) -> str:
    """Markdown: error ± standard error at t = 2, 5, 10, 15 for every predictor of every panel
    that has run, each trained model's steps and wall time, and the paper's numbers beside."""
    ts = [str(t) for t in REPORT_T]
    head = "| panel | predictor / variant | p | " + " | ".join(f"t = {t}" for t in ts)
    lines = [head + " | steps | wall time |", "|---" * (len(ts) + 5) + "|"]
    for panel, m in panels.items():
        training = m.get("training", {})
        for label, by_noise in m["error_stderr"].items():
            for noise, by_t in by_noise.items():
                cells = [_fmt(_shown(m, label, t, noise)) if t in by_t else "" for t in ts]
                run = training.get(label, {})
                steps = str(run.get("steps_done", "")) if run else ""
                wall = _wall_time(run)
                lines.append(
                    f"| {panel} | {label} | {noise} | "
                    + " | ".join(cells)
                    + f" | {steps} | {wall} |"
                )
        if panel == "2a":
            for name, ref in (("paper TF (original artifacts)", PAPER_TF), ("paper GD", PAPER_GD)):
                cells = [f"{ref[int(t)]:.3f}" for t in ts]
                lines.append(f"| 2a | {name} | 0 | " + " | ".join(cells) + " | | |")
        if panel == "2b":
            for p, (tf, gd) in PAPER_NOISE_T15.items():
                cells = [""] * (len(ts) - 1) + [f"{tf:.3f} / {gd:.3f}"]
                lines.append(f"| 2b | paper TF / GD | {p} | " + " | ".join(cells) + " | | |")
    return "\n".join(lines)


def verdict_lines(found: list[Verdict]) -> str:
    """Markdown bullets, one per claim."""
    return "\n".join(
        f"- **{v.claim}** ({v.panel}): {v.outcome}" + (f". {v.evidence}" if v.evidence else "")
        for v in found
    )
