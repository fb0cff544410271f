"""Task, transformer variants (causality), baselines and the training loop."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from selfcorrect.runs import RunDirError
from selfcorrect.theory.baselines import GDPredictor, best_in_context, ls_extrapolation
from selfcorrect.theory.evaluate import error_curve, evaluate
from selfcorrect.theory.losses import pl_loss_per_prefix
from selfcorrect.theory.model import AlignmentTransformer, ModelConfig
from selfcorrect.theory.task import sample_task, tokens
from selfcorrect.theory.train import TrainConfig, load_model, override, read_log, train


def _batch(b=4, noise=0.0, seed=0):
    return sample_task(
        b, n_dims=5, n_points=8, noise=noise, generator=torch.Generator().manual_seed(seed)
    )


def test_task_is_seeded_and_noise_only_touches_rewards():
    a, b = _batch(seed=3), _batch(seed=3)
    assert torch.equal(a.ys, b.ys) and torch.equal(a.rs, b.rs)
    noisy = _batch(seed=3, noise=1.0)
    assert torch.equal(noisy.ys, a.ys) and not torch.equal(noisy.rs, a.rs)
    # y_i = r_i x W* + (1 - r_i) x W_eps with clean rewards: r = 1 gives y*
    assert tokens(a.xs, a.ys, a.rs).shape == (4, 24, 5)
    assert torch.allclose(tokens(a.xs, a.ys, a.rs)[:, 2::3, 0], a.rs)


@pytest.mark.parametrize(
    "attention, ffn, n_head", list(itertools.product(["softmax", "linear"], [True, False], [1, 2]))
)
def test_every_variant_is_causal(attention, ffn, n_head):
    torch.manual_seed(0)
    model = AlignmentTransformer(
        ModelConfig(n_points=8, n_embd=16, n_layer=2, n_head=n_head, attention=attention, ffn=ffn)
    )
    batch = _batch()
    base = model(batch.xs, batch.ys, batch.rs)
    for m in range(8):
        ys, rs = batch.ys.clone(), batch.rs.clone()
        ys[:, m:] += torch.randn_like(ys[:, m:])  # perturb example m and everything after it
        rs[:, m:] = torch.rand_like(rs[:, m:])
        out = model(batch.xs, ys, rs)
        assert torch.allclose(
            out[:, : m + 1], base[:, : m + 1], atol=1e-6
        )  # pred at m sees only 0..m-1
        if m < 7:
            assert not torch.allclose(out[:, m + 1 :], base[:, m + 1 :])


def test_gd_baselines_lower_the_pl_loss():
    batch = _batch(b=16)
    start = GDPredictor("adam", steps=0)(batch.xs, batch.ys, batch.rs)
    for method, lr in (("adam", 0.1), ("gd", 0.5), ("pgd", 2.0)):
        pred = GDPredictor(method, steps=30, lr=lr)(batch.xs, batch.ys, batch.rs)
        before = pl_loss_per_prefix(start, batch.ys, batch.rs)[:, 2:].mean()
        after = pl_loss_per_prefix(pred, batch.ys, batch.rs)[:, 2:].mean()
        assert after < before, method


def test_reference_predictors():
    batch = _batch(b=64)
    ls = ls_extrapolation(batch.xs, batch.ys, batch.rs)
    assert torch.allclose(
        ls[:, 2:], batch.y_star[:, None].expand_as(ls[:, 2:]), atol=1e-3
    )  # exact, clean rewards
    best = best_in_context(batch.xs, batch.ys, batch.rs)
    m = 5
    top = batch.rs[:, :m].argmax(-1)
    assert torch.equal(best[:, m], batch.ys[torch.arange(64), top])
    err, se = error_curve(best, batch.y_star)
    assert err[7] < err[1] and (se >= 0).all()


def test_evaluate_rows_and_training_resume(tmp_path):
    cfg = override(
        TrainConfig(),
        [
            "steps=6",
            "batch_size=8",
            "eval_every=3",
            "checkpoint_every=3",
            "eval_size=8",
            "model.n_embd=16",
            "model.n_layer=1",
            "model.n_head=2",
            "warmup=2",
        ],
    )
    train(cfg, tmp_path / "m", progress=False)
    log = read_log(tmp_path / "m")
    assert len(log) == 6 and log[2]["eval_error_t"]  # 6 steps, eval at step 3
    # a kill after the step-3 checkpoint: the rerun redoes steps 4-6 and logs each step once
    state = torch.load(tmp_path / "m" / "checkpoint.pt", weights_only=True)
    state["step"] = 3
    torch.save(state, tmp_path / "m" / "checkpoint.pt")
    train(cfg, tmp_path / "m", progress=False)
    assert [int(r["step"]) for r in read_log(tmp_path / "m")] == [1, 2, 3, 4, 5, 6]
    model, _ = load_model(tmp_path / "m")
    rows = evaluate({"TF": model}, noise_levels=(0.0, 1.0), n_eval=8, n_points=20)
    assert {r["t"] for r in rows} == set(range(1, 20)) and {r["noise"] for r in rows} == {0.0, 1.0}
    with pytest.raises(RunDirError, match="different configuration"):
        train(override(cfg, ["steps=7"]), tmp_path / "m", progress=False)
    with pytest.raises(ValueError, match="unknown config key"):
        override(cfg, ["model.n_layers=3"])


def test_training_stops_at_target_and_resumes(tmp_path):
    cfg = override(
        TrainConfig(),
        [
            "steps=9",
            "batch_size=8",
            "eval_every=2",
            "checkpoint_every=100",
            "eval_size=8",
            "model.n_embd=16",
            "model.n_layer=1",
            "model.n_head=2",
            "warmup=2",
        ],
    )
    train(cfg, tmp_path / "m", progress=False, stop_below=2.0)  # any error is below 2
    rows = read_log(tmp_path / "m")
    assert [int(r["step"]) for r in rows] == [1, 2] and rows[-1]["eval_error_t"]  # first eval
    assert torch.load(tmp_path / "m" / "checkpoint.pt", weights_only=True)["step"] == 2
    train(cfg, tmp_path / "m", progress=False, stop_below=-1.0)  # unreachable: runs to the end
    rows = read_log(tmp_path / "m")
    assert [int(r["step"]) for r in rows] == list(range(1, 10))
    seconds = [float(r["seconds"]) for r in rows]
    assert seconds == sorted(seconds)  # wall time adds up across the resumed call


def test_theory_commands_end_to_end(tmp_path):
    import subprocess
    import sys

    tiny = [
        "--set",
        "steps=4",
        "--set",
        "batch_size=8",
        "--set",
        "eval_size=8",
        "--set",
        "eval_every=2",
        "--set",
        "model.n_embd=16",
        "--set",
        "model.n_layer=1",
        "--set",
        "model.n_head=2",
    ]

    def cli(*args):
        out = subprocess.run(
            [sys.executable, "-m", "selfcorrect", "theory", *args],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert "error at t = 15" in cli(
        "train", "--preset", "quick", *tiny, "--out", str(tmp_path / "m"), "-q"
    )
    assert "t=15" in cli("eval", str(tmp_path / "m"), "--noise", "0,1", "--n-eval", "16")
    assert (tmp_path / "m" / "curves.csv").exists()
    cli("figure", "2d", "--preset", "quick", *tiny, "--out", str(tmp_path / "f"), "-q")
    panel = tmp_path / "f" / "quick" / "2d"
    assert (panel / "figure_2d.png").exists() and (panel / "report.html").exists()
    assert "linear attention" in (panel / "curves.csv").read_text()
    assert "study: theory-panel" in (panel / "config.yaml").read_text()
    metrics = json.loads((panel / "metrics.json").read_text())
    assert set(metrics["error_stderr"]["linear attention"]["0"]) == {"2", "5", "10", "15"}
    per_sequence = metrics["per_sequence"]  # what the verdicts pair their z on
    assert per_sequence["t"] == 15 and set(per_sequence["errors"]) == {
        "softmax attention",
        "linear attention",
    }
    assert len(per_sequence["errors"]["linear attention"]["0"]) == 256  # the quick preset's n_eval
    trained = metrics["training"]["linear attention"]
    assert trained["steps_done"] == 4 and trained["torch_threads"][0] >= 1  # wall time's context
    cli(
        "train", "--preset", "quick", *tiny, "--stop-below", "2", "--out", str(tmp_path / "s"), "-q"
    )
    log = (tmp_path / "s" / "train_log.csv").read_text().splitlines()
    assert len(log) == 3  # header + steps 1-2: stopped at the first evaluation (error < 2)


# Only fields no panel varies: a --set on depth, heads, width, attention or FFN is refused.
TINY_SETS = ["steps=2", "batch_size=4", "eval_size=4", "eval_every=2"]


def test_train_all_trains_every_distinct_model_once_in_workers_and_reuses_them(tmp_path):
    """Every distinct model of 2a-2f (the base once, though four panels use it), trained in two
    worker processes; a second call trains nothing."""
    from selfcorrect.theory.figures import all_models, train_all

    done: list[str] = []
    train_all("quick", tmp_path, sets=TINY_SETS, jobs=2, on_done=lambda n, s: done.append(n))
    models = sorted(p.name for p in (tmp_path / "models").iterdir())
    # base (4 layers, 2 heads, 64 wide) + depths 1, 2, 3 + linear + heads 1, 3, 4 at 32 per
    # head + no FFN
    assert len(models) == 9 == len(done) == len(all_models("quick", TINY_SETS))
    assert all((tmp_path / "models" / m / "checkpoint.pt").exists() for m in models)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("models/*/checkpoint.pt")}
    train_all("quick", tmp_path, sets=TINY_SETS, jobs=1)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("models/*/checkpoint.pt")} == stamps


@pytest.mark.slow
def test_theory_panels_command_draws_all_panels_and_the_summary(tmp_path):
    import subprocess
    import sys

    sets = [x for s in TINY_SETS for x in ("--set", s)]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfcorrect",
            "theory",
            "panels",
            "--preset",
            "quick",
            *sets,
            "--jobs",
            "2",
            "--out",
            str(tmp_path),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr
    root = tmp_path / "quick"
    for panel in ("2a", "2b", "2c", "2d", "2e", "2f"):
        assert (root / panel / f"figure_{panel}.png").exists()
    summary = (root / "summary.md").read_text()
    assert "**TF tracks GD** (2a):" in summary and "| 2f | without FFN |" in summary


def test_tuned_step_size_is_the_best_of_the_grid_on_sequences_of_its_own():
    from selfcorrect.theory.baselines import TUNE_SEED, tune_step_size
    from selfcorrect.theory.evaluate import EVAL_SEED, sequence_errors

    grid = (1e-3, 0.1, 10.0)
    lr, errors = tune_step_size("pgd", steps=5, n_tune=16, n_points=8, grid=grid)
    batch = sample_task(
        16, n_dims=5, n_points=8, generator=torch.Generator().manual_seed(TUNE_SEED)
    )
    expected = {}
    for candidate in grid:
        pred = GDPredictor("pgd", steps=5, lr=candidate)(batch.xs, batch.ys, batch.rs)
        expected[candidate] = float(sequence_errors(pred, batch.y_star)[:, 1:].mean())
    assert errors == pytest.approx(expected) and len(set(expected.values())) == 3
    assert lr == min(expected, key=lambda c: expected[c])
    assert TUNE_SEED != EVAL_SEED  # never tuned on the sequences it is scored on
    with pytest.raises(ValueError, match="tuned step size"):
        tune_step_size("adam")
