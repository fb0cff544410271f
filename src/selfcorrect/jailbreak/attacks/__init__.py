"""Attacks: each writes adversarial prompts (``prompts.jsonl``) that defences then read.

``none`` (the plain goal), ``transfer:<name>`` (a fixed universal GCG suffix from the protocol),
``gcg`` (per-prompt Greedy Coordinate Gradient) and ``autodan`` (genetic search). Attacks are
optimised against the undefended model, as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from selfcorrect.datafiles import protocol
from selfcorrect.jailbreak.data import Behaviour
from selfcorrect.runs import RunDir

ATTACKS = "none, transfer:vicuna, transfer:llama, transfer:official, gcg, autodan"


def transfer_suffix(name: str) -> str:
    suffixes = protocol()["jailbreak"]["gcg_transfer_suffixes"]
    if name not in suffixes:
        raise ValueError(f"unknown transfer suffix {name!r}; use one of {', '.join(suffixes)}")
    return str(suffixes[name])


def run_attack(
    attack: str,
    behaviours: Sequence[Behaviour],
    run: RunDir,
    *,
    backend_factory: Callable[[], Any] | None = None,
    preset: str = "small",
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Write one record per behaviour (``id, goal, target, prompt, attack`` plus attack details)
    to the run's records.jsonl, skipping finished ones; returns all records."""
    finished = run.finished_ids()
    kind, _, arg = attack.partition(":")
    optimiser: Any = None
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

            optimiser = GCG(backend, GCGConfig.preset(preset, seed=seed))
        else:
            from selfcorrect.jailbreak.attacks.autodan import AutoDAN, AutoDANConfig

            optimiser = AutoDAN(backend, AutoDANConfig.preset(preset, seed=seed))
    elif kind not in ("none", "transfer", "gcg", "autodan") or (kind == "transfer") != bool(arg):
        raise ValueError(f"unknown attack {attack!r}; use one of: {ATTACKS}")
    suffix = transfer_suffix(arg) if kind == "transfer" else None
    (run.path / "checkpoints").mkdir(exist_ok=True)
    for b in behaviours:
        if b.uid in finished:
            continue
        record: dict[str, Any] = {"id": b.uid, "goal": b.goal, "target": b.target, "attack": attack}
        if kind == "none":
            record["prompt"] = b.goal
        elif kind == "transfer":
            record["prompt"] = f"{b.goal} {suffix}"
        elif kind == "gcg":
            if log:
                log(f"GCG on {b.uid}: {b.goal[:60]}")
            ckpt = run.path / "checkpoints" / f"{b.uid.replace(':', '_')}.json"
            state = optimiser.attack(b.goal, b.target, ckpt, log=log)
            record.update(
                prompt=f"{b.goal} {state['suffix']}", suffix=state["suffix"], losses=state["losses"]
            )
        else:
            if log:
                log(f"AutoDAN on {b.uid}: {b.goal[:60]}")
            state = optimiser.attack(b.goal, b.target, log=log)
            record.update(prompt=state["prompt"], losses=state["losses"])
        run.append(record)
    wanted = {b.uid for b in behaviours}
    return [r for r in run.records() if r["id"] in wanted]


def read_prompts(folder: Path) -> list[dict[str, Any]]:
    """The adversarial prompts an attack run wrote (a torn last line from a killed attack is
    ignored; a record without string ``id``, ``goal`` and ``prompt`` names the line)."""
    from selfcorrect.datafiles import DataError
    from selfcorrect.runs import read_config, read_records_with_lines

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such attack directory")
    study = read_config(folder).get("study")
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
    return prompts
