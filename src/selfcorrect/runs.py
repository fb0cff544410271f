"""Run directories: one writer, resolved config, fingerprint, append-only records, resume.

Layout of ``<out>/``:

- ``config.yaml``: the fully resolved configuration plus the command line;
- ``manifest.json``: package versions, git revision, model, seed, start and end times, and the
  run's identity: the configuration, its described inputs and their `fingerprint`;
- ``records.jsonl``: one JSON object per *finished* sample, appended and flushed (fsync) as each
  finishes, each carrying the run's fingerprint; a re-run skips the ids already there;
- ``failures.jsonl``: samples that failed (with the error); a re-run retries them;
- ``.lock``: held (``flock``) by the one process writing the run; it holds that process's PID;
- ``metrics.json``, plots and ``report.html`` written at the end.

One writer: `RunDir.open` takes an exclusive OS lock on ``.lock`` and keeps it until `finish`,
`close`, garbage collection or the end of the process (the kernel releases it on any exit, a
kill included, so a stale lock never blocks). A second process is refused with `RunLockedError`.
Within one process, opening the same directory again shares the lock.

A killed run leaves at most one torn last line in ``records.jsonl``; readers ignore it and opening
the run drops it (the sample is simply redone). Lines are split on ``\\n`` only, so U+2028 or
U+0085 inside a record is just text. Records are deduplicated by id on reading (the first is
kept), as a second line of defence.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from selfcorrect.fingerprint import describe, differences, fingerprint, scrub_secrets
from selfcorrect.runfiles import (
    RunDirError,
    dedup_by_id,
    read_config,
    read_json_file,
    read_lines,
    read_records,
    read_records_with_lines,
    write_text_atomic,
)

RECORDS = "records.jsonl"
FAILURES = "failures.jsonl"
LOCK = ".lock"

__all__ = [
    "FAILURES",
    "LOCK",
    "RECORDS",
    "RunDir",
    "RunDirError",
    "RunLockedError",
    "last_opened",
    "read_config",
    "read_json_file",
    "read_records",
    "read_records_with_lines",
]


class RunLockedError(RunDirError):
    """Another process is writing to the run directory (`pid` is None when unknown)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path, self.pid = path, pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"{path} is being written by {holder}; wait for it to finish or use another "
            "--out directory"
        )


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


# --- the writer lock ------------------------------------------------------------------------


@dataclass
class _Held:
    fd: int
    users: int


_HELD: dict[str, _Held] = {}  # real path of a run directory -> the lock this process holds
_LAST_OPENED: list[Path] = []


def _acquire(root: Path) -> str:
    import fcntl

    key = os.path.realpath(root)
    held = _HELD.get(key)
    if held is not None:
        held.users += 1
        return key
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
        raise RunLockedError(root, int(text) if text.isdigit() else None) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = _Held(fd, 1)
    return key


def _release(key: str) -> None:
    held = _HELD.get(key)
    if held is None:
        return
    held.users -= 1
    if held.users <= 0:
        del _HELD[key]
        os.close(held.fd)  # closing the descriptor releases the flock


def last_opened() -> Path | None:
    """The run directory this process opened last (for the interrupt message), or None."""
    return _LAST_OPENED[-1] if _LAST_OPENED else None


# --- the run directory ----------------------------------------------------------------------


def resolved_config(study: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as a run directory records it (config.yaml less its command, the
    manifest's ``config``): plain JSON values, URLs that may carry credentials scrubbed."""
    return scrub_secrets(json.loads(json.dumps({"study": study, **dict(config)}, default=str)))


def _config_diff(previous: Mapping[str, Any], resolved: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(previous) | set(resolved) if previous.get(k) != resolved.get(k))


def _check_records(root: Path, fp: str) -> int:
    """Refuse records of another fingerprint (or none): they are never reused. Returns the
    number of duplicate records (by id) found, after logging them."""
    duplicates = 0
    for name in (RECORDS, FAILURES):
        file = root / name
        rows, _ = read_lines(file)
        foreign = [rec for _, rec in rows if rec.get("fingerprint") != fp]
        if foreign:
            other = sorted({str(rec.get("fingerprint")) for rec in foreign})
            why = (
                "without a fingerprint (written by an older selfcorrect or by hand)"
                if other == ["None"]
                else f"of another configuration or other inputs (fingerprint "
                f"{', '.join(other[:3])}; this run's is {fp})"
            )
            raise RunDirError(
                f"{file} holds {len(foreign)} record(s) {why}; they cannot be reused: use "
                "another --out directory"
            )
        if name == RECORDS:
            duplicates = len(dedup_by_id(rows)[1])
            if duplicates:
                read_records(file)  # logs the duplicates once
    return duplicates


def _write_json(file: Path, obj: Any) -> Path:
    return write_text_atomic(
        file, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"
    )


def _repair_tail(root: Path) -> None:
    """Drop a torn last line (a killed writer) so the next append starts a fresh line."""
    for name in (RECORDS, FAILURES):
        path = root / name
        if not path.exists():
            continue
        _, good_end = read_lines(path)
        if good_end < path.stat().st_size:
            with open(path, "r+b") as fh:
                fh.truncate(good_end)


class RunDir:
    """One run's directory. Create it with `RunDir.open`; `finish` or `close` releases it."""

    def __init__(
        self,
        path: Path,
        config: dict[str, Any],
        *,
        fingerprint: str | None = None,
        lock_key: str | None = None,
    ) -> None:
        self.path = path
        self.config = config
        self.fingerprint = fingerprint
        self.duplicates = 0
        self._release = weakref.finalize(self, _release, lock_key) if lock_key else None

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
        inputs: Mapping[str, Any] | None = None,
    ) -> RunDir:
        """Create `path` or resume it, as its only writer.

        `inputs` names what the config only points to, e.g. ``{"data": Path, "attack_prompts":
        [...], "base_url": str, "model_file": Path}`` (see `selfcorrect.fingerprint`). Resuming
        is refused (`RunDirError`, naming what differs) when the configuration or an input
        differs from the earlier run's, or when ``records.jsonl`` holds a record of another
        fingerprint; `RunLockedError` when another process is writing the directory.
        """
        root = Path(path)
        try:
            root.mkdir(parents=True, exist_ok=True)
            key = _acquire(root)
        except OSError as exc:
            raise RunDirError(
                f"{root}: cannot use as a run directory ({exc.strerror or exc})"
            ) from exc
        try:
            run = cls._open_locked(root, key, study, config, model, seed, argv, inputs or {})
        except BaseException:
            _release(key)
            raise
        _LAST_OPENED[:] = [root]
        return run

    @classmethod
    def _open_locked(
        cls,
        root: Path,
        key: str,
        study: str,
        config: Mapping[str, Any],
        model: str | None,
        seed: int | None,
        argv: list[str] | None,
        inputs: Mapping[str, Any],
    ) -> RunDir:
        resolved = resolved_config(study, config)
        described = {str(k): describe(v) for k, v in inputs.items()}
        fp = fingerprint(resolved, described)
        config_file = root / "config.yaml"
        manifest = read_json_file(root / "manifest.json")
        previous: dict[str, Any] | None
        if config_file.exists():
            previous, source = read_config(root), config_file.name
            previous.pop("command", None)
        else:
            previous, source = manifest.get("config"), "manifest.json (config.yaml is missing)"
        if previous is not None:
            diff = _config_diff(previous, resolved)
            if diff:
                raise RunDirError(
                    f"{root} holds a run with a different configuration (differs in: "
                    f"{', '.join(diff)}; from {source}); use another --out directory to start a "
                    "new run"
                )
        if "inputs" in manifest:
            changed = differences(manifest["inputs"], described)
            if changed:
                raise RunDirError(
                    f"{root} holds a run made with different inputs ({'; '.join(changed)}); "
                    "use another --out directory to start a new run"
                )
        duplicates = _check_records(root, fp)
        if not config_file.exists():
            command = scrub_secrets(argv or sys.argv)
            text = yaml.safe_dump({**resolved, "command": command}, sort_keys=False)
            write_text_atomic(config_file, text)
        manifest.setdefault("started", _now())
        manifest.setdefault("resumed", [])
        if (root / RECORDS).exists():
            manifest["resumed"].append(_now())
        manifest.update(
            {
                "study": study,
                "model": model,
                "seed": seed,
                "config": resolved,
                "inputs": described,
                "fingerprint": fp,
                "git_revision": git_revision(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "versions": package_versions(
                    ["selfcorrect", "torch", "llama_cpp_python", "transformers", "openai"]
                ),
            }
        )
        manifest.pop("finished", None)
        _write_json(root / "manifest.json", manifest)
        _repair_tail(root)
        run = cls(root, resolved, fingerprint=fp, lock_key=key)  # owns the lock from here on
        run.duplicates = duplicates
        return run

    # --- lifetime ------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._release is None or not self._release.alive

    def close(self) -> None:
        """Release the writer lock (idempotent); appending afterwards is an error."""
        if self._release is not None:
            self._release()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- records -------------------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        """Finished records, deduplicated by id (first kept)."""
        return [rec for _, rec in dedup_by_id(read_lines(self.path / RECORDS)[0])[0]]

    def finished_ids(self, key: str = "id") -> set[str]:
        return {str(r[key]) for r in self.records() if key in r}

    def failures(self) -> list[dict[str, Any]]:
        return [rec for _, rec in read_lines(self.path / FAILURES)[0]]

    def append(self, record: Mapping[str, Any], *, failed: bool = False) -> None:
        """Append one record (stamped with the run's fingerprint) and fsync it before returning."""
        if self.closed:
            raise RunDirError(f"{self.path}: the run is closed (finish/close released it)")
        line = (
            json.dumps({**record, "fingerprint": self.fingerprint}, ensure_ascii=False, default=str)
            + "\n"
        )
        with open(self.path / (FAILURES if failed else RECORDS), "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    # --- other files ---------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        return read_json_file(self.path / "manifest.json")

    def write_json(self, name: str, obj: Any) -> Path:
        """Write `obj` as JSON to `name` atomically (a temporary file renamed over it)."""
        return _write_json(self.path / name, obj)

    def note(self, **fields: Any) -> None:
        """Add `fields` to the manifest now (say, what the backend reports about itself)."""
        manifest = self.manifest()
        manifest.update(fields)
        self.write_json("manifest.json", manifest)

    def finish(self, **summary: Any) -> None:
        """Record the end time (and `summary`) in the manifest, then release the lock."""
        manifest = self.manifest()
        manifest["finished"] = _now()
        manifest.update(summary)
        self.write_json("manifest.json", manifest)
        self.close()
