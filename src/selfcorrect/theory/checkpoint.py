"""Checkpoints of the theory lab: tensors and numbers only, loaded without running any code.

A checkpoint is a dict of state dicts, a generator state (a uint8 tensor), and plain numbers, so
``torch.load(weights_only=True)`` reads it; a file that needs anything else to unpickle (a
crafted checkpoint whose unpickling would call a function) is refused with one line naming it,
and nothing in it runs. Writes go to a temporary file then an atomic rename, so a killed run
leaves either the previous checkpoint or the new one.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (unsafe, unreadable or incomplete), naming its file."""


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, *, need: tuple[str, ...] = ("model",)) -> dict[str, Any]:
    """Load with ``weights_only=True``, every tensor on the CPU; every failure is a
    `CheckpointError` naming `path`.

    The tensors stay on the CPU on purpose: ``load_state_dict`` then copies the model's onto its
    device and moves the optimiser's state to its parameters' devices, keeping each ``step``
    counter where the optimiser wants it (on the CPU unless fused or capturable). Mapping the
    whole file onto a GPU would leave those counters on the GPU."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there (train the model first)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
        if found:
            raise CheckpointError(
                f"{path}: refused: loading it would call {found.group(1)}, and a checkpoint "
                "holds only tensors and numbers (nothing in it was run)"
            ) from exc
        reason = re.search(r"WeightsUnpickler error: \s*([^\n]+)", str(exc))
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({reason.group(1).strip() if reason else 'unpickling failed'})"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError) as exc:
        raise CheckpointError(f"{path}: could not be loaded ({_first_line(exc)})") from exc
    if not isinstance(state, dict) or any(key not in state for key in need):
        raise CheckpointError(f"{path}: not a theory checkpoint (needs keys {', '.join(need)})")
    return state


def _first_line(exc: BaseException) -> str:
    """The exception's type and the first line of its text: a truncated file, a full disk and
    an out-of-memory error read differently."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
