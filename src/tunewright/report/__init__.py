"""The run's reports: report.md and a self-contained report.html with the decision, metrics, intervals,
rubric, confusion matrix, per-field errors, probes, loss curve and side-by-side examples, plus loss_curve.png."""

from __future__ import annotations

from typing import Any

import yaml

from tunewright.report.charts import confusion_heatmap, forest_plot, grouped_bars
from tunewright.report.examples import compare_examples
from tunewright.report.html import render_html
from tunewright.report.markdown import render_markdown
from tunewright.report.plots import loss_curve_png, write_loss_plot
from tunewright.report.sections import (
    calibration_section,
    confusion_section,
    fields_section,
    intervals_section,
    probe_sections,
    round_comparison,
    sweep_section,
    timing_section,
)
from tunewright.report.view import Section, build_view
from tunewright.run_summary import EvalSummary, RunSummary
from tunewright.runs import AdapterManifest, RunPaths, read_jsonl, write_bytes, write_text
from tunewright.sweep.table import SweepResult

__all__ = ["write_loss_plot", "write_reports"]


def write_reports(run: RunPaths, summary: RunSummary, other: tuple[str, RunSummary] | None = None) -> None:
    """Write run.loss_plot, run.report_md and run.report_html from the summary and the run's files;
    `other` = (name, summary) of another round adds a section comparing the two."""
    training = summary.training
    loss_png = loss_curve_png(read_jsonl(run.metrics), training.best_step,
                              training.steps if training.stopped_early else None)
    evaluation = summary.evaluation
    comparisons, comparison_summary = compare_examples(run, evaluation.best_baseline, _output_schema(run))
    sections: list[Section] = []
    if other is not None:
        sections.append(round_comparison(summary, other[1], other[0]))
    intervals = intervals_section(evaluation.comparisons, evaluation.bootstrap_resamples)
    confusion = confusion_section(evaluation.candidates)
    calibrated = calibration_section(evaluation.calibration)
    fields = fields_section(evaluation.candidates, evaluation.best_baseline)
    sections += [item for item in (intervals, confusion, fields, calibrated) if item is not None]
    sections += probe_sections(evaluation.probes)
    if run.sweep.is_file():
        sections.append(sweep_section(SweepResult.read(run.sweep)))
    sections.append(usage_section(run, summary))
    if (timed := timing_section(summary.timings.stages)) is not None:
        sections.append(timed)
    human = human_section(evaluation.human_review)
    if human is not None:
        sections.insert(0, human)
    view = build_view(summary, run.loss_plot.name, comparisons, comparison_summary, sections)
    write_bytes(run.loss_plot, loss_png)
    write_text(run.report_md, render_markdown(view))
    write_text(run.report_html, render_html(view, loss_png, _charts(evaluation)))


def _output_schema(run: RunPaths) -> dict[str, Any] | None:
    """The task's output schema from the run's resolved config (inline there), if it has one."""
    if not run.config.is_file():
        return None
    schema = (yaml.safe_load(run.config.read_text(encoding="utf-8")) or {}).get("task", {}).get("output_schema")
    return schema if isinstance(schema, dict) else None


def _charts(evaluation: EvalSummary) -> str:
    """The pictures first: differences with their intervals, metrics per candidate, the confusion heatmap."""
    parts = [("Differences with 95 % intervals", forest_plot(evaluation.comparisons)),
             ("Metrics per candidate", grouped_bars(evaluation.candidates)),
             ("Confusion matrix (fine-tuned)",
              confusion_heatmap(evaluation.candidates.get("finetuned", {}).get("confusion") or {}))]
    return "".join(f"<h2>{title}</h2>{svg}" for title, svg in parts if svg)


def usage_section(run: RunPaths, summary: RunSummary) -> Section:
    """How to use this model: the system prompt and stop tokens it was trained with, and the commands."""
    manifest = AdapterManifest.read(run.root / summary.artifacts.get("adapter", "adapter"))
    name = summary.task
    paragraphs = [
        "Send this system prompt with every request (the server adds it when a request has none): "
        f"{manifest.system_prompt or '(see config.yaml task.system_prompt)'}",
        f"Stop at the end-of-turn token(s) it learned: ids {list(manifest.stop_token_ids) or '?'} "
        "(saved with the adapter; `tunewright serve` and evaluation use exactly those).",
        f"Serve it: tunewright adapters add {run.root} --name {name} --library adapters, then "
        "tunewright serve --adapters adapters and send model: " + name + " to /v1/chat/completions.",
        f"Export it: tunewright merge {run.root} (one merged safetensors model) or "
        f"tunewright export {run.root} --format gguf (llama.cpp, Ollama).",
    ]
    return Section("How to use this model", paragraphs)


def human_section(human: dict[str, Any] | None) -> Section | None:
    """Blind pairwise review, as recorded when the run was last scored."""
    if not human or human.get("win_rate") is None:
        return None
    low, high = human["ci95"]
    text = (f"In blind pairwise review against {human['baseline']}, {human['reviewers']} reviewer(s) graded "
            f"{human['rows']} test rows: the fine-tuned model won {human['wins']}, lost {human['losses']} and tied "
            f"{human['ties']} (a tie counts half), a human win rate of {human['win_rate'] * 100:.1f} % "
            f"(95 % interval {low * 100:.1f} to {high * 100:.1f} %).")
    paragraphs = [text]
    if human.get("judge_kappa") is not None:
        paragraphs.append(f"Agreement between the LLM judge and the reviewers: Cohen's kappa "
                          f"{human['judge_kappa']:.2f} on {human['judge_rows']} verdicts.")
    return Section("Human review", paragraphs)
