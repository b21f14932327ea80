"""report.html: the report view as one self-contained page (inline CSS, the loss curve embedded as
base64), every piece of run or user text escaped."""

from __future__ import annotations

import base64
from html import escape

from tunewright.report.view import FINETUNED, Comparison, ReportView, Section, Table

DECISION_TEXT = {"go": "GO", "no-go": "NO-GO"}
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2rem auto;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
.decision { border-radius: 10px; padding: 1.2rem 1.5rem; color: #fff; margin-bottom: 1rem; }
.decision.go { background: #1a7f37; } .decision.no-go { background: #cf222e; }
.decision h1 { font-size: 3rem; margin: 0; letter-spacing: 0.05em; }
.decision p { font-size: 1.15rem; margin: 0.3rem 0 0.6rem; } .decision ul { margin: 0; }
.facts { color: #57606a; } .alert { background: #fff8c5; border: 1px solid #d4a72c; padding: 0.6rem 1rem;
       border-radius: 6px; }
table { border-collapse: collapse; margin: 0.8rem 0; } th, td { border: 1px solid #d0d7de;
       padding: 0.35rem 0.7rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
.examples td { white-space: pre-wrap; word-break: break-word; width: 25%; font-size: 0.92rem; }
.badge { display: inline-block; border-radius: 4px; padding: 0 0.4rem; color: #fff; font-size: 0.85rem; }
.badge.improved { background: #1a7f37; } .badge.regressed { background: #cf222e; }
.notes { color: #57606a; font-size: 0.92rem; } img { max-width: 100%; }
"""


def render_html(view: ReportView, loss_png: bytes, charts: str = "") -> str:
    reasons = "".join(f"<li>{escape(reason)}</li>" for reason in view.reasons)
    alerts = "".join(f'<p class="alert">⚠️ {escape(alert)}</p>' for alert in view.alerts)
    notes = "".join(f"<li>{escape(note)}</li>" for note in view.candidate_notes)
    image = base64.b64encode(loss_png).decode("ascii")
    sections = [
        f'<div class="decision {escape(view.decision)}"><h1>{DECISION_TEXT[view.decision]}</h1>'
        + (f"<p><strong>{escape(view.lead)}</strong></p>" if view.lead else "")
        + f"<p>{escape(view.verdict)}</p><ul>{reasons}</ul></div>",
        f'<p class="facts">{" · ".join(escape(fact) for fact in view.facts)}</p>',
        alerts,
        charts,
        "<h2>Metrics on the test split</h2>",
        f"<p>{escape(view.gate)}</p>",
        table(view.metrics),
        f'<ul class="notes">{notes}</ul>',
    ]
    if view.rubric is not None:
        sections += ["<h2>Rubric pass rate per criterion</h2>", table(view.rubric)]
    sections += [section(item) for item in view.sections]
    sections += [
        "<h2>Loss curve</h2>",
        f'<img alt="loss curve" src="data:image/png;base64,{image}">',
        "<h2>Examples side by side</h2>",
        f"<p>{escape(view.comparison_summary)}</p>",
        comparisons(view.comparisons, view.best_baseline),
    ]
    body = "\n".join(section for section in sections if section)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{DECISION_TEXT[view.decision]}: tunewright report</title>\n<style>{STYLE}</style>\n"
        f"</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def section(item: Section) -> str:
    paragraphs = "".join(f"<p>{escape(text)}</p>" for text in item.paragraphs)
    body = paragraphs + "".join(table(t) for t in item.tables)
    if item.folded:
        return f"<details><summary><strong>{escape(item.title)}</strong> (table)</summary>{body}</details>"
    return f"<h2>{escape(item.title)}</h2>{body}"


def table(content: Table) -> str:
    head = "".join(f"<th>{escape(header)}</th>" for header in content.headers)
    rows = "".join(
        "<tr>" + f"<td>{escape(row[0])}</td>" + "".join(f'<td class="number">{escape(cell)}</td>'
                                                       for cell in row[1:]) + "</tr>"
        for row in content.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def comparisons(items: list[Comparison], baseline_name: str) -> str:
    headers = ("input", "reference", f"{baseline_name} (best baseline)", FINETUNED)
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    return f'<table class="examples"><thead><tr>{head}</tr></thead><tbody>' + "".join(
        comparison(item) for item in items) + "</tbody></table>"


def comparison(item: Comparison) -> str:
    badge = f'<span class="badge {item.change}">{item.change}</span> ' if item.change else ""
    caption = f"{badge}<strong>{escape(item.example_id)}</strong>"
    if item.labels:
        caption += f" · {escape(item.labels)}"
    cells = "".join(f"<td>{escape(text)}</td>"
                    for text in (item.input, item.reference, item.baseline_output, item.finetuned_output))
    return f'<tr><th colspan="4">{caption}</th></tr><tr>{cells}</tr>'
