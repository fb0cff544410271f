"""Attacks: each writes adversarial prompts (``records.jsonl``) that defences then read.

``none`` (the plain goal), ``transfer:<name>`` (a fixed universal GCG suffix from the protocol),
``gcg`` (per-prompt Greedy Coordinate Gradient) and ``autodan`` (the genetic search). By default
attacks are optimised against the undefended model; with a defence (`AttackSetup`, ``icd:N`` or
``reminder``) GCG and AutoDAN are optimised with that defence in the prompt, as the official
scripts' adaptive baselines (``main.py --defense icd|remind``), and each optimised prompt is
judged at attack time on 32 new tokens with the official rule (refusal strings, ``</s>``
matching an answer that ended within the limit; GCG with the paper's 8 strings, AutoDAN with
the extended list, as the official code).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfcorrect.backends.base import Chat, GenParams, Message
from selfcorrect.datafiles import protocol
from selfcorrect.jailbreak.data import Behaviour
from selfcorrect.runs import RunDir
from selfcorrect.specs import parse

ADAPTIVE_DEFENSES = "icd:N or reminder"
ATTACK_TIME_TOKENS = 32  # the official scripts judge the optimised prompt on 32 new tokens
GCG_UPDATES = ("official", "keep-best")


def transfer_suffix(name: str) -> str:
    suffixes = protocol()["jailbreak"]["gcg_transfer_suffixes"]
    if name not in suffixes:
        raise ValueError(f"unknown transfer suffix {name!r}; use one of {', '.join(suffixes)}")
    return str(suffixes[name])


@dataclass(frozen=True)
class AttackSetup:
    """The context an attack is optimised and judged in: system prompt and demos."""

    defense: str | None = None
    family: str = "vicuna"
    system: str | None = None
    demos: tuple[tuple[str, str], ...] = ()

    def context(self) -> Chat:
        msgs = [Message("system", self.system)] if self.system else []
        for q, a in self.demos:
            msgs += [Message("user", q), Message("assistant", a)]
        return tuple(msgs)

    @classmethod
    def build(
        cls,
        attack: str,
        *,
        defense: str | None = None,
        family: str = "auto",
        model: str = "",
        system_prompt: str | None = None,
    ) -> AttackSetup:
        from selfcorrect.jailbreak.defenses import parse_defense, resolve_family

        fam = resolve_family(family, model)
        base = (
            str(protocol()["jailbreak"]["system_prompts"][fam])
            if system_prompt == "family"
            else system_prompt
        )
        if defense is None:
            return cls(None, fam, base)
        if attack not in ("gcg", "autodan"):
            raise ValueError(
                f"--defense makes an adaptive gcg or autodan attack, not {attack!r}; "
                "run fixed prompts through `jailbreak defend -d ...` instead"
            )
        spec = parse("defense", defense)
        if not (spec.kind == "icd" or (spec.kind == "reminder" and spec.value is None)):
            raise ValueError(f"adaptive attacks take {ADAPTIVE_DEFENSES}, not {defense!r}")
        d = parse_defense(defense, family=fam)
        return cls(defense, fam, d.system(base), d.demos)


def check_attack_spec(attack: str, preset: str = "small", gcg_update: str = "official") -> None:
    kind = parse("attack", attack).kind
    if gcg_update not in GCG_UPDATES:
        raise ValueError(f"unknown --gcg-update {gcg_update!r}: use {', '.join(GCG_UPDATES)}")
    if kind == "gcg":
        from selfcorrect.jailbreak.attacks.gcg import GCGConfig

        GCGConfig.preset(preset)
    if kind == "autodan":
        from selfcorrect.jailbreak.attacks.autodan import AutoDANConfig

        AutoDANConfig.preset(preset)


def attack_time_success(
    backend: Any, setup: AttackSetup, prompt: str, strings: Sequence[str], seed: int
) -> tuple[str, bool]:
    """The official attack-time check: 32 new tokens under the attack's context, jailbroken iff
    no refusal string occurs and (``</s>``) the answer did not end within the limit."""
    from selfcorrect.jailbreak.judges import JudgeInput, PaperJudge

    chat = setup.context() + (Message("user", prompt),)
    out = backend.generate([chat], GenParams(max_new_tokens=ATTACK_TIME_TOKENS, seed=seed))[0]
    verdict = PaperJudge(tuple(strings)).judge([JudgeInput("", out.text, out.finish_reason)])[0]
    return out.text, bool(verdict.jailbroken)


def run_attack(
    attack: str,
    behaviours: Sequence[Behaviour],
    run: RunDir,
    *,
    backend_factory: Callable[[], Any] | None = None,
    preset: str = "small",
    seed: int = 0,
    setup: AttackSetup | None = None,
    gcg_update: str = "official",
    autodan_mutation: str = "auto",
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Write one record per behaviour (``id, goal, target, prompt, attack, defense`` plus attack
    details) to the run's records.jsonl, skipping finished ones; returns all records."""
    check_attack_spec(attack, preset, gcg_update)
    setup = setup or AttackSetup()
    finished = run.finished_ids()
    parsed = parse("attack", attack)
    kind = parsed.kind
    optimiser: Any = None
    backend: Any = None
    p = protocol()["jailbreak"]
    if kind in ("gcg", "autodan") and any(b.uid not in finished for b in behaviours):
        if backend_factory is None:
            raise ValueError(f"the {kind} attack needs a white-box model: use --model hf/<model>")
        backend = backend_factory()
        if not hasattr(backend, "model"):
            raise ValueError(
                f"the {kind} attack needs a transformers model (hf/...), not {backend.name}"
            )
        if kind == "gcg":
            from selfcorrect.jailbreak.attacks.gcg import GCG, GCGConfig

            cfg = GCGConfig.preset(preset, seed=seed, update=gcg_update)
            optimiser = GCG(backend, cfg, context=setup.context())
        else:
            from selfcorrect.jailbreak.attacks.autodan import AutoDAN, AutoDANConfig

            optimiser = AutoDAN(
                backend,
                AutoDANConfig.preset(preset, seed=seed, mutation=autodan_mutation),
                context=setup.context(),
            )
    suffix = transfer_suffix(parsed.value) if kind == "transfer" else None
    (run.path / "checkpoints").mkdir(exist_ok=True)
    for b in behaviours:
        if b.uid in finished:
            continue
        record: dict[str, Any] = {
            "id": b.uid,
            "goal": b.goal,
            "target": b.target,
            "attack": attack,
            "defense": setup.defense,
        }
        if kind == "none":
            record["prompt"] = b.goal
        elif kind == "transfer":
            record["prompt"] = f"{b.goal} {suffix}"
        else:
            if log:
                log(f"{kind} on {b.uid}: {b.goal[:60]}")
            if kind == "gcg":
                ckpt = run.path / "checkpoints" / f"{b.uid.replace(':', '_')}.json"
                state = optimiser.attack(b.goal, b.target, ckpt, log=log)
                record.update(
                    prompt=f"{b.goal} {state['suffix']}",
                    suffix=state["suffix"],
                    losses=state["losses"],
                )
                strings = p["refusal_substrings_paper"]
            else:
                state = optimiser.attack(b.goal, b.target, log=log)
                record.update(
                    prompt=state["prompt"], losses=state["losses"], mutation=state["mutation"]
                )
                strings = p["refusal_substrings_extended"]
            text, success = attack_time_success(backend, setup, record["prompt"], strings, seed)
            record.update(attack_generation=text, attack_success=success)
        run.append(record)
    wanted = {b.uid for b in behaviours}
    return [r for r in run.records() if r["id"] in wanted]


def read_prompts(folder: Path) -> list[dict[str, Any]]:
    """The adversarial prompts an attack run wrote."""
    return read_attack_dir(folder)[1]


def read_attack_dir(folder: Path) -> tuple[str | None, list[dict[str, Any]]]:
    """``(defence optimised against or None, prompts)`` of an attack directory. A torn last line
    from a killed attack is ignored; a record without string ``id``, ``goal`` and ``prompt``
    names the line."""
    from selfcorrect.datafiles import DataError
    from selfcorrect.runs import read_config, read_records_with_lines

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such attack directory")
    config = read_config(folder) if (folder / "config.yaml").exists() else {}
    study = config.get("study")
    if study not in (None, "jailbreak-attack"):
        raise DataError(f"{folder}: not an attack directory (its study is {study!r})")
    path = folder / "records.jsonl"
    if not path.exists():
        raise DataError(
            f"{folder}: no records.jsonl; run `selfcorrect jailbreak attack --out {folder}` first"
        )
    prompts = []
    for line, rec in read_records_with_lines(path):
        bad = [k for k in ("id", "goal", "prompt") if not isinstance(rec.get(k), str)]
        if bad:
            raise DataError(f"{path}:{line}: {', '.join(bad)} must be text in an attack record")
        prompts.append(rec)
    if not prompts:
        raise DataError(f"{path}: no finished adversarial prompts yet")
    defense = config.get("defense")
    return (str(defense) if defense else None), prompts
