"""The per-claim verdicts of the Figure 2 panels: fixed rules, each able to go either way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selfcorrect.cli import app
from selfcorrect.runfiles import RunDirError
from selfcorrect.theory.figures import GD_LABEL
from selfcorrect.theory.verdicts import compare, load_panels, table, verdicts

TF = "TF (20L/3H/96)"


def curve(e15: float, se: float = 0.005, early: float | None = None) -> dict[str, list[float]]:
    first = e15 + 0.05 if early is None else early
    return {"2": [first, se], "5": [e15, se], "10": [e15, se], "15": [e15, se]}


def metrics(errors: dict[str, float | dict[str, float]], se: float = 0.005) -> dict:
    by_label = {}
    for label, value in errors.items():
        levels = value if isinstance(value, dict) else {"0": value}
        by_label[label] = {p: curve(e, se) for p, e in levels.items()}
    return {"t": [2, 5, 10, 15], "error_stderr": by_label, "training": {}}


def outcome(panels: dict, panel: str) -> str:
    return next(v.outcome for v in verdicts(panels) if v.panel == panel)


def test_compare_is_two_sided_and_signed():
    assert compare((0.30, 0.005), (0.33, 0.005))[0] == "holds"
    assert compare((0.33, 0.005), (0.30, 0.005))[0] == "contradicted"
    assert compare((0.30, 0.010), (0.31, 0.010))[0] == "not supported"
    assert compare((0.30, 0.005), (0.33, 0.005))[1] == pytest.approx(0.03 / (0.005 * 2**0.5))


def test_tf_tracks_gd_only_within_the_gap():
    assert outcome({"2a": metrics({TF: 0.31, GD_LABEL: 0.30})}, "2a") == "holds"
    assert outcome({"2a": metrics({TF: 0.40, GD_LABEL: 0.30})}, "2a") == "does not hold"
    assert outcome({"2a": metrics({TF: 0.24, GD_LABEL: 0.30})}, "2a") == "does not hold"


def test_noise_must_hurt_at_every_step():
    rising = {"0": 0.3, "0.5": 0.5, "1": 0.9}
    assert outcome({"2b": metrics({TF: rising, GD_LABEL: rising})}, "2b") == "holds"
    dip = {"0": 0.3, "0.5": 0.25, "1": 0.9}
    assert outcome({"2b": metrics({TF: dip, GD_LABEL: rising})}, "2b") == "does not hold"


def test_depth_needs_gains_up_to_15_and_none_after():
    def depth(e5, e10, e15, e20):
        return {
            "2c": metrics({"5 layers": e5, "10 layers": e10, "15 layers": e15, "20 layers": e20})
        }

    assert outcome(depth(0.40, 0.33, 0.30, 0.30), "2c") == "holds"
    assert outcome(depth(0.30, 0.30, 0.30, 0.30), "2c") == "not supported"  # depth never helps
    assert outcome(depth(0.40, 0.33, 0.30, 0.25), "2c") == "contradicted"  # 20 clearly better
    quick = {"2c": metrics({"1 layers": 0.34, "2 layers": 0.29, "4 layers": 0.28})}
    assert outcome(quick, "2c").startswith("not applicable")


def test_three_heads_must_beat_every_other_count():
    def heads(e1, e3, e4, e6):
        return {
            "2e": metrics(
                {
                    "1 head (32 wide)": e1,
                    "3 heads (96 wide)": e3,
                    "4 heads (128 wide)": e4,
                    "6 heads (192 wide)": e6,
                }
            )
        }

    assert outcome(heads(0.35, 0.30, 0.33, 0.34), "2e") == "holds"
    assert outcome(heads(0.35, 0.30, 0.301, 0.34), "2e") == "not supported"
    assert outcome(heads(0.35, 0.30, 0.27, 0.34), "2e") == "contradicted"


def test_softmax_and_ffn_claims_follow_the_comparison():
    def attn(soft, lin):
        return {"2d": metrics({"softmax attention": soft, "linear attention": lin})}

    assert outcome(attn(0.30, 0.40), "2d") == "holds"
    assert outcome(attn(0.285, 0.255), "2d") == "contradicted"
    ffn = {"with FFN": 0.30, "without FFN": 0.40, "without FFN, ln_2 kept (official block)": 0.301}
    assert outcome({"2f": metrics(ffn)}, "2f") == "not supported"  # one variant is as good
    ffn["without FFN, ln_2 kept (official block)"] = 0.45
    assert outcome({"2f": metrics(ffn)}, "2f") == "holds"


def test_missing_panels_are_not_run_yet():
    found = verdicts({})
    assert len(found) == 6 and {v.outcome for v in found} == {"not run yet"}


def write_panel(root: Path, panel: str, data: dict) -> None:
    (root / panel).mkdir(parents=True)
    (root / panel / "metrics.json").write_text(json.dumps(data))


def test_summary_cli_reads_the_panels_and_refuses_an_empty_root(tmp_path):
    data = metrics({TF: 0.31, GD_LABEL: 0.30})
    data["training"] = {TF: {"steps_done": 4000, "seconds": 3600.0, "torch_threads": [1]}}
    write_panel(tmp_path, "2a", data)
    write_panel(tmp_path, "2d", metrics({"softmax attention": 0.30, "linear attention": 0.40}))
    assert set(load_panels(tmp_path)) == {"2a", "2d"}
    text = table(load_panels(tmp_path))
    assert (
        "| 2a | TF (20L/3H/96) | 0 | 0.360 ± 0.005 |" in text
        and "| 4000 | 60 min (1 thread) |" in text
    )
    assert "| 2a | paper TF (original artifacts) | 0 | 0.519 |" in text
    runner = CliRunner()
    out = tmp_path / "summary.md"
    result = runner.invoke(app, ["theory", "summary", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "**softmax attention is essential** (2d): holds" in out.read_text()
    assert "**the FFN is needed** (2f): not run yet" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["theory", "summary", str(empty)])
    assert result.exit_code == 2 and "no finished panel" in result.output


def test_a_corrupt_metrics_file_is_named(tmp_path):
    (tmp_path / "2a").mkdir()
    (tmp_path / "2a" / "metrics.json").write_text("{not json")
    with pytest.raises(RunDirError, match="2a/metrics.json: corrupt JSON"):
        load_panels(tmp_path)
