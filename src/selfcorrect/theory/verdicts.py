"""What the Figure 2 panels say about the paper's claims: one table and one verdict per claim.

Reads the panels under a root (``<root>/<panel>/metrics.json``, as ``theory figure`` writes them)
and decides each claim by rules fixed here, before any result is seen, so every variant and every
preset is judged the same way:

- a comparison "A is lower than B" at t = 15 uses z = (B - A) / sqrt(se_A^2 + se_B^2). The panels
  evaluate every predictor on the same sequences, so the errors are positively correlated and this
  z (which treats them as independent) understates the evidence: a conservative test.
  z >= 2: **holds**; z <= -2: **contradicted** (clearly the other way); otherwise **not
  supported** (no difference beyond noise);
- "TF tracks GD": holds when |TF - GD| <= 0.05 at each of t = 5, 10 and 15 (the original code's
  own gap there is 0.008, 0.001 and 0.001);
- "noise hurts": holds when the TF error at t = 15 rises at every step of the noise grid.

A panel that has not been run yields "not run yet". Nothing here trains or evaluates.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfcorrect.runfiles import read_json_file
from selfcorrect.theory.figures import GD_LABEL, PANELS, PAPER_GD, PAPER_TF, REPORT_T

T_END = "15"
TRACK_GAP = 0.05
Z = 2.0

PAPER_NOISE_T15 = {"0.5": (0.624, 0.467)}  # p -> (TF, GD), the original code's artifacts


@dataclass(frozen=True)
class Verdict:
    claim: str
    panel: str
    outcome: str  # holds | not supported | contradicted | does not hold | not run yet | not applicable (...)
    evidence: str


Metrics = dict[str, Any]


def load_panels(root: str | Path) -> dict[str, Metrics]:
    """Panel -> its metrics.json, for the panels under `root` that have finished; a corrupt
    file is named (`RunDirError`)."""
    found = {panel: read_json_file(Path(root) / panel / "metrics.json") for panel in PANELS}
    return {panel: metrics for panel, metrics in found.items() if metrics}


def _at(metrics: Metrics, label: str, t: str = T_END, noise: str = "0") -> tuple[float, float]:
    error, stderr = metrics["error_stderr"][label][noise][t]
    return float(error), float(stderr)


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


def compare(lower: tuple[float, float], higher: tuple[float, float]) -> tuple[str, float]:
    """Outcome of the claim "`lower` has the lower error", and its z."""
    (a, sa), (b, sb) = lower, higher
    spread = math.sqrt(sa * sa + sb * sb)
    z = (b - a) / spread if spread > 0 else (math.inf if b > a else -math.inf if b < a else 0.0)
    if z >= Z:
        return "holds", z
    if z <= -Z:
        return "contradicted", z
    return "not supported", z


def _fmt(value: tuple[float, float]) -> str:
    return f"{value[0]:.3f} ± {value[1]:.3f}"


def _worst(outcomes: list[str]) -> str:
    for outcome in ("contradicted", "not supported"):
        if outcome in outcomes:
            return outcome
    return "holds"


def _tracks(m: Metrics) -> Verdict:
    tf = _tf_label(m)
    gaps = {t: _at(m, tf, t)[0] - _at(m, GD_LABEL, t)[0] for t in ("5", "10", "15")}
    ok = all(abs(g) <= TRACK_GAP for g in gaps.values())
    text = ", ".join(f"t = {t}: {g:+.3f}" for t, g in gaps.items())
    return Verdict(
        "TF tracks GD",
        "2a",
        "holds" if ok else "does not hold",
        f"TF - GD {text} (rule: |gap| <= {TRACK_GAP}); TF {_fmt(_at(m, tf))}, "
        f"GD {_fmt(_at(m, GD_LABEL))} at t = 15",
    )


def _noise(m: Metrics) -> Verdict:
    tf = _tf_label(m)
    levels = sorted(m["error_stderr"][tf], key=float)
    errors = [_at(m, tf, noise=p)[0] for p in levels]
    ok = all(b > a for a, b in zip(errors, errors[1:], strict=False))
    text = ", ".join(f"p = {p}: {e:.3f}" for p, e in zip(levels, errors, strict=True))
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
    text = ", ".join(f"{n}: {_fmt(e)}" for n, e in errs.items())
    if 15 not in errs or min(errs) >= 15 or max(errs) <= 15:
        return Verdict(claim, "2c", "not applicable (the grid does not bracket 15 layers)", text)
    helps, z_help = compare(errs[15], errs[min(errs)])
    # saturation: the deepest model is not clearly better than 15 layers
    _, z_more = compare(errs[max(errs)], errs[15])
    saturates = "holds" if z_more < Z else "contradicted"
    outcome = _worst([helps, saturates])
    return Verdict(
        claim,
        "2c",
        outcome,
        f"t = 15 by depth {text}; {min(errs)} -> 15 layers z = {z_help:.1f}, "
        f"15 -> {max(errs)} layers z = {z_more:.1f}",
    )


def _heads(m: Metrics) -> Verdict:
    heads = _by_number(m, r"^(\d+) heads?\b")
    errs = {n: _at(m, label) for n, label in sorted(heads.items())}
    text = ", ".join(f"{n}: {_fmt(e)}" for n, e in errs.items())
    if 3 not in errs or len(errs) < 2:
        return Verdict(
            "3 heads are best", "2e", "not applicable (no 3-head model in the grid)", text
        )
    results = [compare(errs[3], e) for n, e in errs.items() if n != 3]
    outcome = _worst([r[0] for r in results])
    zs = ", ".join(f"vs {n}: z = {compare(errs[3], e)[1]:.1f}" for n, e in errs.items() if n != 3)
    return Verdict("3 heads are best", "2e", outcome, f"t = 15 by heads {text}; 3 heads {zs}")


def _pair(m: Metrics, claim: str, panel: str, better: str, others: list[str]) -> Verdict:
    present = [o for o in others if o in m["error_stderr"]]
    if better not in m["error_stderr"] or not present:
        return Verdict(claim, panel, "not run yet", "")
    parts, outcomes = [f"{better} {_fmt(_at(m, better))}"], []
    for other in present:
        outcome, z = compare(_at(m, better), _at(m, other))
        outcomes.append(outcome)
        parts.append(f"{other} {_fmt(_at(m, other))} (z = {z:.1f})")
    return Verdict(claim, panel, _worst(outcomes), "t = 15: " + "; ".join(parts))


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
        out.append(
            rule(panels[panel]) if panel in panels else Verdict(claim, panel, "not run yet", "")
        )
    return out


def _wall_time(run: dict[str, Any]) -> str:
    """The wall-time cell, e.g. "85 min (1 thread)" or "12 min (cuda)"; models trained before
    thread counts were recorded get no note."""
    if not run.get("seconds"):
        return ""
    device, threads = run.get("device") or "cpu", run.get("torch_threads")
    if device != "cpu":
        note = device
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
                cells = [_fmt(tuple(by_t[t])) if t in by_t else "" for t in ts]  # type: ignore[arg-type]
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
