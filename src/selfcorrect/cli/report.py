"""``selfcorrect report``: one self-contained HTML page for one or more run directories."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    dirs: list[Path] = typer.Argument(
        ..., help="Run directories (BBQ runs, ablations, theory panels, constructions)."
    ),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write."),
    title: str = typer.Option(None, "--title", help="Page title."),
) -> None:
    """Write a report (several BBQ runs are compared side by side)."""
    from selfcorrect.report.html import render_report

    path = render_report(dirs, out, title=title)
    typer.echo(f"wrote {path}")
