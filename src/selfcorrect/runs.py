"""Run directories: resolved config, manifest, append-only records, resume, metrics.

Layout of ``<out>/``:

- ``config.yaml``: the fully resolved configuration plus the command line;
- ``manifest.json``: package versions, git revision, model, seed, start and end times;
- ``records.jsonl``: one JSON object per *finished* sample, appended and flushed (fsync) as each
  finishes; a re-run skips the ids already there;
- ``failures.jsonl``: samples that failed (with the error); a re-run retries them;
- ``metrics.json``, plots and ``report.html`` written at the end.

A killed run leaves at most one torn last line in ``records.jsonl``; opening the run drops it
(the sample is simply redone), so no sample is lost or duplicated.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

RECORDS = "records.jsonl"
FAILURES = "failures.jsonl"


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (different config, corrupt records...)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_revision(start: Path | None = None) -> str | None:
    here = start or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _read_jsonl_tolerant(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Records of a JSONL file written by us, and the byte length of its intact part.

    Each record is written as one line ending in a newline, so bytes after the last newline
    are a torn write from a killed run: they are ignored (that sample is redone). A bad line
    before that is corruption and raises `RunDirError` naming the line.
    """
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    complete, newline, _torn = data.rpartition(b"\n")
    records: list[dict[str, Any]] = []
    for i, line in enumerate(complete.split(b"\n") if newline else []):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as exc:
            raise RunDirError(f"{path}:{i + 1}: corrupt record ({exc})") from exc
    return records, len(complete) + len(newline)


class RunDir:
    """One run's directory. Create it with `RunDir.open`."""

    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        self.path = path
        self.config = config

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        study: str,
        config: Mapping[str, Any],
        model: str | None = None,
        seed: int | None = None,
        argv: list[str] | None = None,
    ) -> RunDir:
        """Create `path` or resume it; refuses to resume a run made with another config."""
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        resolved = {"study": study, **dict(config)}
        config_file = root / "config.yaml"
        if config_file.exists():
            previous = yaml.safe_load(config_file.read_text()) or {}
            previous.pop("command", None)
            if previous != json.loads(json.dumps(resolved)):
                diff = sorted(
                    k
                    for k in set(previous) | set(resolved)
                    if previous.get(k) != json.loads(json.dumps(resolved.get(k)))
                )
                raise RunDirError(
                    f"{root} holds a run with a different configuration (differs in: "
                    f"{', '.join(diff)}); use another --out directory to start a new run"
                )
        else:
            text = yaml.safe_dump(
                {**json.loads(json.dumps(resolved)), "command": argv or sys.argv}, sort_keys=False
            )
            config_file.write_text(text)
        run = cls(root, resolved)
        manifest = run.manifest()
        manifest.setdefault("started", _now())
        manifest.setdefault("resumed", [])
        if (root / RECORDS).exists():
            manifest["resumed"].append(_now())
        manifest.update(
            {
                "study": study,
                "model": model,
                "seed": seed,
                "git_revision": git_revision(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "versions": package_versions(
                    ["selfcorrect", "torch", "llama_cpp_python", "transformers", "openai"]
                ),
            }
        )
        manifest.pop("finished", None)
        run.write_json("manifest.json", manifest)
        run._repair_tail()
        return run

    # --- records -------------------------------------------------------------------------
    def _repair_tail(self) -> None:
        """Drop a torn last line (a killed writer) so the next append starts a fresh line."""
        for name in (RECORDS, FAILURES):
            path = self.path / name
            if not path.exists():
                continue
            _, good_end = _read_jsonl_tolerant(path)
            if good_end < path.stat().st_size:
                with open(path, "r+b") as fh:
                    fh.truncate(good_end)

    def records(self) -> list[dict[str, Any]]:
        return _read_jsonl_tolerant(self.path / RECORDS)[0]

    def finished_ids(self, key: str = "id") -> set[str]:
        return {str(r[key]) for r in self.records() if key in r}

    def failures(self) -> list[dict[str, Any]]:
        return _read_jsonl_tolerant(self.path / FAILURES)[0]

    def append(self, record: Mapping[str, Any], *, failed: bool = False) -> None:
        """Append one record and flush it to disk before returning."""
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with open(self.path / (FAILURES if failed else RECORDS), "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    # --- other files ---------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        file = self.path / "manifest.json"
        return json.loads(file.read_text()) if file.exists() else {}

    def write_json(self, name: str, obj: Any) -> Path:
        file = self.path / name
        tmp = file.with_suffix(file.suffix + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
        tmp.replace(file)
        return file

    def finish(self, **summary: Any) -> None:
        manifest = self.manifest()
        manifest["finished"] = _now()
        manifest.update(summary)
        self.write_json("manifest.json", manifest)
