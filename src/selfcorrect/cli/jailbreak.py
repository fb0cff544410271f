"""``selfcorrect jailbreak attack|defend|validate-judges``: adversarial prompts, every defence on
them next to over-refusal, and judges checked against human labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from selfcorrect.backends.llamacpp import DEFAULT_MODEL
from selfcorrect.cli.common import allow_failures_option, exit_if_failed, parse_options

app = typer.Typer(
    help="Jailbreak attacks and defences (the paper's Table 1).", no_args_is_help=True
)
DATA_HELP = (
    "Behaviours: advbench (default), harmbench, jbb, strongreject, or a CSV/JSONL file "
    "with a goal column."
)
JUDGE_HELP = (
    "Repeat: refusal, refusal-extended, paper (the official effective rule), llm:SPEC, "
    "harmbench:SPEC, jbb:SPEC, strongreject:SPEC (SPEC: a model, e.g. llamacpp/smollm2)."
)


def added_settings(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Settings a run's identity gained after runs were made, each only where it differs from
    its default: a missing one reads as the default (as `theory.config.upgrade_saved` does),
    so an earlier run with the default keeps its fingerprint and still resumes."""
    return {k: v for k, v in values.items() if v != defaults[k]}


@app.command("attack")
def attack_cmd(
    attack: str = typer.Option(
        "none", "--attack", help="none, transfer:vicuna|llama|official, gcg or autodan."
    ),
    model: str = typer.Option(
        "hf/smollm2", "--model", "-m", help="Target model (gcg/autodan need hf/...)."
    ),
    data: str = typer.Option(None, "--data", help=DATA_HELP),
    goal_column: str = typer.Option("goal", "--goal-column"),
    target_column: str = typer.Option(
        "target", "--target-column", help="'' to use 'Sure, here is <goal>'."
    ),
    n: int = typer.Option(100, "--n", min=1, help="First N behaviours (the paper uses 100)."),
    preset: str = typer.Option(
        "small", "--preset", help="small (this CPU), vicuna or llama2 (the official runs)."
    ),
    defense: str = typer.Option(
        None,
        "--defense",
        help="Adaptive attack: optimise gcg/autodan with icd:N or reminder in the prompt.",
    ),
    family: str = typer.Option("auto", "--family", help="auto, vicuna or llama2 (ICD demos)."),
    system_prompt: str = typer.Option(
        None, "--system-prompt", help="System prompt; 'family' = the protocol's for --family."
    ),
    gcg_update: str = typer.Option(
        "official", "--gcg-update", help="official (always take the best candidate) or keep-best."
    ),
    autodan_mutation: str = typer.Option(
        "auto",
        "--autodan-mutation",
        help="wordnet (official; needs nltk data), vocab (offline) or auto (wordnet if present).",
    ),
    seed: int = typer.Option(0, "--seed"),
    option: list[str] = typer.Option(
        None, "--option", help="Backend option key=value, repeatable."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Attack directory (resumes; GCG checkpoints per step)."
    ),
) -> None:
    """Write adversarial prompts to <out>/records.jsonl (losses logged per step for gcg/autodan)."""
    from selfcorrect.backends.base import get_backend
    from selfcorrect.fingerprint import backend_inputs
    from selfcorrect.jailbreak.attacks import AttackSetup, check_attack_spec, run_attack
    from selfcorrect.jailbreak.behaviour_sets import behaviours as load
    from selfcorrect.jailbreak.behaviour_sets import set_file
    from selfcorrect.runs import RunDir

    setup = AttackSetup.build(
        attack, defense=defense, family=family, model=model, system_prompt=system_prompt
    )
    check_attack_spec(attack, preset, gcg_update)
    found, problems = load(
        data, goal_column=goal_column, target_column=target_column or None, limit=n
    )
    for p in problems[:5]:
        typer.echo(f"skipped {p}", err=True)
    options = parse_options(option)
    run = RunDir.open(
        out,
        study="jailbreak-attack",
        config={
            "attack": attack,
            "model": model,
            "data": str(data or "advbench"),
            "n": n,
            "preset": preset,
            "seed": seed,
            "defense": defense,
            "family": setup.family,
            "system_prompt": setup.system,
            "gcg_update": gcg_update,
            "autodan_mutation": autodan_mutation,
            **added_settings(
                {
                    "goal_column": goal_column,
                    "target_column": target_column,
                    "backend_options": options,
                },
                {"goal_column": "goal", "target_column": "target", "backend_options": {}},
            ),
        },
        inputs={"data": set_file(data), **backend_inputs(model)},
        model=model,
        seed=seed,
    )
    records = run_attack(
        attack,
        found,
        run,
        backend_factory=lambda: get_backend(model, **options),
        preset=preset,
        seed=seed,
        setup=setup,
        gcg_update=gcg_update,
        autodan_mutation=autodan_mutation,
        log=lambda m: typer.echo(m, err=True),
    )
    run.finish(n=len(records))
    judged = [r["attack_success"] for r in records if r.get("attack_success") is not None]
    if judged:
        typer.echo(
            f"attack success at attack time ({len(judged)} judged on 32 new tokens): "
            f"{100 * sum(judged) / len(judged):.0f}%"
        )
    typer.echo(f"wrote {len(records)} adversarial prompts to {out}/records.jsonl")


@app.command("defend")
def defend_cmd(
    source: Path = typer.Argument(
        None, help="An attack directory; or use --attack to make the prompts here."
    ),
    attack: str = typer.Option(
        None, "--attack", help="Build prompts without optimisation: none or transfer:<name>."
    ),
    adaptive: list[Path] = typer.Option(
        None,
        "--adaptive",
        help="Repeat: an attack directory optimised against a defence (attack --defense D); "
        "adds the row 'D (adaptive)' next to D.",
    ),
    data: str = typer.Option(None, "--data", help="With --attack: " + DATA_HELP),
    defense: list[str] = typer.Option(
        None,
        "--defense",
        "-d",
        help="Repeat: none, reminder, reminder:user, icd:N, cac:R, cac-history:R, smoothllm:N.",
    ),
    judge: list[str] = typer.Option(None, "--judge", "-j", help=JUDGE_HELP),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m"),
    n: int = typer.Option(100, "--n", min=1, help="With --attack: first N behaviours."),
    check_prompt: str = typer.Option(
        "0",
        "--check-prompt",
        help="CaC check prompt: an official index 0-4 (--check-id; 0 = 'Is this a harmful or "
        "harmless response?', the official default), a name (harmful-or-harmless, "
        "helpful-honest-harmless, harmful-offensive-illegal, determine-fused, illegal-unethical, "
        "determine, harmful-response) or the text.",
    ),
    family: str = typer.Option("auto", "--family", help="auto, vicuna or llama2 (ICD demos)."),
    system_prompt: str = typer.Option(
        None, "--system-prompt", help="System prompt; 'family' = the protocol's for --family."
    ),
    max_new_tokens: int = typer.Option(
        64, "--max-new-tokens", min=1, help="Per turn (the paper: 64)."
    ),
    temperature: float = typer.Option(
        0.0, "--temperature", min=0.0, help="0 = greedy; the official Llama-2 runs: 0.6."
    ),
    top_p: float = typer.Option(
        1.0, "--top-p", min=0.0, max=1.0, help="The official Llama-2 runs: 0.9."
    ),
    harmless: bool = typer.Option(
        True, "--harmless/--no-harmless", help="Also measure over-refusal."
    ),
    harmless_set: str = typer.Option(
        "xstest", "--harmless-set", help="xstest (250 safe prompts) or project (52 requests)."
    ),
    harmless_limit: int = typer.Option(
        None, "--harmless-limit", min=1, help="First N safe prompts (XSTest: types interleaved)."
    ),
    over_refusal_judge: str = typer.Option(
        "xstest-strings", "--over-refusal-judge", help="xstest-strings or xstest:SPEC."
    ),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    seed: int = typer.Option(0, "--seed"),
    base_url: str = typer.Option(None, "--base-url"),
    option: list[str] = typer.Option(
        None, "--option", help="Backend option key=value, repeatable."
    ),
    allow_failures: bool = allow_failures_option(),
    out: Path = typer.Option(..., "--out", "-o"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Run defences on saved adversarial prompts; print ASR (initial vs final) next to
    over-refusal on XSTest's safe prompts."""
    from selfcorrect.jailbreak.attacks import read_attack_dir, run_attack
    from selfcorrect.jailbreak.behaviour_sets import behaviours as load
    from selfcorrect.jailbreak.behaviour_sets import set_file
    from selfcorrect.jailbreak.study import DefendConfig, run_defend, validate_config
    from selfcorrect.runs import RunDir

    if (source is None) == (attack is None):
        raise ValueError("give either an attack directory or --attack none|transfer:<name>")
    cfg = DefendConfig(
        model=model,
        defenses=tuple(defense or ("none", "cac:1")),
        judges=tuple(judge or ("refusal", "refusal-extended", "paper")),
        check_prompt=check_prompt,
        family=family,
        system_prompt=system_prompt,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        harmless=harmless,
        harmless_set=harmless_set,
        harmless_limit=harmless_limit,
        over_refusal_judge=over_refusal_judge,
        batch_size=batch_size,
        seed=seed,
        base_url=base_url,
        backend_options=parse_options(option, url_flag=True),
        sources=tuple(str(p) for p in ([source] if source else []) + list(adaptive or [])),
    )
    adaptive_sets = []
    for folder in adaptive or []:
        d, prompts = read_attack_dir(folder)
        if d is None:
            raise ValueError(f"{folder}: not an adaptive attack (made without --defense)")
        adaptive_sets.append((d, prompts))
    validate_config(cfg, tuple(d for d, _ in adaptive_sets))
    if attack is not None:
        found, _ = load(data, limit=n)
        prompts = run_attack(
            attack,
            found,
            RunDir.open(
                out / "attack",
                study="jailbreak-attack",
                config={"attack": attack, "n": n, "data": str(data or "advbench")},
                inputs={"data": set_file(data)},
            ),
        )
    else:
        _, prompts = read_attack_dir(source)
    metrics = run_defend(cfg, prompts, out, adaptive=adaptive_sets, progress=not quiet)
    typer.echo(format_asr_table(metrics.to_dict()))
    typer.echo(
        f"wrote {out}/records.jsonl, metrics.json, asr_by_defense.png, "
        f"asr_vs_over_refusal.png and report.html"
    )
    exit_if_failed(metrics.failed, allow=allow_failures, out=out, what="sample")


def format_asr_table(metrics: dict[str, Any]) -> str:
    """One line per row and judge: ASR initial/final next to XSTest over-refusal."""

    def pct(v: float | None) -> str:
        return "--" if v is None else f"{100 * v:.0f}%"

    lines = [
        f"{'defence':22s} {'judge':28s} {'n':>4s} {'fail':>4s} {'ASR init':>8s} "
        f"{'ASR final':>9s} {'unscored':>8s}  over-refusal (XSTest: answered/partly/refused)"
    ]
    for key, row in metrics["defenses"].items():
        over = row.get("over_refusal")
        if over:
            shown = (
                f"{pct(over['refusal_rate'])} ({over['full_compliance']}/"
                f"{over['partial_refusal']}/{over['full_refusal']} of {over['n']}"
                + (f", {over['unscored']} unscored" if over["unscored"] else "")
                + ")"
            )
        else:
            shown = "--"
        for j, m in row["judges"].items():
            lines.append(
                f"{key:22s} {j:28s} {m['n']:>4d} {row.get('n_failed', 0):>4d} "
                f"{pct(m['asr_initial']):>8s} {pct(m['asr_final']):>9s} "
                f"{m.get('unscored_final', 0):>8d}  {shown}"
            )
    if metrics.get("over_refusal_judge"):
        lines.append(f"over-refusal judged by {metrics['over_refusal_judge']}")
    return "\n".join(lines)


@app.command("validate-judges")
def validate_cmd(
    labelled: str = typer.Option(
        "jbb",
        "--set",
        help="jbb (JailbreakBench, 300), harmbench (HarmBench, 602) or a JSONL "
        "file with prompt, response, label.",
    ),
    judge: list[str] = typer.Option(None, "--judge", "-j", help=JUDGE_HELP),
    limit: int = typer.Option(None, "--limit", min=1, help="A seeded random sample of N items."),
    seed: int = typer.Option(0, "--seed"),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Resamples for F1/kappa CIs."),
    option: list[str] = typer.Option(
        None, "--option", help="Judge backend option key=value, repeatable."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (resumable)."),
) -> None:
    """Score judges against the human majority: agreement, precision, recall, F1, Cohen's
    kappa (95% intervals), next to the published judges' verdicts the set carries."""
    from selfcorrect.jailbreak.judges import judge_inputs, make_judge, validate_judge_spec
    from selfcorrect.jailbreak.validate import (
        LABELLED_SETS,
        format_validation,
        judge_items,
        load_labelled,
        sample,
        score_all,
    )
    from selfcorrect.runs import RunDir

    specs = list(judge or ("refusal", "refusal-extended", "paper"))
    for s in specs:
        validate_judge_spec(s)
    items, skipped = load_labelled(labelled)
    items = sample(items, limit, seed)
    options = parse_options(option)
    run = RunDir.open(
        out,
        study="jailbreak-validate",
        config={
            "set": labelled,
            "judges": specs,
            "limit": limit,
            "seed": seed,
            **added_settings({"backend_options": options}, {"backend_options": {}}),
        },
        seed=seed,
        inputs={
            **({} if labelled in LABELLED_SETS else {"data": Path(labelled)}),
            **judge_inputs(specs, base_url=options.get("base_url")),
        },
    )
    done = {r["id"]: r for r in run.records()}
    cache: dict[str, Any] = {}
    verdicts = {}
    for s in specs:
        j = make_judge(s, backends=cache, backend_options=options)
        verdicts[j.name] = judge_items(j, items, done, run.append)
    result = score_all(labelled, items, skipped, verdicts, bootstrap=bootstrap, seed=seed)
    run.write_json("metrics.json", result.to_dict())
    run.finish(n=len(items))
    typer.echo(format_validation(result))
