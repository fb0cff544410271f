"""Reports: plots and one self-contained HTML page per run directory or comparison."""

from selfcorrect.report.build import build_report, draw, kind_of

__all__ = ["build_report", "draw", "kind_of"]
