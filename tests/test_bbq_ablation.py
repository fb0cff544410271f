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
