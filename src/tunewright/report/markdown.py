"""report.md: the report view as Markdown, the loss curve linked beside it by relative path."""

from __future__ import annotations

import re

from tunewright.report.view import FINETUNED, Comparison, ReportView, Section, Table

DECISION_HEADINGS = {"go": "✅ GO", "no-go": "❌ NO-GO"}


def render_markdown(view: ReportView) -> str:
    parts = [
        f"# {DECISION_HEADINGS[view.decision]}",
        *([f"> **{view.lead}**"] if view.lead else []),
        f"**{view.verdict}**",
        "\n".join(f"- {reason}" for reason in view.reasons),
        " · ".join(view.facts),
        *(f"> ⚠️ **{alert}**" for alert in view.alerts),
        "## Metrics on the test split",
        view.gate,
        table(view.metrics),
        "\n".join(f"- {note}" for note in view.candidate_notes),
    ]
    if view.rubric is not None:
        parts += ["## Rubric pass rate per criterion", table(view.rubric)]
    parts += [section(item) for item in view.sections]
    parts += ["## Loss curve", f"![loss curve]({view.plot_name})"]
    parts += ["## Examples side by side", view.comparison_summary]
    parts += [comparison(index, item, view.best_baseline) for index, item in enumerate(view.comparisons, 1)]
    return "\n\n".join(parts) + "\n"


def section(item: Section) -> str:
    return "\n\n".join([f"## {item.title}", *item.paragraphs, *(table(t) for t in item.tables)])


def table(content: Table) -> str:
    lines = [_row(content.headers), _row(["---"] * len(content.headers))]
    lines += [_row(row) for row in content.rows]
    return "\n".join(lines)


def comparison(index: int, item: Comparison, baseline_name: str) -> str:
    title = f"### {index}. {item.example_id}" + (f" — {item.change}" if item.change else "")
    parts = [title]
    if item.labels:
        parts.append(item.labels)
    parts += [
        "**Input**", fenced(item.input),
        "**Reference**", fenced(item.reference),
        f"**{baseline_name} (best baseline)**", fenced(item.baseline_output),
        f"**{FINETUNED}**", fenced(item.finetuned_output),
    ]
    return "\n\n".join(parts)


def fenced(text: str) -> str:
    """A code block whose fence is longer than any backtick run in the text, so the text cannot end it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
