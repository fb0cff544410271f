"""The hand-weighted transformer equals explicit GD on the PL loss."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from selfcorrect.theory.construct_study import error_table, max_error, problems
from selfcorrect.theory.construction import build_pl_gd_transformer, pl_gradient_w, pl_loss_linear


def test_closed_form_gradient_matches_autograd():
    p = problems(20, 5, 12, seed=3)
    w = torch.randn(20, 5, 5, dtype=torch.float64, requires_grad=True)
    (auto,) = torch.autograd.grad(pl_loss_linear(w, p["x"], p["ys"], p["rs"]), w)
    assert (auto - pl_gradient_w(w.detach(), p["x"], p["ys"], p["rs"])).abs().max() < 1e-10


@pytest.mark.parametrize("steps", [1, 3])
def test_matches_gd_to_machine_precision(steps):
    p = problems(100, 5, 20, seed=0)
    assert max_error(p, 0.01, steps, beta=1e4) < 1e-9


@pytest.mark.parametrize("steps", [1, 3])
def test_default_constants_match_gd_on_iid_uniform_rewards(steps):
    """No minimum reward gap: i.i.d. U(0, 1) rewards, the network's default sharpness."""
    p = problems(100, 5, 20, seed=0, min_gap=False)
    assert max_error(p, 0.01, steps) < 1e-9


def test_float32_limit_is_rounding():
    """In float32 the same network matches GD to float32 rounding (documented ~1e-6), no better."""
    p = problems(100, 5, 20, seed=0, min_gap=False, dtype=torch.float32)
    err = max_error(p, 0.01, 3)
    assert 1e-8 < err < 5e-6


def test_it_is_made_of_real_attention_and_ffn_weights():
    net = build_pl_gd_transformer(5, 4, 0.01, 1)
    block = net.stacks[0][0]
    assert len(block.attn.q) == 2 and block.ffn is not None
    assert sum(p.numel() for p in net.parameters()) > 0 and len(net.stacks[0]) == 3  # N-1 blocks


def test_error_falls_with_beta_and_ablations_break_the_match():
    table = error_table(n_problems=30, betas=(10, 100, 1e3, 1e4), steps=(1,))
    errors = [r["max_abs_error"] for r in table["by_beta"]]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-12
    assert all(r["max_abs_error"] < 1e-12 for r in table["bt"] if r["beta"] >= 1e3)
    full = table["ablations"][0]["max_abs_error"]
    for row in table["ablations"][1:]:
        assert row["max_abs_error"] > 1e6 * max(full, 1e-16), row["variant"]


def test_construct_command_json():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfcorrect",
            "theory",
            "construct",
            "--problems",
            "10",
            "--steps",
            "1",
            "--beta",
            "100,10000",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    table = json.loads(out.stdout)
    assert table["by_beta"][-1]["max_abs_error"] < 1e-9


def test_construct_command_writes_a_run_directory(tmp_path):
    args = [sys.executable, "-m", "selfcorrect", "theory", "construct", "--problems", "5"]
    run = [*args, "--steps", "1", "--beta", "1e9", "--out", str(tmp_path / "c")]
    out = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    config = (tmp_path / "c" / "config.yaml").read_text()
    assert "study: construct" in config and (tmp_path / "c" / "manifest.json").exists()
    table = json.loads((tmp_path / "c" / "construct.json").read_text())
    assert table["iid"][0]["max_abs_error"] < 1e-9
    changed = [*args, "--steps", "3", "--beta", "1e9", "--out", str(tmp_path / "c")]
    out = subprocess.run(changed, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "different configuration" in out.stderr
    for bad, message in (
        (["--beta", "-1"], "--beta values must be > 0"),
        (["--steps", "x"], "--steps"),
    ):
        out = subprocess.run([*args, *bad], capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and message in out.stderr and out.stderr.count("\n") == 1


def test_construction_run_compares_with_a_trained_model(tmp_path):
    from selfcorrect.theory.construct_study import run_construction
    from selfcorrect.theory.train import TrainConfig, override, train

    cfg = override(
        TrainConfig(),
        [
            "steps=2",
            "batch_size=4",
            "eval_size=4",
            "model.n_embd=16",
            "model.n_layer=1",
            "model.n_head=2",
            "model.n_points=6",
        ],
    )
    train(cfg, tmp_path / "m", progress=False)
    table = run_construction(
        tmp_path / "c", n_problems=3, steps=(1,), betas=(1e9,), compare=tmp_path / "m"
    )
    assert table["iid"][0]["max_abs_error"] < 1e-9
    curves = (tmp_path / "c" / "compare_curves.csv").read_text()
    assert "trained TF" in curves and "constructed TF" in curves
    assert "study: construct" in (tmp_path / "c" / "config.yaml").read_text()


def test_the_noise_sweep_and_the_comparison_follow_problems_dtype_and_steps(tmp_path):
    from selfcorrect.theory.construct_study import (
        curve_vs_t,
        evaluation_set,
        noise_sweep,
        run_construction,
    )
    from selfcorrect.theory.evaluate import EVAL_SEED, read_curves
    from selfcorrect.theory.task import sample_task
    from selfcorrect.theory.train import TrainConfig, override, train

    tiny = ["steps=1", "batch_size=2", "eval_size=2", "model.n_embd=8", "model.n_head=1"]
    cfg = override(TrainConfig(), [*tiny, "model.n_layer=1", "model.n_points=5"])
    train(cfg, tmp_path / "m", progress=False)
    table = run_construction(
        tmp_path / "c",
        d=3,
        n=5,
        n_problems=4,
        steps=(3, 2),
        betas=(1e9,),
        dtype="float32",
        compare=tmp_path / "m",
    )
    assert table["noise_settings"] == {"steps": 2, "problems": 4, "dtype": "float32"}
    saved = json.loads((tmp_path / "c" / "construct.json").read_text())
    assert saved["noise_settings"] == table["noise_settings"]
    swept = noise_sweep(d=3, n=5, steps=2, n_problems=4, dtype=torch.float32)
    assert saved["noise"] == swept
    assert swept != noise_sweep(d=3, n=5, steps=2, n_problems=4, dtype=torch.float64)
    assert swept != noise_sweep(d=3, n=5, steps=1, n_problems=4, dtype=torch.float32)
    assert swept[0]["stderr"] != noise_sweep(d=3, n=5, steps=2, dtype=torch.float32)[0]["stderr"]
    curves = read_curves(tmp_path / "c" / "compare_curves.csv")
    drawn_curve = [r for r in curves if r["predictor"] == "constructed TF (2 GD steps, eta 0.01)"]
    assert {r["t"] for r in curves if r["predictor"] == "trained TF"} == {2, 3, 4}
    in_32 = curve_vs_t(d=5, n=5, steps=2, n_problems=4, dtype=torch.float32)
    assert in_32 != curve_vs_t(d=5, n=5, steps=2, n_problems=4, dtype=torch.float64)
    assert [(r["t"], r["error"], r["stderr"]) for r in drawn_curve] == [
        (r["t"], r["error"], r["stderr"]) for r in in_32
    ]
    # the constructed network is scored on the trained transformer's evaluation sequences
    drawn = sample_task(4, n_dims=5, n_points=5, generator=torch.Generator().manual_seed(EVAL_SEED))
    assert torch.equal(evaluation_set(4, 5, 5).y_star, drawn.y_star.double())
