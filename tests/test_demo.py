"""`selfcorrect demo` on a scripted model (the theory part and the report stubbed): the
transcript reads records of any version, and a run where every question failed ends with one
clear line, not a traceback."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from selfcorrect.backends.base import Completion
from selfcorrect.cli import app
from selfcorrect.cli import demo as demo_module


class _FailingBackend:
    name = "failing"

    def generate(self, chats, params):
        return [Completion("", 0, 0, 0.0, "error", error="rejected") for _ in chats]


def _quick(monkeypatch, tmp_path, backend=None):
    real = demo_module.run_bbq
    monkeypatch.setattr(
        demo_module,
        "run_bbq",
        lambda cfg, out: real(cfg, out, backend=backend, progress=False, plots=False),
    )
    monkeypatch.setattr(demo_module, "_construction", lambda out: None)
    monkeypatch.setattr(demo_module, "render_report", lambda *a, **k: tmp_path / "report.html")
    args = ["demo", "--model", "scripted", "--per-category", "1", "--out", str(tmp_path / "bbq")]
    return lambda: CliRunner().invoke(app, args)


def test_the_demo_transcript_reads_turns_with_unknown_keys(monkeypatch, tmp_path):
    run = _quick(monkeypatch, tmp_path)
    first = run()
    assert first.exit_code == 0, first.output
    assert "One conversation:" in first.output
    # a run directory written by a version whose turns carry a field this one does not know
    path = tmp_path / "bbq" / "records.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for r in records:
        r["turns"] = [{**t, "new_field": 1} for t in r["turns"]]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    again = run()
    assert again.exit_code == 0, again.output
    assert again.exception is None and "One conversation:" in again.output


def test_a_demo_where_every_question_failed_says_so(monkeypatch, tmp_path):
    result = _quick(monkeypatch, tmp_path, backend=_FailingBackend())()
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # no IndexError
    assert "error: no demo question finished (11 failed" in result.output
