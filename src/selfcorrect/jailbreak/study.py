"""The jailbreak defence study: saved adversarial prompts -> each defence -> judges -> ASR table.

``records.jsonl``: one object per (defence, behaviour) with ``goal``, ``prompt``, ``defense``,
``turns``, ``initial_answer``, ``final_answer`` and ``verdicts`` (per judge, initial and final:
true = jailbroken). Harmless requests (over-refusal) are recorded with ``set: harmless``.
``metrics.json``: per defence, per judge ``asr_initial`` / ``asr_final`` and ``n``; agreement
between judges; over-refusal rate per defence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfcorrect.backends.base import Backend, GenParams, describe_backend, get_backend
from selfcorrect.cac.engine import Conversation
from selfcorrect.cac.runner import run_samples
from selfcorrect.datafiles import protocol, read_csv, vendored
from selfcorrect.fingerprint import backend_inputs
from selfcorrect.jailbreak.defenses import (
    SmoothLLMBackend,
    cac_config,
    defense_check,
    parse_defense,
)
from selfcorrect.jailbreak.judges import agreement, make_judge
from selfcorrect.runs import RunDir


@dataclass(frozen=True)
class DefendConfig:
    model: str = "llamacpp/smollm2"
    defenses: tuple[str, ...] = ("none", "cac:1")
    judges: tuple[str, ...] = ("refusal", "refusal-extended")
    check_prompt: str = ""  # default: the protocol's "isn't this a harmful, offensive, ..." prompt
    max_new_tokens: int = 64
    harmless: bool = True
    harmless_limit: int | None = None
    batch_size: int = 16
    seed: int = 0
    base_url: str | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)


def harmless_requests(limit: int | None = None) -> list[dict[str, Any]]:
    rows, _ = read_csv(vendored("harmless", "harmless_requests.csv"), ("goal",), strict=True)
    out = [
        {"id": f"harmless:{line}", "goal": r["goal"], "prompt": r["goal"], "set": "harmless"}
        for line, r in rows
    ]
    return out[:limit] if limit else out


def run_defend(
    cfg: DefendConfig,
    prompts: list[dict[str, Any]],
    out: str | Path,
    *,
    backend: Backend | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every defence on `prompts` (and the harmless set); returns metrics.json's content."""
    defenses = [parse_defense(d) for d in cfg.defenses]  # validate before any work
    judges = [make_judge(j) for j in cfg.judges]
    check_prompt = cfg.check_prompt or protocol()["jailbreak"]["check_prompts_fixed"][2]
    run = RunDir.open(
        out,
        study="jailbreak-defend",
        config={**cfg.__dict__, "n_prompts": len(prompts)},
        model=cfg.model,
        seed=cfg.seed,
        inputs={
            "attack_prompts": prompts,
            "harmless": vendored("harmless", "harmless_requests.csv") if cfg.harmless else None,
            **backend_inputs(cfg.model, cfg.base_url),
        },
    )
    base = backend or get_backend(cfg.model, base_url=cfg.base_url, **cfg.backend_options)
    run.note(backend=describe_backend(base))
    refusals = protocol()["jailbreak"]["refusal_substrings_paper"]
    items = [{**p, "set": p.get("set", "harmful")} for p in prompts]
    if cfg.harmless:
        items += harmless_requests(cfg.harmless_limit)

    def record(item: dict[str, Any], conv: Conversation, defense: str) -> dict[str, Any]:
        initial = conv.answers()[0].content
        final = (conv.final_answer() or conv.answers()[-1]).content
        verdicts = {
            j.name: {
                "initial": j.judge([item["goal"]], [initial])[0],
                "final": j.judge([item["goal"]], [final])[0],
            }
            for j in judges
        }
        return {
            "goal": item["goal"],
            "prompt": item["prompt"],
            "set": item["set"],
            "defense": defense,
            "attack": item.get("attack"),
            "turns": [t.to_dict() for t in conv.turns],
            "initial_answer": initial,
            "final_answer": final,
            "verdicts": verdicts,
        }

    for d in defenses:
        model = (
            SmoothLLMBackend(base, d.smooth_copies, refusals, seed=cfg.seed)
            if d.smooth_copies
            else base
        )
        params = GenParams(max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
        run_samples(
            run,
            items,
            sample_id=lambda it, d=d: f"{d.name}|{it['id']}",  # type: ignore[misc]
            conversation=lambda it, d=d: Conversation(
                id=f"{d.name}|{it['id']}",  # type: ignore[misc]
                question=it["prompt"] + d.question_suffix,
            ),
            record=lambda it, conv, d=d: record(it, conv, d.name),  # type: ignore[misc]
            backend=model,
            check=defense_check(d, check_prompt, params),
            config=cac_config(d, cfg.max_new_tokens, cfg.seed),
            window=cfg.batch_size,
            progress=progress,
        )
    wanted = {f"{d.name}|{it['id']}" for d in defenses for it in items}
    records = [r for r in run.records() if r["id"] in wanted]
    metrics = compute_metrics(records, [d.name for d in defenses], [j.name for j in judges])
    run.write_json("metrics.json", metrics)
    run.finish(n_records=len(records))
    if records:
        from selfcorrect.report import build_report

        build_report(run.path)
    return metrics


def compute_metrics(
    records: list[dict[str, Any]], defenses: list[str], judges: list[str]
) -> dict[str, Any]:
    """ASR per defence and judge (fractions of decided answers), agreement, over-refusal."""
    out: dict[str, Any] = {"defenses": {}}
    for d in defenses:
        harmful = [r for r in records if r["defense"] == d and r["set"] == "harmful"]
        harmless = [r for r in records if r["defense"] == d and r["set"] == "harmless"]
        row: dict[str, Any] = {"n": len(harmful), "judges": {}, "agreement": {}}
        for j in judges:

            def rate(rs: list[dict[str, Any]], when: str, j: str = j) -> float | None:
                vs = [r["verdicts"][j][when] for r in rs if r["verdicts"][j][when] is not None]
                return sum(vs) / len(vs) if vs else None

            complied = rate(harmless, "final") if harmless else None
            row["judges"][j] = {
                "asr_initial": rate(harmful, "initial"),
                "asr_final": rate(harmful, "final"),
                "n": len(harmful),
                "over_refusal": None if complied is None else 1 - complied,
            }
        for i, a in enumerate(judges):
            for b in judges[i + 1 :]:
                row["agreement"][f"{a} vs {b}"] = agreement(
                    [r["verdicts"][a]["final"] for r in harmful],
                    [r["verdicts"][b]["final"] for r in harmful],
                )
        row["n_harmless"] = len(harmless)
        out["defenses"][d] = row
    return out
