"""The run's reports: report.md and a self-contained report.html with the decision, metrics, intervals,
rubric, confusion matrix, probes, loss curve and side-by-side examples, plus loss_curve.png."""

from __future__ import annotations

from typing import Any

from tunewright.report.examples import compare_examples
from tunewright.report.html import render_html
from tunewright.report.markdown import render_markdown
from tunewright.report.plots import loss_curve_png, write_bytes
from tunewright.report.sections import (
    calibration_section,
    confusion_section,
    intervals_section,
    probe_sections,
    round_comparison,
)
from tunewright.report.view import Section, build_view
from tunewright.runs import RunPaths, read_jsonl, write_text

__all__ = ["write_reports"]


def write_reports(run: RunPaths, summary: dict[str, Any], other: tuple[str, dict[str, Any]] | None = None) -> None:
    """Write run.loss_plot, run.report_md and run.report_html from the summary and the run's files;
    `other` = (name, summary) of another round adds a section comparing the two."""
    training = summary["training"]
    loss_png = loss_curve_png(read_jsonl(run.metrics), training["best_step"],
                              training["steps"] if training.get("stopped_early") else None)
    comparisons, comparison_summary = compare_examples(run, summary["eval"]["best_baseline"])
    evaluation = summary["eval"]
    sections: list[Section] = []
    if other is not None:
        sections.append(round_comparison(summary, other[1], other[0]))
    intervals = intervals_section(evaluation.get("comparisons", []), evaluation.get("bootstrap_resamples"))
    confusion = confusion_section(evaluation["candidates"])
    calibrated = calibration_section(evaluation.get("calibration") or {})
    sections += [item for item in (intervals, confusion, calibrated) if item is not None]
    sections += probe_sections(evaluation.get("probes", {}))
    view = build_view(summary, run.loss_plot.name, comparisons, comparison_summary, sections)
    write_bytes(run.loss_plot, loss_png)
    write_text(run.report_md, render_markdown(view))
    write_text(run.report_html, render_html(view, loss_png))
