"""Reports: a real small run rendered to one self-contained page; comparison; browser check."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from selfcorrect.bbq.study import BBQConfig, run_bbq
from selfcorrect.report.html import render_report

SMALL = dict(
    categories=("Age",),
    limit_per_category=3,
    rounds=1,
    answer_tokens=10,
    check_tokens=8,
    reanswer_tokens=6,
    batch_size=3,
)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, smollm2):
    root = tmp_path_factory.mktemp("runs")
    for p in ("0", "1"):
        run_bbq(
            BBQConfig(check=f"oracle:{p}", **SMALL),
            root / f"oracle-{p}",
            backend=smollm2,
            progress=False,
        )
    return root / "oracle-0", root / "oracle-1"


def test_study_writes_its_report_and_it_shows_what_was_run(two_runs):
    page = (two_runs[0] / "report.html").read_text()
    for text in (
        "BBQ study",
        "Headline",
        "Per category",
        "Age",
        "Checks and flips",
        "Transcripts",
        "llamacpp/smollm2",
        "oracle:0",
        "Provenance",
        "git revision",
        "data:image/png;base64,",
    ):
        assert text in page, text
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")
    assert page.count("<details>") >= 1  # transcripts per outcome


def test_model_text_is_escaped(two_runs, tmp_path):
    run = tmp_path / "evil"
    shutil.copytree(two_runs[0], run)
    lines = (run / "records.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["turns"][-1]["content"] = "<script>alert(1)</script>"
    (run / "records.jsonl").write_text("\n".join([json.dumps(record)] + lines[1:]) + "\n")
    page = render_report([run], tmp_path / "r.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_comparison_of_two_runs_side_by_side(two_runs, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfcorrect",
            "report",
            *map(str, two_runs),
            "--out",
            str(tmp_path / "cmp.html"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "cmp.html").read_text()
    assert "Comparison of BBQ runs" in page and "oracle:0" in page and "oracle:1" in page
    assert page.index("Comparison of BBQ runs") < page.index("BBQ study: oracle-0")


def test_unknown_directory_is_a_clear_error(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "selfcorrect", "report", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "not a run directory" in out.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)"
)
def test_report_renders_in_headless_chromium(two_runs, tmp_path):
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'u'}",
            "--window-size=1200,2400",
            f"--screenshot={shot}",
            (two_runs[0] / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 20_000


def test_figure_2a_and_2b_carry_the_papers_reference_points(tmp_path, monkeypatch):
    """Panels are drawn with the original artifacts' numbers beside ours, also when a report
    redraws them from a run directory; other panels have none."""
    import selfcorrect.report.plots as plots
    from selfcorrect.report.build import draw
    from selfcorrect.theory.evaluate import write_curves

    legends: dict[str, list[str]] = {}

    def capture(fig, out, name):
        legends[name] = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        plots._plt().close(fig)
        return []

    monkeypatch.setattr(plots, "save", capture)
    for panel in ("2a", "2b", "2d"):
        folder = tmp_path / panel
        rows = [
            {"predictor": "TF", "noise": 0.0, "t": t, "error": 0.3, "stderr": 0.01} for t in (2, 15)
        ]
        write_curves(rows, folder / "curves.csv")
        (folder / "config.yaml").write_text(f"study: theory-panel\npanel: {panel}\n")
        draw(folder)
    assert (
        "paper TF (original artifacts)" in legends["figure_2a"]
        and "paper GD" in legends["figure_2a"]
    )
    assert "paper TF, p = 0.5" in legends["figure_2b"]
    assert legends["figure_2d"] == ["TF"]
