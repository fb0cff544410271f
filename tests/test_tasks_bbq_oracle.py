"""BBQ intrinsic vs oracle-stopped (bbq-ablation intrinsic-vs-oracle), on the real model."""

from __future__ import annotations

import json

import pytest

from selfcorrect.bbq.ablation import grid, run_ablation
from selfcorrect.bbq.study import BBQConfig


def test_grid_needs_a_check_the_model_reads():
    labels = [label for label, _ in grid("intrinsic-vs-oracle", BBQConfig())]
    assert labels == ["intrinsic", "oracle-stopped"]
    for bad in (BBQConfig(check="oracle:0"), BBQConfig(check="none"), BBQConfig(rounds=0)):
        with pytest.raises(ValueError, match="intrinsic-vs-oracle needs at least one round"):
            grid("intrinsic-vs-oracle", bad)


def test_intrinsic_vs_oracle_stopped_on_the_real_model(tmp_path):
    base = BBQConfig(
        categories=("Age", "Religion"),
        limit_per_category=4,
        rounds=1,
        answer_tokens=12,
        check_tokens=12,
        reanswer_tokens=8,
    )
    summary = run_ablation("intrinsic-vs-oracle", base, tmp_path, progress=False)
    intrinsic, oracle = summary["points"]
    assert oracle["check"] == "self (oracle-stopped)" and oracle["stopped_early"] >= 1
    assert oracle["accuracy_by_round"][0] == intrinsic["accuracy_by_round"][0]
    records = [json.loads(x) for x in (tmp_path / "oracle-stopped" / "records.jsonl").open()]
    for r in records:
        first_right = r["rounds"][0]["parsed"] == r["label"]
        # a right first answer stops at once and is kept; a wrong one gets the model's review
        assert (r["stopped_at"] == 0) == first_right
        assert len(r["rounds"]) == (1 if first_right else 2)
        checks = [t for t in r["turns"] if t["kind"] == "check"]
        # the truth gave the verdict either way; a wrong answer's text is the model's review
        assert checks[0]["source"] == ("oracle-stop" if first_right else "oracle-stop:model")
    flips = json.loads((tmp_path / "oracle-stopped" / "metrics.json").read_text())["flips"][0]
    assert flips["right_to_wrong"] == 0
    n = intrinsic["n"]
    broke = json.loads((tmp_path / "intrinsic" / "metrics.json").read_text())["flips"][0]
    final = round(oracle["accuracy_by_round"][-1] * n)
    assert final == round(intrinsic["accuracy_by_round"][-1] * n) + broke["right_to_wrong"]
    assert "oracle-stopped" in (tmp_path / "report.html").read_text()
    assert (tmp_path / "ablation_intrinsic_vs_oracle.png").exists()
