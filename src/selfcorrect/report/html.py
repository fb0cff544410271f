"""One self-contained HTML page per run, or per comparison of runs.

Reads run directories only (never calls a model or trains). Figures are embedded as base64 PNGs,
styles are inline, there is no JavaScript: the file can be mailed and opened offline. Every text
that comes from a run (model output, config values) is HTML-escaped.

Recognised directories: BBQ runs (``config.yaml`` with ``study: bbq``), BBQ ablation grids
(``ablation.json``), theory panels (``curves.csv``) and construction checks (``construct.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from selfcorrect import __version__
from selfcorrect.report.fmt import CSS
from selfcorrect.report.sections import SECTIONS, TITLES, bbq_comparison
from selfcorrect.runs import read_config


def kind_of(folder: Path) -> str:
    if (folder / "ablation.json").exists():
        return "ablation"
    if (folder / "construct.json").exists():
        return "construct"
    if (folder / "curves.csv").exists():
        return "theory"
    study = read_config(folder).get("study")
    if study == "bbq":
        return "bbq"
    if study == "jailbreak-defend":
        return "jailbreak"
    raise ValueError(
        f"{folder}: not a run directory this report knows (no BBQ config, curves.csv, "
        "construct.json or ablation.json)"
    )


def render_report(
    folders: Sequence[str | Path], out: str | Path, *, title: str | None = None
) -> Path:
    """Write one self-contained HTML page for `folders`; several BBQ runs get a comparison table."""
    paths = [Path(f) for f in folders]
    if not paths:
        raise ValueError("give at least one run directory")
    for p in paths:
        if not p.is_dir():
            raise ValueError(f"{p}: no such run directory")
    kinds = [kind_of(p) for p in paths]
    body = []
    bbq = [p for p, k in zip(paths, kinds, strict=True) if k == "bbq"]
    if len(bbq) > 1:
        body.append("<h2>Comparison of BBQ runs</h2>" + bbq_comparison(bbq))
    for p, k in zip(paths, kinds, strict=True):
        body.append(
            f"<h2>{escape(TITLES[k])}: {escape(p.name)}</h2><p class='muted'>{escape(str(p))}</p>"
        )
        body.append(SECTIONS[k](p))
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    heading = title or ("selfcorrect report: " + ", ".join(p.name for p in paths))
    page = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(heading)}</title>"
        f"<style>{CSS}</style></head><body><h1>{escape(heading)}</h1>"
        f"<p class='muted'>selfcorrect {__version__} · written {stamp} · self-contained (figures embedded, "
        "no network, no JavaScript)</p>" + "".join(body) + "</body></html>"
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
