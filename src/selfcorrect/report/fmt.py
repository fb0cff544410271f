"""Formatting helpers shared by the report pages: style, numbers, tables, embedded images."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
 color:#1b1b1b;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:2px solid #0072B2}
h3{font-size:1.05rem;margin-top:1.4rem}.muted{color:#555;font-size:.9rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}th,td{border:1px solid #ccc;padding:.25rem .55rem;
 text-align:right}th{background:#eef4fa}td.l,th.l{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:.5rem 0}
details{border:1px solid #ddd;border-radius:4px;margin:.4rem 0;padding:.3rem .6rem}summary{cursor:pointer;font-weight:600}
.turn{margin:.3rem 0;padding:.3rem .5rem;border-left:4px solid #bbb;white-space:pre-wrap;font-size:.88rem}
.user{border-color:#0072B2;background:#f3f8fc}.assistant{border-color:#E69F00;background:#fdf8ef}
.system{border-color:#999;background:#f5f5f5}.tag{font-size:.75rem;color:#555;display:block}
.note{background:#fff8e1;border:1px solid #f0d58c;padding:.5rem .8rem;border-radius:4px}
"""


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def ci(ci: Sequence[float] | None, pct: bool = True) -> str:
    if not ci:
        return ""
    return f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if pct else f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def num(v: float | None) -> str:
    return "n/a" if v is None else f"{v + 0.0:+.3f}"


def table(head: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    out = [
        "<table><tr>"
        + "".join(
            f'<th class="{"l" if i < left else ""}">{escape(str(h))}</th>'
            for i, h in enumerate(head)
        )
        + "</tr>"
    ]
    for row in rows:
        out.append(
            "<tr>"
            + "".join(
                f'<td class="{"l" if i < left else ""}">{escape(str(c))}</td>'
                for i, c in enumerate(row)
            )
            + "</tr>"
        )
    return "".join(out) + "</table>"


def img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def figures(folder: Path) -> str:
    return "".join(img(p, p.stem.replace("_", " ")) for p in sorted(folder.glob("*.png")))


def read_json(path: Path) -> Any:
    """A run's JSON object file ({} when absent); a corrupt one is an error naming it."""
    from selfcorrect.runs import read_json_file

    return read_json_file(path)
