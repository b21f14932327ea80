"""The run's reports: report.md and a self-contained report.html with the decision, metrics, rubric,
loss curve and side-by-side examples, plus loss_curve.png."""

from __future__ import annotations

from typing import Any

from tunewright.report.examples import compare_examples
from tunewright.report.html import render_html
from tunewright.report.markdown import render_markdown
from tunewright.report.plots import loss_curve_png, write_bytes
from tunewright.report.view import build_view
from tunewright.runs import RunPaths, read_jsonl, write_text

__all__ = ["write_reports"]


def write_reports(run: RunPaths, summary: dict[str, Any]) -> None:
    """Write run.loss_plot, run.report_md and run.report_html from the summary and the run's files."""
    loss_png = loss_curve_png(read_jsonl(run.metrics), summary["training"]["best_step"])
    comparisons, comparison_summary = compare_examples(run, summary["eval"]["best_baseline"])
    view = build_view(summary, run.loss_plot.name, comparisons, comparison_summary)
    write_bytes(run.loss_plot, loss_png)
    write_text(run.report_md, render_markdown(view))
    write_text(run.report_html, render_html(view, loss_png))
