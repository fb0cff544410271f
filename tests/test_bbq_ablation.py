"""BBQ ablation grids: definitions, the linear fit, and a small real check-quality run."""

from __future__ import annotations

import json

import pytest

from selfcorrect.bbq.ablation import grid, linear_fit, run_ablation
from selfcorrect.bbq.study import BBQConfig


def test_grids():
    base = BBQConfig()
    assert [str(c.check) for _, c in grid("check-quality", base, error_rates=(0, 0.5))] == [
        "oracle:0",
        "oracle:0.5",
    ]
    assert [str(c.check) for _, c in grid("check-type", base)] == ["self", "verdict"]
    models = ("hf/x", "openai/y")
    assert [c.model for _, c in grid("model-size", base, models=models)] == list(models)
    with pytest.raises(ValueError, match="unknown model 'a/x'"):
        grid("model-size", base, models=("a/x",))
    assert len(grid("rounds", BBQConfig(rounds=3))) == 1
    with pytest.raises(ValueError, match="unknown ablation"):
        grid("nope", base)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        grid("check-quality", base, error_rates=(1.5,))
    with pytest.raises(ValueError, match="at least one --models"):
        grid("model-size", base)


def test_linear_fit_recovers_a_line():
    fit = linear_fit([0, 0.5, 1], [0.1, 0.2, 0.3])
    assert (
        fit["slope"] == pytest.approx(0.2)
        and fit["intercept"] == pytest.approx(0.1)
        and fit["r2"] == pytest.approx(1)
    )
    assert linear_fit([1, 1], [0, 1]) is None


def test_check_quality_grid_on_the_real_model(tmp_path):
    base = BBQConfig(
        categories=("Age", "SES"),
        limit_per_category=2,
        rounds=1,
        answer_tokens=12,
        check_tokens=8,
        reanswer_tokens=8,
    )
    summary = run_ablation("check-quality", base, tmp_path, progress=False, error_rates=(0.0, 1.0))
    assert [p["check_accuracy"] for p in summary["points"]] == [1.0, 0.0]
    assert (tmp_path / "ablation_check_quality.png").exists()
    assert json.loads((tmp_path / "ablation.json").read_text())["kind"] == "check-quality"
    assert (tmp_path / "oracle-p0" / "records.jsonl").exists()


def test_oracle_stopped_check_accuracy_is_not_applicable(tmp_path, monkeypatch):
    # scripted: the engine logic only. Every answer is (c): right where (c) is the label, so
    # some questions stop at once (the truth's pass) and the others get a review and the
    # truth's fail; neither verdict is the review's, so there is no check accuracy to report.
    from selfcorrect.backends.scripted import ScriptedBackend
    from selfcorrect.bbq import ablation

    replies = ScriptedBackend(lambda chat, params: " (c). It is not biased.")
    monkeypatch.setattr(ablation, "get_backend", lambda *args, **kw: replies)
    base = BBQConfig(model="scripted", categories=("Age",), limit_per_category=6)
    summary = run_ablation("intrinsic-vs-oracle", base, tmp_path, progress=False)
    intrinsic, oracle = summary["points"]
    assert intrinsic["check_accuracy"] is not None  # the review's own verdicts, measured
    assert oracle["check_accuracy"] is None  # n/a, not 100% by construction
    [check] = json.loads((tmp_path / "oracle-stopped" / "metrics.json").read_text())[
        "check_accuracy"
    ]
    assert check["n"] == 0 and check["n_unknown"] == 0
    records = [json.loads(x) for x in (tmp_path / "oracle-stopped" / "records.jsonl").open()]
    sources = {t["source"] for r in records for t in r["turns"] if t["kind"] == "check"}
    assert sources == {"oracle-stop", "oracle-stop:model"}  # both kinds of stop verdict ran
