"""``selfcorrect report``: one self-contained HTML page for one or more run directories."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    dirs: list[Path] = typer.Argument(
        ...,
        help="Run directories (BBQ, ablation, jailbreak, theory panel or training, construction).",
    ),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write."),
    title: str = typer.Option(None, "--title", help="Page title."),
) -> None:
    """Redraw each run's plots from its data and write one report (several BBQ runs are
    compared side by side)."""
    from selfcorrect.report import draw
    from selfcorrect.report.html import render_report

    for folder in dirs:
        if not folder.is_dir():
            raise ValueError(f"{folder}: no such run directory")
        draw(folder)
    path = render_report(dirs, out, title=title)
    typer.echo(f"wrote {path}")
