"""The jailbreak defence study: saved adversarial prompts -> each defence -> judges -> ASR table,
next to over-refusal on XSTest's safe prompts.

Rows: every defence on the plain prompts; with adaptive sources (attack directories optimised
against a defence, ``jailbreak attack --defense D``), also "D (adaptive)" on those prompts.
``records.jsonl`` holds `DefendRecord`s and ``metrics.json`` a `DefendMetrics`
(`selfcorrect.jailbreak.records`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfcorrect.backends.base import Backend, GenParams, describe_backend, get_backend
from selfcorrect.cac.conversation import Conversation
from selfcorrect.cac.runner import run_samples
from selfcorrect.datafiles import protocol, read_csv, vendored
from selfcorrect.fingerprint import backend_inputs
from selfcorrect.jailbreak.defenses import (
    Defense,
    SmoothLLMBackend,
    cac_config,
    defense_check,
    parse_defense,
    resolve_check_prompt,
    resolve_family,
)
from selfcorrect.jailbreak.judges import (
    JudgeInput,
    judge_inputs,
    make_judge,
    validate_judge_spec,
)
from selfcorrect.jailbreak.records import (
    DefendMetrics,
    DefendRecord,
    RowPlan,
    Verdicts,
    compute_metrics,
)
from selfcorrect.jailbreak.xstest import make_classifier, safe_prompts, validate_classifier_spec
from selfcorrect.runs import RunDir
from selfcorrect.specs import parse, served_options

HARMLESS_SETS = ("xstest", "project")
HARMLESS_FILES = {
    "xstest": ("xstest", "xstest_prompts.csv"),
    "project": ("harmless", "harmless_requests.csv"),
}


@dataclass(frozen=True)
class DefendConfig:
    model: str = "llamacpp/smollm2"
    defenses: tuple[str, ...] = ("none", "cac:1")
    judges: tuple[str, ...] = ("refusal", "refusal-extended", "paper")
    check_prompt: str = "0"  # official index, name or text (`resolve_check_prompt`)
    family: str = "auto"  # whose ICD demos (and, with system_prompt="family", system prompt)
    system_prompt: str | None = None  # None: the chat template's own; "family": the protocol's
    max_new_tokens: int = 64
    temperature: float = 0.0  # greedy (Vicuna); the official Llama-2 runs sample at 0.6
    top_p: float = 1.0  # the official Llama-2 runs: 0.9
    harmless: bool = True  # measure over-refusal
    harmless_set: str = "xstest"  # XSTest's safe prompts, or "project" (52 written requests)
    harmless_limit: int | None = None
    over_refusal_judge: str = "xstest-strings"
    batch_size: int = 16
    seed: int = 0
    base_url: str | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)
    # attack directories read: noted in the manifest, not part of the run's identity (the
    # prompts' fingerprint is), so a moved attack directory still resumes
    sources: tuple[str, ...] = ()


def harmless_requests(limit: int | None = None, which: str = "xstest") -> list[dict[str, Any]]:
    """Safe prompts for over-refusal: XSTest's (type-interleaved) or the project's 52."""
    if which == "xstest":
        return [
            {"id": p.id, "goal": p.prompt, "prompt": p.prompt, "set": "xstest", "type": p.type}
            for p in safe_prompts(limit)
        ]
    if which != "project":
        raise ValueError(f"unknown harmless set {which!r}: use {', '.join(HARMLESS_SETS)}")
    rows, _ = read_csv(vendored("harmless", "harmless_requests.csv"), ("goal",), strict=True)
    out = [
        {"id": f"harmless:{line}", "goal": r["goal"], "prompt": r["goal"], "set": "harmless"}
        for line, r in rows
    ]
    return out[:limit] if limit else out


def _system_base(cfg: DefendConfig, family: str) -> str | None:
    if cfg.system_prompt == "family":
        return str(protocol()["jailbreak"]["system_prompts"][family])
    return cfg.system_prompt


def validate_config(cfg: DefendConfig, adaptive_defenses: tuple[str, ...] = ()) -> None:
    """Every spec of `cfg` checked (one clear error) before anything is written or loaded."""
    family = resolve_family(cfg.family, cfg.model)
    resolve_check_prompt(cfg.check_prompt)
    for d in (*cfg.defenses, *adaptive_defenses):
        parse_defense(d, family=family)
    for j in cfg.judges:
        validate_judge_spec(j)
    if cfg.harmless:
        validate_classifier_spec(cfg.over_refusal_judge)
    if cfg.harmless_set not in HARMLESS_SETS:
        raise ValueError(
            f"unknown harmless set {cfg.harmless_set!r}: use {', '.join(HARMLESS_SETS)}"
        )


def _served(spec: str, family: str, base_url: str | None) -> dict[str, Any]:
    return served_options(parse(family, spec), base_url)


def run_defend(
    cfg: DefendConfig,
    prompts: list[dict[str, Any]],
    out: str | Path,
    *,
    adaptive: list[tuple[str, list[dict[str, Any]]]] = (),  # type: ignore[assignment]
    backend: Backend | None = None,
    progress: bool = True,
) -> DefendMetrics:
    """Run every defence on `prompts` (and on the safe prompts), plus each ``(defence,
    prompts)`` of `adaptive`; returns the metrics (also written to metrics.json)."""
    validate_config(cfg, tuple(d for d, _ in adaptive))  # before any work
    family = resolve_family(cfg.family, cfg.model)
    check_name, check_text = resolve_check_prompt(cfg.check_prompt)
    specs = list(dict.fromkeys([*cfg.defenses, *(d for d, _ in adaptive)]))
    defenses = {d: parse_defense(d, family=family) for d in specs}
    system_base = _system_base(cfg, family)
    over_refusal = [cfg.over_refusal_judge] if cfg.harmless else []
    run = RunDir.open(
        out,
        study="jailbreak-defend",
        config={
            **{k: v for k, v in cfg.__dict__.items() if k != "sources"},
            "family_resolved": family,
            "check_prompt_name": check_name,
            "check_prompt_text": check_text,
            "system_prompt_resolved": system_base,
            "n_prompts": len(prompts),
            "adaptive": [{"defense": d, "n_prompts": len(p)} for d, p in adaptive],
        },
        model=cfg.model,
        seed=cfg.seed,
        inputs={
            "attack_prompts": prompts,
            "adaptive_prompts": [p for _, adv in adaptive for p in adv],
            "harmless": (vendored(*HARMLESS_FILES[cfg.harmless_set]) if cfg.harmless else None),
            **backend_inputs(cfg.model, cfg.base_url),
            # the judges' and the over-refusal classifier's model files (or servers)
            **judge_inputs(cfg.judges, base_url=cfg.base_url, shared=cfg.model),
            **judge_inputs(
                over_refusal, family="over-refusal", base_url=cfg.base_url, shared=cfg.model
            ),
        },
    )
    base = backend or get_backend(cfg.model, base_url=cfg.base_url, **cfg.backend_options)
    run.note(backend=describe_backend(base), sources=list(cfg.sources))
    cache: dict[str, Any] = {cfg.model: base}
    # a judge served by an OpenAI-compatible server shares --base-url, as checkers do
    judges = [
        make_judge(j, backends=cache, backend_options=_served(j, "judge", cfg.base_url))
        for j in cfg.judges
    ]
    classifier = (
        make_classifier(
            cfg.over_refusal_judge,
            backends=cache,
            backend_options=_served(cfg.over_refusal_judge, "over-refusal", cfg.base_url),
        )
        if cfg.harmless
        else None
    )
    harmless = harmless_requests(cfg.harmless_limit, cfg.harmless_set) if cfg.harmless else []
    refusals = protocol()["jailbreak"]["refusal_substrings_paper"]

    plans: list[tuple[RowPlan, Defense, list[dict[str, Any]]]] = []
    plain = [{**p, "set": "harmful"} for p in prompts]
    for d in cfg.defenses:
        items = plain + harmless
        plans.append((_plan(d, d, False, plain), defenses[d], items))
    for d, adv in adaptive:
        items = [{**p, "set": "harmful"} for p in adv]
        plans.append((_plan(f"{d} (adaptive)", d, True, items), defenses[d], items))
        if d not in cfg.defenses and harmless:  # its over-refusal, measured once
            plans.append((_plan(d, d, False, []), defenses[d], harmless))

    def record(plan: RowPlan, item: dict[str, Any], conv: Conversation) -> dict[str, Any]:
        first = conv.answers()[0]
        last = conv.final_answer() or conv.answers()[-1]
        verdicts = {}
        for j in judges:
            a, b = j.judge(
                [
                    JudgeInput(item["goal"], first.content, first.finish_reason),
                    JudgeInput(item["goal"], last.content, last.finish_reason),
                ]
            )
            verdicts[j.name] = Verdicts(
                a.jailbroken, b.jailbroken, a.score, b.score, a.output, b.output
            )
        label = None
        if item["set"] == "xstest" and classifier is not None:
            label = classifier.classify([item["prompt"]], [last.content])[0]
        return DefendRecord(
            id=f"{plan.key}|{item['id']}",
            row=plan.key,
            defense=plan.defense,
            adaptive=plan.adaptive,
            set=item["set"],
            goal=item["goal"],
            prompt=item["prompt"],
            attack=item.get("attack"),
            turns=tuple(t.to_dict() for t in conv.turns),
            initial_answer=first.content,
            final_answer=last.content,
            initial_finish=first.finish_reason,
            final_finish=last.finish_reason,
            verdicts=verdicts,
            over_refusal=label,
            prompt_type=item.get("type"),
        ).to_dict()

    params = GenParams(
        max_new_tokens=cfg.max_new_tokens,
        seed=cfg.seed,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
    )
    for plan, defense, items in plans:
        model = (
            SmoothLLMBackend(base, defense.smooth_copies, refusals, seed=cfg.seed)
            if defense.smooth_copies
            else base
        )
        run_samples(
            run,
            items,
            sample_id=lambda it, p=plan: f"{p.key}|{it['id']}",  # type: ignore[misc]
            conversation=lambda it, p=plan, d=defense: Conversation(  # type: ignore[misc]
                id=f"{p.key}|{it['id']}",
                question=it["prompt"] + d.question_suffix,
                system=d.system(system_base),
            ),
            record=lambda it, conv, p=plan: record(p, it, conv),  # type: ignore[misc]
            backend=model,
            check=defense_check(defense, check_text, params),
            config=cac_config(defense, params),
            window=cfg.batch_size,
            progress=progress,
        )
    wanted = {f"{p.key}|{it['id']}" for p, _, items in plans for it in items}
    records = [DefendRecord.from_dict(r) for r in run.records() if r["id"] in wanted]
    failed = {str(f["id"]) for f in run.failures() if f.get("id") in wanted}
    metrics = compute_metrics(
        records,
        [p for p, _, _ in plans if p.harmful_ids or p.adaptive or p.key in cfg.defenses],
        [j.name for j in judges],
        over_refusal_judge=cfg.over_refusal_judge if cfg.harmless else None,
        failed_ids=failed,
    )
    run.write_json("metrics.json", metrics.to_dict())
    run.finish(n_records=len(records), failed=metrics.failed)
    if records:
        from selfcorrect.report import build_report

        build_report(run.path)
    return metrics


def _plan(key: str, defense: str, adaptive: bool, items: list[dict[str, Any]]) -> RowPlan:
    attacks = sorted({str(i.get("attack")) for i in items if i.get("set") == "harmful"})
    return RowPlan(
        key=key,
        defense=defense,
        adaptive=adaptive,
        attack=", ".join(attacks) or None,
        harmful_ids=tuple(f"{key}|{i['id']}" for i in items if i.get("set") == "harmful"),
    )
