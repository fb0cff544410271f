"""The per-claim verdicts of the Figure 2 panels: fixed rules, each able to go either way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selfcorrect.cli import app
from selfcorrect.runfiles import RunDirError
from selfcorrect.theory.figures import GD_LABEL
from selfcorrect.theory.verdicts import Measured, compare, load_panels, table, verdicts

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


def evidence(panels: dict, panel: str) -> str:
    return next(v.evidence for v in verdicts(panels) if v.panel == panel)


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


# ---- paired z -------------------------------------------------------------------------------


def shared_sequences(n: int = 256) -> list[float]:
    """Per-sequence errors that vary a lot between sequences (as real ones do)."""
    return [0.1 + 0.4 * ((i * 37) % 101) / 100 for i in range(n)]


def with_sequences(data: dict, errors: dict[str, list[float]]) -> dict:
    data["per_sequence"] = {"t": 15, "errors": {k: {"0": v} for k, v in errors.items()}}
    return data


def test_errors_of_the_same_sequences_are_compared_pair_by_pair():
    """B is A plus 0.01 on every shared sequence: clear sequence by sequence, hidden by the
    spread between sequences when the two are treated as independent."""
    a = shared_sequences()
    b = [e + 0.01 + 0.002 * (i % 3 - 1) for i, e in enumerate(a)]
    paired = compare(Measured(0.0, 0.0, tuple(a)), Measured(0.0, 0.0, tuple(b)))
    assert paired.paired and paired.outcome == "holds" and paired.z > 50
    se = 0.4 / 256**0.5 / 3**0.5  # about the standard error of either mean alone
    unpaired = compare(Measured(sum(a) / 256, se), Measured(sum(b) / 256, se))
    assert not unpaired.paired and unpaired.outcome == "not supported"
    data = metrics({"softmax attention": 0.30, "linear attention": 0.31}, se=se)
    old = {"2d": data}
    assert outcome(old, "2d") == "not supported"
    assert "z unpaired" in evidence(old, "2d")
    new = {"2d": with_sequences(data, {"softmax attention": a, "linear attention": b})}
    assert outcome(new, "2d") == "holds"
    assert "z paired" in evidence(new, "2d") and "unpaired" not in evidence(new, "2d")
    flipped = with_sequences(metrics({"with FFN": 0.3, "without FFN": 0.3}), {})
    flipped["per_sequence"]["errors"] = {"with FFN": {"0": b}, "without FFN": {"0": a}}
    assert outcome({"2f": flipped}, "2f") == "contradicted"


def test_panel_metrics_keep_each_sequences_error_at_the_verdicts_t():
    from selfcorrect.theory.baselines import best_in_context, ls_extrapolation
    from selfcorrect.theory.evaluate import curve_rows, score
    from selfcorrect.theory.figures import panel_metrics

    predictors = {"best": best_in_context, "ls": ls_extrapolation}
    for n_points, t in ((20, 15), (8, 7)):
        scored = list(score(predictors, noise_levels=(0.0, 0.5), n_eval=16, n_points=n_points))
        found = panel_metrics(curve_rows(scored), {}, scored)["per_sequence"]
        assert found["t"] == t and set(found["errors"]) == {"best", "ls"}
        best = found["errors"]["best"]["0.5"]
        assert len(best) == 16 and best == [round(e, 6) for e in best]
        exact = next(s.errors[:, t] for s in scored if (s.predictor, s.noise) == ("best", 0.5))
        assert best == pytest.approx(exact.tolist(), abs=5e-7)
    assert json.loads(json.dumps(found)) == found  # plain JSON


def test_z_uses_full_precision_where_the_panel_has_it(tmp_path):
    """An older panel: metrics.json rounds to 4 decimals (a standard error of 0.00004 becomes
    0, making any difference infinitely significant); curves.csv beside it has the values."""
    from selfcorrect.theory.evaluate import write_curves

    data = metrics({"softmax attention": 0.30004, "linear attention": 0.30006}, se=0.00004)
    for by_noise in data["error_stderr"].values():
        for by_t in by_noise.values():
            by_t.update({t: [round(e, 4), round(s, 4)] for t, (e, s) in by_t.items()})
    write_panel(tmp_path, "2d", data)
    assert outcome({"2d": data}, "2d") == "holds"  # from the rounded values alone: z = inf
    rows = [
        {"predictor": label, "noise": 0.0, "t": 15, "error": e, "stderr": 0.00004}
        for label, e in (("softmax attention", 0.30004), ("linear attention", 0.30006))
    ]
    write_curves(rows, tmp_path / "2d" / "curves.csv")
    panels = load_panels(tmp_path)
    assert outcome(panels, "2d") == "not supported"
    assert "(z = 0.4)" in evidence(panels, "2d") and "z unpaired" in evidence(panels, "2d")


def test_the_kept_paper_scale_panels_summarise_paired_and_older_ones_unpaired(tmp_path):
    """bench/results/theory_paper keeps per-sequence errors (paired z); the same panels without
    them, as written before, still print, with the unpaired note."""
    import json
    import shutil

    root = Path(__file__).resolve().parents[1] / "bench" / "results" / "theory_paper"
    result = CliRunner().invoke(app, ["theory", "summary", str(root)])
    assert result.exit_code == 0, result.output
    assert "| 2c | 5 layers | 0 |" in result.output
    assert "**softmax attention is essential** (2d): holds" in result.output
    assert result.output.count("z paired") == 4 and "z unpaired" not in result.output
    older = tmp_path / "theory_paper"
    shutil.copytree(root, older)
    for file in older.glob("*/metrics.json"):
        data = json.loads(file.read_text())
        data.pop("per_sequence", None)
        file.write_text(json.dumps(data))
    result = CliRunner().invoke(app, ["theory", "summary", str(older)])
    assert result.exit_code == 0, result.output
    assert result.output.count("z unpaired") == 4  # depth, heads, softmax, FFN


def test_the_wall_time_note_says_where_the_steps_ran():
    """From the devices the training recorded, not the configured device."""
    runs = {
        "cuda": {"devices": ["cuda:0"], "torch_threads": [4]},
        "both": {"devices": ["cpu", "cuda:0"]},
        "cpu": {"devices": ["cpu"], "torch_threads": [2]},
        "configured": {"device": "cuda", "torch_threads": [1]},  # an older summary
        "bare": {"device": "cuda"},
    }
    data = metrics({label: 0.3 for label in runs})
    data["training"] = {k: {"steps_done": 10, "seconds": 720.0, **run} for k, run in runs.items()}
    rows = {line.split(" | ")[1]: line for line in table({"2c": data}).splitlines()[2:]}
    for label, note in (
        ("cuda", "12 min (cuda)"),
        ("both", "12 min (cpu/cuda)"),
        ("cpu", "12 min (2 threads)"),
        ("configured", "12 min (1 thread)"),
        ("bare", "12 min"),
    ):
        assert rows[label].endswith(f"| 10 | {note} |"), rows[label]


def test_a_panel_without_the_verdicts_t_is_not_applicable_not_a_crash():
    short = metrics({"softmax attention": 0.30, "linear attention": 0.40})
    for label in short["error_stderr"].values():
        del label["0"]["15"]
    short["t"] = [2, 5, 10]
    assert outcome({"2d": short}, "2d").startswith("not applicable")
