"""Theory training: validated options, safe checkpoints, the device threaded through every step,
the paper-recipe model options, panel grids from presets, run directories."""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from selfcorrect.cli import app
from selfcorrect.runs import RunDir, RunDirError
from selfcorrect.theory import train as T
from selfcorrect.theory.checkpoint import CheckpointError, load_checkpoint
from selfcorrect.theory.config import TrainConfig, examples_at, override
from selfcorrect.theory.evaluate import read_curves
from selfcorrect.theory.figures import (
    PanelGrid,
    all_models,
    grid_from_dict,
    load_grid,
    load_preset,
    run_panel,
    trained,
    variants,
)
from selfcorrect.theory.model import AlignmentTransformer, ModelConfig

TINY = [
    "steps=4",
    "batch_size=4",
    "eval_every=2",
    "checkpoint_every=2",
    "eval_size=4",
    "warmup=1",
    "model.n_embd=16",
    "model.n_layer=1",
    "model.n_head=2",
    "model.n_points=6",
]


def tiny(*extra: str) -> TrainConfig:
    return override(TrainConfig(), [*TINY, *extra])


# ---- options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("eval_every=0", "eval_every must be >= 1, got 0"),
        ("steps=0", "steps must be >= 1"),
        ("lr=-0.001", "lr must be > 0"),
        ("lr=.nan", "lr must be a finite number"),
        ("batch_size=0", "batch_size must be >= 1"),
        ("warmup=-1", "warmup must be >= 0"),
        ("min_lr_ratio=2", "min_lr_ratio must be in [0, 1]"),
        ("grad_clip=-1", "grad_clip must be >= 0"),
        ("train_noise=1.5", "train_noise must be in [0, 1]"),
        ("eval_size=1", "eval_size must be >= 2"),
        ("checkpoint_every=0", "checkpoint_every must be >= 1"),
        ("snapshot_every=-5", "snapshot_every must be >= 0"),
        ("seed=-1", "seed must be >= 0"),
        ("curriculum_start=2", "curriculum_start must be 0 (off) or in [3"),
        ("curriculum_start=5", "curriculum_steps must be >= 1 when curriculum_start is set"),
        ("recipe=fast", "recipe must be ours or paper"),
        ("score=l2", "score must be cosine, inner, neg_sq_dist"),
        ("steps=abc", "steps must be of type int, got 'abc'"),
        ("steps=2.5", "steps must be of type int"),
        ("bf16=maybe", "bf16 must be of type bool"),
        ("device=gpu9", "device must be a torch device"),
        ("model.n_layer=0", "model.n_layer must be >= 1"),
        ("model.n_head=0", "model.n_head must be >= 1"),
        ("model.n_head=5", "not divisible by n_head"),
        ("model.n_points=2", "model.n_points must be >= 3"),
        ("model.attention=cosine", "attention must be softmax or linear"),
        ("model.init=xavier", "model.init must be torch or gpt2"),
        ("model.gelu=relu", "model.gelu must be exact or tanh"),
        ("model.keep_ln2=true", "keep_ln2 applies only without the FFN"),
        ("model=3", "unknown config key 'model'"),
        ("model.n_layers=3", "unknown config key 'model.n_layers'"),
        ("stepz=3", "unknown config key 'stepz'"),
        ("steps", "must look like key=value"),
    ],
)
def test_bad_options_are_one_clear_error(assignment, message):
    with pytest.raises(ValueError) as info:
        override(TrainConfig(), [assignment])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_numbers_in_set_take_their_fields_type():
    """YAML reads 1e-3 as a string: a float field takes any number, an int field a whole one."""
    cfg = override(TrainConfig(), ["lr=1e-3", "steps=1e3", "warmup=2.0", "model.n_layer=4e0"])
    assert cfg.lr == 0.001 and isinstance(cfg.lr, float)
    assert (cfg.steps, cfg.warmup, cfg.model.n_layer) == (1000, 2, 4)
    assert all(type(v) is int for v in (cfg.steps, cfg.warmup, cfg.model.n_layer))
    for assignment, message in (
        ("steps=1.5", "steps must be of type int, got 1.5 (not a whole number)"),
        ("steps=2.5e0", "steps must be of type int, got '2.5e0' (not a whole number)"),
        ("lr=fast", "lr must be of type float, got 'fast'"),
        ("lr=true", "lr must be of type float, got True"),
    ):
        with pytest.raises(ValueError) as info:
            override(TrainConfig(), [assignment])
        assert str(info.value) == message


def test_the_paper_recipe_refuses_options_only_ours_uses():
    """Adam at a constant lr uses no weight decay, warm-up, decay floor or clipping: setting one
    would change the run's name (its identity) and nothing else."""
    assert override(TrainConfig(), ["recipe=paper"]).recipe == "paper"  # defaults are fine
    for assignment in ("weight_decay=0.1", "warmup=200", "min_lr_ratio=0", "grad_clip=0.5"):
        key = assignment.partition("=")[0]
        with pytest.raises(ValueError) as info:
            override(TrainConfig(), ["recipe=paper", assignment])
        message = str(info.value)
        assert message.startswith(f"{key} must be left at its default")
        assert "only recipe=ours uses it" in message and "\n" not in message
        assert override(TrainConfig(), [assignment]).recipe == "ours"  # ours takes it
    with pytest.raises(ValueError, match="warmup must be left at its default"):
        load_preset("paper-recipe", ["warmup=10"])


def test_bad_options_on_the_command_line_write_nothing(tmp_path):
    for args in (["--set", "eval_every=0"], ["--set", "lr=-1"], ["--stop-below", "-3"]):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "selfcorrect",
                "theory",
                "train",
                *args,
                "--out",
                str(tmp_path / "m"),
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1
        assert "Traceback" not in out.stderr
        assert not (tmp_path / "m").exists()  # validated before anything is written


def test_curriculum_grows_the_sequences():
    cfg = tiny("curriculum_start=3", "curriculum_steps=3")
    assert [examples_at(cfg, s) for s in range(5)] == [3, 4, 5, 6, 6]
    assert examples_at(tiny(), 0) == 6
    gen = torch.Generator().manual_seed(0)
    assert [T.next_batch(cfg, gen, s).ys.shape[1] for s in (0, 2, 3)] == [3, 5, 6]


def test_training_with_a_curriculum_logs_the_sequence_length(tmp_path):
    T.train(tiny("curriculum_start=3", "curriculum_steps=3"), tmp_path / "m", progress=False)
    assert [int(r["examples"]) for r in T.read_log(tmp_path / "m")] == [3, 4, 5, 6]


# ---- checkpoints ----------------------------------------------------------------------------


class _Payload:
    """Unpickling this would create a file (a stand-in for any code a crafted file could run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    cfg = tiny()
    T.train(cfg, tmp_path / "m", progress=False)
    T.train(cfg, tmp_path / "m2", progress=False)
    ckpt = tmp_path / "m" / "checkpoint.pt"
    plain = torch.load(ckpt, weights_only=True)  # our checkpoints: tensors and numbers only
    assert set(plain) == {"model", "opt", "generator", "step", "seconds"}
    marker = tmp_path / "pwned"
    with open(ckpt, "wb") as fh:  # a plain pickle is what torch.load's legacy path reads
        pickle.dump({"model": {}, "x": _Payload(marker)}, fh, protocol=2)
    with pytest.raises(CheckpointError) as info:
        T.load_model(tmp_path / "m")
    assert str(ckpt) in str(info.value) and "refused" in str(info.value)
    (tmp_path / "m2" / "checkpoint.pt").write_bytes(ckpt.read_bytes())
    with pytest.raises(CheckpointError, match="refused"):  # resuming reads it the same way
        T.train(cfg, tmp_path / "m2", progress=False)
    assert not marker.exists()
    torch.save({"model": {}, "x": _Payload(marker)}, ckpt)  # the zip format too
    with pytest.raises(CheckpointError, match="refused"):
        T.load_model(tmp_path / "m")
    assert not marker.exists()
    out = subprocess.run(
        [sys.executable, "-m", "selfcorrect", "theory", "eval", str(tmp_path / "m"), "--no-gd"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and str(ckpt) in out.stderr
    assert not marker.exists()


def test_unreadable_or_incomplete_checkpoints_name_the_file(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    torch.save({"step": 3}, bad)
    with pytest.raises(CheckpointError, match="needs keys model"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="no checkpoint there"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_checkpoint_that_fails_to_load_says_why(tmp_path, monkeypatch):
    """A device error or an out-of-memory error is not a corrupt file: the message carries the
    exception's own text."""
    T.train(tiny(), tmp_path / "m", progress=False)
    ckpt = tmp_path / "m" / "checkpoint.pt"

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore detail")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "load", out_of_memory)
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(ckpt)
    message = str(info.value)
    assert message == (
        f"{ckpt}: could not be loaded (RuntimeError: CUDA out of memory. Tried to allocate "
        "20.00 GiB)"
    )
    ckpt.write_bytes(ckpt.read_bytes()[:200])  # a truncated file says so too
    with pytest.raises(CheckpointError, match="PytorchStreamReader failed"):
        load_checkpoint(ckpt)


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
def test_checkpoints_load_on_the_cpu_and_resume_moves_them_to_the_device(tmp_path):
    """load_state_dict places the state: the model's on its device, the optimiser's moments on
    their parameters' device and its step counters on the CPU (as a fresh non-capturable Adam
    keeps them). "meta" stands in for a GPU; mapping the file onto it would put the counters
    there too."""
    T.train(tiny(), tmp_path / "m", progress=False)
    state = load_checkpoint(tmp_path / "m" / "checkpoint.pt", need=("model", "opt"))
    assert {t.device.type for t in state["model"].values()} == {"cpu"}
    cfg = replace(tiny(), device="meta")
    model, opt = T.build(cfg)
    done = T.resume(RunDir(tmp_path / "m", {}), model, opt, torch.Generator(), cfg)
    assert done.step == 4
    assert {p.device.type for p in model.parameters()} == {"meta"}
    moments = {st["exp_avg"].device.type for st in opt.state.values()}
    steps = {st["step"].device.type for st in opt.state.values()}
    assert moments == {"meta"} and steps == {"cpu"}


def test_snapshots_load_like_the_official_step_checkpoint(tmp_path):
    cfg = tiny("snapshot_every=2")
    model = T.train(cfg, tmp_path / "m", progress=False)
    assert sorted(p.name for p in (tmp_path / "m").glob("model_step*.pt")) == [
        "model_step2.pt",
        "model_step4.pt",
    ]
    at2, _ = T.load_model(tmp_path / "m", step=2)
    at4, _ = T.load_model(tmp_path / "m", step=4)
    assert all(
        torch.equal(a, b) for a, b in zip(at4.state_dict().values(), model.state_dict().values())
    )
    assert not torch.equal(at2.read_out.weight, at4.read_out.weight)
    with pytest.raises(CheckpointError) as info:
        T.load_model(tmp_path / "m", step=3)
    assert str(info.value) == (
        f"{tmp_path / 'm' / 'model_step3.pt'}: no such snapshot; the snapshots in "
        f"{tmp_path / 'm'}: model_step2.pt, model_step4.pt"
    )
    T.train(tiny(), tmp_path / "none", progress=False)
    with pytest.raises(CheckpointError, match="the snapshots in .*: none$"):
        T.load_model(tmp_path / "none", step=2)


def test_eval_says_and_records_which_model_state_it_scored(tmp_path):
    """curves.csv is overwritten by every eval: the JSON beside it says which checkpoint, at
    which step of how many, on how many sequences and noise levels; an unfinished model warns."""
    T.train(tiny("snapshot_every=2"), tmp_path / "m", progress=False, stop_below=1e9)  # step 2
    runner = CliRunner()
    args = ["theory", "eval", str(tmp_path / "m"), "--no-gd", "--n-eval", "4", "--noise", "0,1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "scoring checkpoint.pt: step 2 of 4 planned; 4 sequences, noise 0, 1" in result.stdout
    assert "warning:" in result.stderr and "has not finished training (2 of 4 steps)" in (
        result.stderr
    )
    record = yaml.safe_load((tmp_path / "m" / "curves.json").read_text())
    assert record == {
        "checkpoint": "checkpoint.pt",
        "step": 2,
        "steps_planned": 4,
        "finished": False,
        "n_eval": 4,
        "noise": [0.0, 1.0],
        "gd": False,
        "device": "cpu",
    }
    T.train(tiny("snapshot_every=2"), tmp_path / "m", progress=False)  # now complete
    result = runner.invoke(app, [*args[:3], "--no-gd", "--n-eval", "4", "--step", "2"])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr  # a snapshot is an intermediate state by choice
    snap = yaml.safe_load((tmp_path / "m" / "curves_step2.json").read_text())
    assert (snap["checkpoint"], snap["step"], snap["steps_planned"]) == ("model_step2.pt", 2, 4)
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "warning" not in result.stderr
    assert yaml.safe_load((tmp_path / "m" / "curves.json").read_text())["finished"] is True


def test_eval_scores_the_tuned_plain_and_preconditioned_gd_baselines(tmp_path):
    T.train(tiny(), tmp_path / "m", progress=False)
    args = ["theory", "eval", str(tmp_path / "m"), "--n-eval", "4", "--gd-methods", "adam,gd,pgd"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = yaml.safe_load((tmp_path / "m" / "curves.json").read_text())
    methods = {v["method"]: v for v in record["baselines"].values()}
    assert set(methods) == {"adam", "gd", "pgd"} and methods["adam"]["lr"] == 0.1
    for name in ("gd", "pgd"):  # the step size chosen is the tuning's best
        tried = record["tuning"][name]
        assert f"{methods[name]['lr']:.4g}" == min(tried, key=lambda k: tried[k])
    labels = {row["predictor"] for row in read_curves(tmp_path / "m" / "curves.csv")}
    assert labels == {"TF", *record["baselines"]}
    bad = CliRunner().invoke(app, [*args[:-1], "adam,sgd"])
    assert isinstance(bad.exception, ValueError) and "not sgd" in str(bad.exception)
    assert "scoring" not in bad.output  # refused before the model loads


# ---- the device -----------------------------------------------------------------------------


def test_every_training_step_runs_on_the_configured_device(tmp_path):
    """No CUDA here: the "meta" device stands in for it. Model, optimiser state, batches, loss
    and a resumed checkpoint must all land on cfg.device (a step that hard-codes the CPU fails)."""
    cfg = replace(tiny(), device="meta")
    model, opt = T.build(cfg)
    assert {p.device.type for p in model.parameters()} == {"meta"}
    gen = torch.Generator().manual_seed(0)
    batch = T.next_batch(cfg, gen, 0)
    assert {t.device.type for t in (batch.xs, batch.ys, batch.rs, batch.y_star)} == {"meta"}
    loss = T.train_step(model, opt, batch, cfg, lr=1e-3)
    assert loss.device.type == "meta"
    assert {s.device.type for st in opt.state.values() for s in st.values()} <= {"meta", "cpu"}
    # a resumed checkpoint follows cfg.device: see
    # test_checkpoints_load_on_the_cpu_and_resume_moves_them_to_the_device
    cpu_model = T.train(tiny(), tmp_path / "m", progress=False)
    assert cpu_model.read_out.weight.device.type == "cpu"


def test_autocast_follows_the_device_type():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available" on this machine
        ctx = T.autocast(replace(tiny(), device="cuda", bf16=True))
    assert ctx.device == "cuda" and ctx.fast_dtype == torch.bfloat16
    assert T.autocast(replace(tiny(), bf16=True)).device == "cpu"
    with T.autocast(tiny()):  # bf16 off: no autocast at all
        assert not torch.is_autocast_enabled("cpu")


def test_cuda_without_a_gpu_is_one_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        T.train(replace(tiny(), device="cuda"), tmp_path / "m", progress=False)
    assert not (tmp_path / "m").exists()


# ---- model options --------------------------------------------------------------------------


def test_gpt2_init_matches_hugging_face_gpt2():
    torch.manual_seed(0)
    cfg = ModelConfig(n_embd=96, n_layer=20, n_head=3, init="gpt2")
    model = AlignmentTransformer(cfg)
    block = model.blocks[0]
    assert block.attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert block.ffn[1].weight.std().item() == pytest.approx(0.02, rel=0.05)
    resid = 0.02 / math.sqrt(2 * 20)
    assert block.attn.proj.weight.std().item() == pytest.approx(resid, rel=0.05)
    assert block.ffn[3].weight.std().item() == pytest.approx(resid, rel=0.05)
    for lin in (block.attn.qkv, block.attn.proj, block.ffn[1], block.ffn[3]):
        assert torch.count_nonzero(lin.bias) == 0
    assert model.pos.std().item() == pytest.approx(0.02, rel=0.05)
    default = AlignmentTransformer(replace(cfg, init="torch"))
    assert default.blocks[0].attn.proj.weight.std().item() > 0.05  # PyTorch's U(+-1/sqrt(96))
    # read-in/out keep PyTorch's init in both, as the original code's linear maps do
    assert model.read_in.weight.abs().max().item() > 0.1


def test_gelu_and_the_official_no_ffn_block():
    tanh = AlignmentTransformer(ModelConfig(n_embd=16, n_layer=1, n_head=2, gelu="tanh"))
    assert tanh.blocks[0].ffn[2].approximate == "tanh"
    exact = AlignmentTransformer(ModelConfig(n_embd=16, n_layer=1, n_head=2))
    assert exact.blocks[0].ffn[2].approximate == "none"
    torch.manual_seed(0)
    cfg = ModelConfig(n_embd=16, n_layer=1, n_head=2, ffn=False, keep_ln2=True)
    block = AlignmentTransformer(cfg).blocks[0]
    h = 3 + 5 * torch.randn(2, 7, 16)
    out = block(h)  # ln_2 at init: zero mean, unit variance per token
    assert torch.allclose(out.mean(-1), torch.zeros(2, 7), atol=1e-5)
    assert torch.allclose(out.var(-1, unbiased=False), torch.ones(2, 7), atol=1e-3)
    plain = AlignmentTransformer(replace(cfg, keep_ln2=False)).blocks[0]
    assert plain.ln2 is None and not torch.allclose(plain(h).mean(-1), torch.zeros(2, 7), atol=1e-2)


# ---- presets, panels, run directories -------------------------------------------------------


def test_panel_grids_are_preset_fields_not_names():
    paper = load_preset("paper")
    grid = load_grid("paper")
    assert [c.model.n_layer for _, c in variants("2c", paper, grid)] == [5, 10, 15, 20]
    assert [(c.model.n_head, c.model.n_embd) for _, c in variants("2e", paper, grid)] == [
        (1, 32),
        (3, 96),
        (4, 128),
        (6, 192),
    ]
    assert [(c.model.ffn, c.model.keep_ln2) for _, c in variants("2f", paper, grid)] == [
        (True, False),
        (False, False),
        (False, True),
    ]
    custom = grid_from_dict({"depths": [2, 7], "heads": [5], "head_dim": 8})
    assert [c.model.n_layer for _, c in variants("2c", paper, custom)] == [2, 7]
    assert [c.model.n_embd for _, c in variants("2e", paper, custom)] == [40]
    assert load_grid("quick").depths == (1, 2, 3, 4)
    recipe = load_preset("paper-recipe")
    assert (recipe.model.init, recipe.model.gelu, recipe.recipe, recipe.lr) == (
        "gpt2",
        "tanh",
        "paper",
        1e-4,
    )
    assert (recipe.batch_size, recipe.steps, recipe.snapshot_every) == (256, 3000, 500)
    with pytest.raises(ValueError, match="unknown panels key"):
        grid_from_dict({"depth": [1]})
    with pytest.raises(ValueError, match="panels.depths"):
        grid_from_dict({"depths": ["five"]})
    with pytest.raises(ValueError, match="panels.noise"):
        PanelGrid(noise=(1.5,))


def test_the_manifest_records_the_thread_counts_training_ran_with(tmp_path):
    """Wall time depends on the torch thread count: every count used over resumed runs is kept,
    and reusing a finished model (no step trained) adds none."""
    cfg, before = tiny("eval_every=2"), torch.get_num_threads()

    def threads() -> list[int]:
        return yaml.safe_load((tmp_path / "m" / "manifest.json").read_text())["torch_threads"]

    try:
        torch.set_num_threads(1)
        T.train(cfg, tmp_path / "m", progress=False, stop_below=1e9)  # stops at the first eval
        assert threads() == [1]
        torch.set_num_threads(2)
        T.train(cfg, tmp_path / "m", progress=False)
        assert threads() == [1, 2]
        torch.set_num_threads(3)
        T.train(cfg, tmp_path / "m", progress=False)  # complete: trains nothing
        assert threads() == [1, 2]
    finally:
        torch.set_num_threads(before)


def test_training_is_a_run_directory_and_resumes(tmp_path):
    cfg = tiny()
    T.train(replace(cfg, steps=2), tmp_path / "other", progress=False)
    T.train(cfg, tmp_path / "m", progress=False)
    saved = yaml.safe_load((tmp_path / "m" / "config.yaml").read_text())
    assert saved["study"] == "theory-train" and "device" not in saved
    manifest = yaml.safe_load((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["steps_done"] == 4 and manifest["seconds"] > 0 and "finished" in manifest
    with pytest.raises(RunDirError, match="steps"):
        T.train(replace(cfg, steps=5), tmp_path / "m", progress=False)
    # a config saved before an option existed (its default) still resumes
    del saved["snapshot_every"], saved["model"]["gelu"]
    (tmp_path / "m" / "config.yaml").write_text(yaml.safe_dump(saved))
    T.train(cfg, tmp_path / "m", progress=False)
    assert yaml.safe_load((tmp_path / "m" / "config.yaml").read_text())["model"]["gelu"] == "exact"
    # ...but not when the option now differs from its default
    saved = yaml.safe_load((tmp_path / "m" / "config.yaml").read_text())
    del saved["snapshot_every"]
    (tmp_path / "m" / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(RunDirError, match="snapshot_every"):
        T.train(replace(cfg, snapshot_every=2), tmp_path / "m", progress=False)


def test_a_broken_config_yaml_is_one_line_naming_it(tmp_path):
    T.train(tiny(), tmp_path / "m", progress=False)
    config = tmp_path / "m" / "config.yaml"
    for text, message in (
        ("steps: [1\n", "not a readable config"),
        ("- 1\n", "not a config mapping"),
        ("steps: -4\n", "steps must be >= 1"),
    ):
        config.write_text(text)
        with pytest.raises(ValueError, match=message) as info:
            T.load_model(tmp_path / "m")
        assert str(config) in str(info.value)
    with pytest.raises(ValueError, match="not a readable config"):
        config.write_text("steps: [1\n")
        T.train(tiny(), tmp_path / "m", progress=False)


# ---- reusing a finished model -----------------------------------------------------------------


def _manifest(model_dir: Path) -> dict:
    return yaml.safe_load((model_dir / "manifest.json").read_text())


def test_reusing_a_finished_model_leaves_its_manifest_alone(tmp_path):
    """The manifest is the record of the calls that trained the model (revision, versions,
    platform, finish time): a call that only reuses it, or fails to, must not rewrite it."""
    cfg, out = tiny(), tmp_path / "m"
    first = T.train(cfg, out, progress=False)
    manifest = _manifest(out)
    manifest.update(
        git_revision="the revision that trained it",
        platform="the machine that trained it",
        finished="2000-01-01T00:00:00+00:00",
    )
    (out / "manifest.json").write_text(json.dumps(manifest))
    text = (out / "manifest.json").read_text()
    again = T.train(cfg, out, progress=False)
    assert (out / "manifest.json").read_text() == text
    assert not again.training and all(
        torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values())
    )
    (out / "checkpoint.pt").write_bytes(b"damaged")
    with pytest.raises(CheckpointError):
        T.train(cfg, out, progress=False)
    assert (out / "manifest.json").read_text() == text  # still finished, nothing rewritten
    with pytest.raises(RunDirError, match="different configuration"):
        T.train(replace(cfg, steps=6), out, progress=False)  # another config is still refused


def test_a_complete_checkpoint_without_a_finish_record_is_finished(tmp_path):
    """Killed between the last checkpoint and the manifest's finish: the next call records it."""
    cfg, out = tiny(), tmp_path / "m"
    T.train(cfg, out, progress=False)
    manifest = _manifest(out)
    del manifest["finished"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    T.train(cfg, out, progress=False)
    assert "finished" in _manifest(out) and _manifest(out)["steps_done"] == 4


def test_the_manifest_records_the_devices_training_ran_on(tmp_path):
    """Like the thread counts: the union over the calls that trained a step (no GPU here, so the
    second device is recorded through `finish` directly), and a panel's training summary carries
    it for the wall-time note."""
    cfg, out = tiny(), tmp_path / "m"
    T.train(cfg, out, progress=False, stop_below=1e9)  # stops at step 2
    assert _manifest(out)["devices"] == ["cpu"] and "device" not in _manifest(out)
    T.finish(T.open_run(cfg, out), cfg, 4, False, trained_on="cuda:0")
    assert _manifest(out)["devices"] == ["cpu", "cuda:0"]
    T.finish(T.open_run(cfg, out), cfg, 4, False, trained_on=None)  # trained nothing
    assert _manifest(out)["devices"] == ["cpu", "cuda:0"]
    _, summary = trained(tmp_path, cfg, progress=False)
    assert summary["devices"] == ["cpu"] and "device" not in summary


# ---- panels vary their own fields -------------------------------------------------------------


@pytest.mark.parametrize(
    "panel, assignment",
    [
        ("2c", "model.n_layer=2"),
        ("2d", "model.attention=linear"),
        ("2e", "model.n_head=1"),
        ("2e", "model.n_embd=32"),
        ("2f", "model.ffn=false"),
        ("2f", "model.keep_ln2=true"),
    ],
)
def test_a_panel_refuses_a_set_on_a_field_it_varies(tmp_path, panel, assignment):
    key = assignment.partition("=")[0]
    fast = ["steps=1", "batch_size=2", "eval_size=2", "model.n_points=6"]  # if it were taken
    with pytest.raises(ValueError) as info:
        run_panel(panel, "quick", tmp_path / "out", sets=[assignment, *fast], progress=False)
    message = str(info.value)
    assert f"panel {panel} varies {key}" in message and "\n" not in message
    assert not (tmp_path / "out").exists()  # refused before anything is written
    with pytest.raises(ValueError, match=f"panel {panel} varies {key}"):
        all_models("quick", [assignment])  # `theory panels` trains every panel's models


def test_every_variant_sets_what_its_panel_varies():
    """Whatever the base model is, 2d compares softmax with linear and 2f a model with an FFN
    with one without (a preset whose base differs cannot collapse a comparison)."""
    base, grid = load_preset("quick"), load_grid("quick")
    odd = replace(base, model=replace(base.model, attention="linear", ffn=False, keep_ln2=True))
    assert [c.model.attention for _, c in variants("2d", odd, grid)] == ["softmax", "linear"]
    assert [(c.model.ffn, c.model.keep_ln2) for _, c in variants("2f", odd, grid)] == [
        (True, False),
        (False, False),
    ]
    other = ["model.n_points=8", "steps=3", "model.gelu=tanh"]  # not varied by any panel: fine
    assert len(all_models("quick", other)) == 9


def test_the_evaluation_and_tuning_seeds_are_reserved():
    from selfcorrect.theory.baselines import TUNE_SEED
    from selfcorrect.theory.evaluate import EVAL_SEED

    for seed in (EVAL_SEED, TUNE_SEED):  # training on them would train on those sequences
        with pytest.raises(ValueError, match="reserved"):
            TrainConfig(seed=seed)
    assert TrainConfig(seed=EVAL_SEED + 1).seed == EVAL_SEED + 1
