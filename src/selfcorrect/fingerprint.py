"""A run's identity: its resolved configuration plus what the configuration only names.

A configuration says ``data: mine.jsonl`` or ``model: llamacpp/x.gguf``; the run's results
depend on what those names pointed to when it ran. `describe` turns such *inputs* into JSON that
pins them down, and `fingerprint` hashes the configuration together with them:

- a file up to `HASH_LIMIT` bytes (data files, attack prompts) by the SHA-256 of its content, so
  an edit is seen however small and a moved but unchanged file is the same input;
- a larger file (model weights) by its size and modification time (hashing gigabytes on every
  resume would cost more than it protects);
- a directory (a local Hugging Face model) by the size and modification time of each file in it;
- a string, number or None (an effective server URL) as itself;
- any other JSON value (a list of prompts) by the SHA-256 of its canonical JSON text.

Paths are kept in the description to name what changed, but are not part of the identity.
Server URLs are recorded without credentials, query or fragment (`scrub_url`), in the
configuration and command line too (`scrub_secrets`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from selfcorrect.specs import Spec, parse

HASH_LIMIT = 64 << 20  # files up to 64 MiB are identified by their content
_SCALARS = (str, int, float, bool, type(None))
_FILE_KEYS = ("sha256", "size", "mtime_ns", "missing", "files")


def canonical(obj: Any) -> str:
    """Canonical JSON text (sorted keys, no spaces); tuples become lists."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _describe_path(path: Path) -> dict[str, Any]:
    shown = str(path.expanduser().resolve())
    try:
        st = path.stat()
    except FileNotFoundError:
        return {"file": shown, "missing": True}
    if path.is_dir():
        files = {}
        for child in sorted(path.iterdir()):
            if child.is_file():
                cst = child.stat()
                files[child.name] = [cst.st_size, cst.st_mtime_ns]
        return {"file": shown, "files": files}
    if st.st_size <= HASH_LIMIT:
        return {"file": shown, "sha256": _sha256_file(path)}
    return {"file": shown, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _has_path(value: Any) -> bool:
    if isinstance(value, os.PathLike):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_path(v) for v in value)
    if isinstance(value, Mapping):
        return any(_has_path(v) for v in value.values())
    return False


def describe(value: Any) -> Any:
    """JSON that identifies one input (see the module docstring for the rules)."""
    if isinstance(value, os.PathLike):
        return _describe_path(Path(value))
    if isinstance(value, _SCALARS):
        return value
    if _has_path(value):
        if isinstance(value, Mapping):
            return {str(k): describe(v) for k, v in value.items()}
        return [describe(v) for v in value]
    text = canonical(value)
    count = len(value) if isinstance(value, (list, tuple, Mapping)) else None
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), "count": count}


def identity(described: Any) -> Any:
    """`described` without the paths kept only for messages."""
    if isinstance(described, Mapping):
        keep = {k: identity(v) for k, v in described.items()}
        if "file" in keep and any(k in keep for k in _FILE_KEYS):
            keep.pop("file")
        return keep
    if isinstance(described, list):
        return [identity(v) for v in described]
    return described


def fingerprint(config: Mapping[str, Any], described_inputs: Mapping[str, Any]) -> str:
    """16 hex digits of SHA-256 over the configuration and the inputs' identities."""
    text = canonical({"config": config, "inputs": identity(described_inputs)})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _what(value: Any) -> str:
    if isinstance(value, Mapping) and "file" in value:
        if value.get("missing"):
            return f"{value['file']} (missing)"
        if "sha256" in value:
            return f"{value['file']} (sha256 {value['sha256'][:12]})"
        if "files" in value:
            return f"{value['file']} ({len(value['files'])} files)"
        return f"{value['file']} ({value.get('size')} bytes, mtime_ns {value.get('mtime_ns')})"
    if isinstance(value, Mapping) and "sha256" in value:
        count = value.get("count")
        return f"sha256 {value['sha256'][:12]}" + (f", {count} items" if count is not None else "")
    return json.dumps(value, ensure_ascii=False)


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """One phrase per input whose identity differs, naming it (and the file, if any)."""
    out = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            out.append(f"{key} (not recorded by the earlier run; now {_what(new[key])})")
        elif key not in new:
            out.append(f"{key} (was {_what(old[key])}; not given now)")
        elif identity(old[key]) != identity(new[key]):
            a, b = old[key], new[key]
            if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
                for x, y in zip(a, b, strict=True):
                    if identity(x) != identity(y):
                        out.append(f"{key}: {_what(x)} is now {_what(y)}")
            else:
                out.append(f"{key}: {_what(a)} is now {_what(b)}")
    return out


def scrub_url(url: str | None) -> str | None:
    """`url` without user name, password, query or fragment (they may hold credentials)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"]+")


def _scrub_secret_url(url: str) -> str:
    """`url` scrubbed (`scrub_url`) when it carries a user, a password, a query or a fragment,
    else unchanged (so a configuration without secrets keeps its identity)."""
    try:
        parts = urlsplit(url)
        secret = parts.username or parts.password or parts.query or parts.fragment
    except ValueError:  # e.g. an invalid port: not a URL we can take apart, so drop it all
        return "<url removed>"
    return scrub_url(url) or url if secret else url


def scrub_secrets(value: Any) -> Any:
    """`value` (text, or lists and mappings of it) with every URL that may carry credentials
    scrubbed: what a run directory writes of its configuration and command line."""
    if isinstance(value, str):
        return _URL.sub(lambda m: _scrub_secret_url(m.group()), value)
    if isinstance(value, Mapping):
        return {k: scrub_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_secrets(v) for v in value]
    return value


def model_file(spec: str | Spec) -> Path | None:
    """The local file or directory a model spec loads, or None (hub ids, servers, scripted)."""
    parsed = parse("model", spec)
    if parsed.kind not in ("llamacpp", "hf"):
        return None
    from selfcorrect.backends.llamacpp import EMBEDDED_MODELS, resolve_model_path

    name = str(parsed.arg)
    if parsed.kind == "llamacpp" or name in EMBEDDED_MODELS:
        return resolve_model_path(name)
    path = Path(name).expanduser()
    return path if path.exists() else None


def effective_base_url(spec: str | Spec, base_url: str | None) -> str | None:
    """The server an ``openai/<model>`` spec talks to, as the backend resolves it; else None."""
    if parse("model", spec).kind != "openai":
        return None
    return scrub_url(base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1")


def backend_inputs(
    model: str | Spec, base_url: str | None = None, *, check: str | Spec | None = None
) -> dict[str, Any]:
    """The inputs a model spec names: ``model_file`` and ``base_url`` (and the same with a
    ``checker_`` prefix when `check` is ``model:SPEC``; an openai checker shares `base_url`)."""
    out: dict[str, Any] = {
        "model_file": model_file(model),
        "base_url": effective_base_url(model, base_url),
    }
    checker = parse("check", check) if check is not None else None
    if checker is not None and checker.kind == "model":
        out["checker_model_file"] = model_file(checker.value)
        out["checker_base_url"] = effective_base_url(checker.value, base_url)
    return out
