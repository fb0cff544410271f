"""The command line as a user meets it: help, version, chat on the real model, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from selfcorrect import __version__
from selfcorrect.cli import app


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "selfcorrect", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=600,
    )


def _command_paths(group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, cmd in getattr(group, "commands", {}).items():
        paths.append(prefix + (name,))
        paths += _command_paths(cmd, prefix + (name,))
    return paths


def test_every_command_has_help():
    root = typer.main.get_command(app)
    paths = _command_paths(root)
    assert ("chat",) in paths and ("demo",) in paths
    for path in [()] + paths:
        result = _cli(*path, "--help")
        assert result.returncode == 0, (path, result.stderr)
        assert "Usage" in result.stdout


def test_version():
    result = _cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"selfcorrect {__version__}"


def test_chat_one_round_prints_answer_check_and_second_answer():
    result = _cli(
        "chat",
        "--model",
        "llamacpp/smollm2",
        "--rounds",
        "1",
        "--max-new-tokens",
        "16",
        "--check-max-new-tokens",
        "16",
        "Is 7 a prime number?",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (
        out.index("[round 0] MODEL") < out.index("[round 1] CHECK") < out.index("[round 1] MODEL")
    )


def test_chat_reads_questions_from_stdin():
    result = _cli("chat", "--max-new-tokens", "8", stdin="Hello\n\nName a colour.\n")
    assert result.returncode == 0 and result.stdout.count("[round 0] MODEL") == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["chat", "--model", "gpt9/whatever", "hi"], "unknown model 'gpt9/whatever': use"),
        (["chat", "--model", "llamacpp/nope.gguf", "hi"], "no such file"),
        (
            ["chat", "--rounds", "1", "--check", "oracle:0.1", "hi"],
            "oracle checks need ground truth",
        ),
        (["chat", "--rounds", "-1", "hi"], "Invalid value"),
    ],
)
def test_user_errors_are_one_clear_line(args, message):
    result = _cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_base_url_for_a_local_model_is_refused():
    result = _cli(
        "chat", "--model", "llamacpp/smollm2", "--base-url", "http://127.0.0.1:1/v1", "hi"
    )
    assert result.returncode == 2 and "--base-url only applies to openai/<model>" in result.stderr


def test_backend_options_pass_through_and_unknown_ones_are_named():
    ok = _cli(
        "chat", "--option", "cache_mb=0", "--option", "n_ctx=2048", "--max-new-tokens", "4", "hi"
    )
    assert ok.returncode == 0, ok.stderr
    bad = _cli("chat", "--option", "foo=1", "hi")
    assert bad.returncode == 2 and "unexpected keyword argument 'foo'" in bad.stderr
    # a number where the backend takes text is text again: the template's own error, no crash
    text = _cli("chat", "--option", "template=1", "hi")
    assert text.returncode == 2 and "unknown template '1'" in text.stderr, text.stderr
    # the URL has its own flag (recorded in a run's identity): not a second way in
    url = _cli("chat", "--option", "base-url=http://127.0.0.1:1/v1", "hi")
    assert url.returncode == 2 and "use --base-url instead" in url.stderr, url.stderr


def test_the_demo_construction_is_a_run_directory(tmp_path, capsys):
    """The demo's theory part goes through RunDir like every other run: config.yaml names the
    study and the report recognises it by its study (rerunning is run_construction's test)."""
    import yaml

    from selfcorrect.cli.demo import _construction
    from selfcorrect.report.build import kind_of

    out = tmp_path / "construct"
    _construction(out)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["study"] == "construct" and config["betas"] == [10, 100, 1000.0, 10000.0]
    assert kind_of(out) == "construct" and (out / "construct.json").exists()
    assert "max |constructed TF - explicit GD|" in capsys.readouterr().out


def test_chat_with_a_served_checker_keeps_it_on_the_base_url(monkeypatch):
    """A model:openai checker talks to --base-url (a real llama.cpp server here), never to
    OPENAI_BASE_URL or api.openai.com when no --checker-base-url is given."""
    from servers import llama_server

    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # a decoy nobody serves
    with llama_server() as url:
        args = ("--model", "openai/smollm2", "--base-url", url, "--rounds", "1")
        result = _cli(
            "chat",
            *args,
            "--check",
            "model:openai/smollm2",
            "--max-new-tokens",
            "8",
            "--check-max-new-tokens",
            "8",
            "Is 7 a prime number?",
        )
    assert result.returncode == 0, result.stderr
    assert "[round 1] CHECK" in result.stdout and "[error]" not in result.stdout
