"""Intrinsic vs oracle-stopped self-correction and self-consistency, side by side.

Each mode is an ordinary, resumable run in ``<out>/<mode>/`` on the same questions, prompt and
token limits; ``compare.json`` holds one row per mode. Modes:

- ``intrinsic``: the chosen check (self by default; never an oracle), fixed rounds, the last
  answer is final (Huang et al. 2024's intrinsic self-correction);
- ``oracle-stopped``: the same check in context, but a conversation stops as soon as the ground
  truth accepts its answer, keeping it (Huang et al.'s oracle setting; the model never reads
  the truth, see `selfcorrect.tasks.checks`);
- ``oracle-check``: the paper's perfect check (``oracle:0``): the model *reads* "My previous
  answer is wrong." and stops when the check passes (feedback, not just stopping);
- ``self-consistency``: majority of k sampled first answers, k matched to the generated tokens
  per question of the first CaC mode run (intrinsic if present), or fixed by ``sc_k``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from selfcorrect.backends.base import Backend, get_backend
from selfcorrect.runs import RunDir
from selfcorrect.specs import plain
from selfcorrect.tasks.consistency import SCConfig, run_self_consistency
from selfcorrect.tasks.study import TaskConfig, run_inputs, run_task

MODES = ("intrinsic", "oracle-stopped", "oracle-check", "self-consistency")
CAC_MODES = MODES[:3]


def mode_config(base: TaskConfig, mode: str) -> TaskConfig:
    """The run configuration of one CaC mode."""
    if mode == "intrinsic":
        if base.check_spec.kind == "oracle":
            raise ValueError(
                "intrinsic self-correction uses no ground truth: --check cannot be an oracle"
            )
        return replace(base, stop="never")
    if mode == "oracle-stopped":
        return replace(base, stop="oracle")
    if mode == "oracle-check":
        return replace(base, check="oracle:0", stop="check")
    raise ValueError(f"unknown mode {mode!r}; use {', '.join(MODES)}")


def parse_modes(text: str | Sequence[str]) -> tuple[str, ...]:
    """Modes from "a,b" text (or a list), validated, in the order given, without repeats."""
    items = text.split(",") if isinstance(text, str) else list(text)
    modes = tuple(dict.fromkeys(m.strip() for m in items if m.strip()))
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"unknown mode {', '.join(bad) or '(none)'}; use {', '.join(MODES)}")
    return modes


def _row(mode: str, cfg: TaskConfig, m: dict[str, Any]) -> dict[str, Any]:
    first, final = (m["per_round"][0], m["final"]) if m["per_round"] else ({}, {})
    flips = {"wrong_to_right": 0, "right_to_wrong": 0}
    for f in m["flips"]:
        flips["wrong_to_right"] += f["wrong_to_right"]
        flips["right_to_wrong"] += f["right_to_wrong"]
    checks = [c for c in m["check_accuracy"] if c["n"]]
    judged = sum(c["n"] for c in checks)
    tokens = m["tokens_per_question"]
    return {
        "mode": mode,
        "check": str(cfg.check),
        "stop": cfg.stop,
        "rounds": cfg.rounds,
        "n": m["n"],
        "accuracy_first": first.get("accuracy"),
        "accuracy_final": final.get("accuracy"),
        "accuracy_final_ci95": final.get("accuracy_ci95"),
        "unscored_final": final.get("unscored_rate"),
        "accuracy_by_round": [r["accuracy"] for r in m["per_round"]],
        "tokens_by_round": [t["cumulative_mean"] for t in tokens],
        **flips,
        "check_accuracy": (
            sum(c["accuracy"] * c["n"] for c in checks) / judged if judged else None
        ),
        "checks_judged": judged,
        "tokens_per_question": tokens[-1]["cumulative_mean"] if tokens else None,
        "stopped_early": m["stopped_early"],
        "failed": m["failed"],
    }


def run_compare(
    base: TaskConfig,
    modes: Sequence[str],
    out: str | Path,
    *,
    sc_temperature: float = 0.7,
    sc_max_k: int = 16,
    sc_k: int | None = None,
    backend: Backend | None = None,
    progress: bool = True,
    fail_fast: bool = False,
) -> dict[str, Any]:
    """Run (or resume) every mode into ``out/<mode>/``, then write ``compare.json`` and the
    report; returns the summary. `fail_fast` stops at the first failed question of a CaC mode or
    the first failed self-consistency sample (`BackendError`)."""
    modes = parse_modes(modes)
    out = Path(out)
    configs = [(m, mode_config(base, m)) for m in modes if m in CAC_MODES]  # validates first
    sc_cfg = None
    if "self-consistency" in modes:
        sc_cfg = SCConfig(replace(base, rounds=0), sc_temperature, max_k=sc_max_k, k=sc_k)
        if sc_k is None and not configs:
            raise ValueError(
                "self-consistency alone needs --sc-k (no CaC mode to match tokens with)"
            )
    root = RunDir.open(
        out,
        study="task-compare",
        config={
            "modes": list(modes),
            "base": plain(base),
            "self_consistency": plain(sc_cfg) if sc_cfg else None,
        },
        model=base.model,
        seed=base.seed,
        inputs=run_inputs(base),
    )
    backend = backend or get_backend(base.model, base_url=base.base_url, **base.backend_options)
    rows = []
    for mode, cfg in configs:
        metrics = run_task(cfg, out / mode, backend=backend, progress=progress, fail_fast=fail_fast)
        rows.append(_row(mode, cfg, metrics))
    summary: dict[str, Any] = {"modes": rows, "self_consistency": None}
    if sc_cfg is not None:
        reference = next((r for r in rows if r["mode"] == "intrinsic"), rows[0] if rows else None)
        target = reference["tokens_per_question"] if reference and sc_k is None else None
        sc = run_self_consistency(
            sc_cfg,
            out / "self-consistency",
            target_tokens=target,
            backend=backend,
            progress=progress,
            fail_fast=fail_fast,
        )
        summary["self_consistency"] = {
            **sc["chosen"],
            "matched_to": reference["mode"] if target is not None and reference else None,
            "target_tokens_per_question": target,
            "temperature": sc["temperature"],
            "k_drawn": sc["k_drawn"],
            "curve": sc["curve"],
            "failed": sc["failed"],
        }
    root.write_json("compare.json", summary)
    root.finish(modes=len(modes))
    from selfcorrect.report import build_report

    subdirs = [out / m for m in modes if (out / m / "metrics.json").exists()]
    build_report(out, extra=subdirs)
    return summary
