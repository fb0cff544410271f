"""The ``selfcorrect`` command line (typer): one module per command group."""

from __future__ import annotations

import typer

from selfcorrect import __version__
from selfcorrect.cli import bbq, chat, compare, demo, jailbreak, report, serve, task, theory
from selfcorrect.cli.common import run_guarded

app = typer.Typer(
    name="selfcorrect",
    help="Self-correction as in-context alignment: theory lab, Check-as-Context, studies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"selfcorrect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Self-correction as in-context alignment (Wang et al., NeurIPS 2024)."""


app.command("chat")(chat.chat)
app.command("demo")(demo.demo)
app.command("bbq")(bbq.bbq)
app.command("bbq-ablation")(bbq.bbq_ablation)
app.add_typer(theory.app, name="theory")
app.command("report")(report.report)
app.command("serve")(serve.serve)
app.add_typer(jailbreak.app, name="jailbreak")
app.command("compare-backends")(compare.compare_backends)
app.command("task")(task.task)


def main() -> None:
    run_guarded(app)
