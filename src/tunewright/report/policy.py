"""A preference run's reports (report.html, report.md and eval/policy.md): the policy decision first, then
each candidate's policy pass rate overall and per rule with its 95 % interval, the tuned model's paired
gains, held-out preference accuracy and label accuracy, the reward-margin and chosen / rejected
log-probability curves and the loss curve (from metrics.jsonl), and the probe answered side by side by
the SFT adapter and the preference-tuned one, rows where they differ first."""

from __future__ import annotations

import base64
from html import escape
from typing import Any

from tunewright.report import html, markdown
from tunewright.report.html import STYLE
from tunewright.report.plots import loss_curve_png, preference_curves_png
from tunewright.report.view import FINETUNED, MISSING, Section, Table, percent
from tunewright.run_summary import TrainingResult
from tunewright.runs import RunPaths, read_jsonl, write_bytes, write_text

SFT = "sft"  # mirrors evaluate.preference_run.SFT (importing evaluate would pull torch into the report)
MARKDOWN_EXAMPLES = 12  # probe rows shown in the Markdown reports; report.html shows every row
CURVES = "preference_curves.png"


def write_policy_reports(run: RunPaths, scores: dict[str, Any]) -> None:
    """eval/policy.md, report.md and a self-contained report.html (curves embedded) from the scores that
    evaluate.preference_run computed and the run's metrics.jsonl; the curves also as PNG files."""
    metrics = read_jsonl(run.metrics) if run.metrics.is_file() else []
    training = TrainingResult.read(run.training_result) if run.training_result.is_file() else None
    best_step = training.best_step if training else None
    stopped = training.steps if training and training.stopped_early else None
    loss_png, curves_png = loss_curve_png(metrics, best_step, stopped), preference_curves_png(metrics)
    sections = policy_sections(scores, training)
    heading = f"# Policy evaluation: {scores['decision'].upper()}"
    reasons = "\n".join(f"- {reason}" for reason in scores["decision_reasons"])
    curves = (f"## Training curves\n\n![reward margin and log-probabilities](../{CURVES})\n\n"
              f"![loss curve](../{run.loss_plot.name})")
    examples = markdown_examples(scores)
    write_text(run.eval_dir / "policy.md", "\n\n".join([heading, reasons, *map(markdown.section, sections),
                                                        curves, examples]) + "\n")
    write_text(run.report_md, "\n\n".join([heading, reasons, *map(markdown.section, sections),
                                           curves.replace("../", ""), examples]) + "\n")
    write_bytes(run.loss_plot, loss_png)
    write_bytes(run.root / CURVES, curves_png)
    write_text(run.report_html, render_policy_html(scores, sections, loss_png, curves_png))


def policy_sections(scores: dict[str, Any], training: TrainingResult | None) -> list[Section]:
    """The evidence as plain data: candidates, rules, gains."""
    policy = scores["policy"]
    names = list(policy["candidates"])
    summed = scores.get("preference_accuracy_summed", {})
    candidates = Table(["candidate", "policy pass rate", "95 % interval", "preference accuracy",
                        "(by summed log-likelihood)", "label accuracy"], [
        [name, percent(policy["candidates"][name]["pass_rate"]), interval(policy["candidates"][name].get("ci95")),
         percent(scores["preference_accuracy"].get(name)), percent(summed.get(name)),
         percent(scores["label_accuracy"].get(name))]
        for name in names])
    facts = (f"{policy['rows']} held-out probe requests; preference accuracy on {scores['test_pairs']} held-out "
             "pairs (the share where the model gives the chosen answer a higher mean log-likelihood per token than "
             "the rejected one; a summed log-likelihood favours the shorter side); label accuracy on "
             f"{scores['task_test_rows']} rows of the SFT run's test split.")
    if training is not None:
        facts += (f" Training: {training.method}, {training.steps} steps, {training.train_tokens:,} tokens, "
                  f"{training.seconds:.0f} s.")
    rules = Table(["rule", "action", "rows", *(f"{name} (95 % interval)" for name in names)], [
        [rule, action, str(policy["candidates"][names[0]].get("per_rule_rows", {}).get(rule, MISSING)),
         *(f"{percent(policy['candidates'][name]['per_rule'][rule])} "
           f"{interval(policy['candidates'][name].get('per_rule_ci95', {}).get(rule))}" for name in names)]
        for rule, action in policy["rules"].items()])
    gains = Table(["gain of the tuned model over", "difference (points)", "95 % interval", "reading"], [
        [c["baseline"], f"{c['difference'] * 100:+.1f}", f"[{c['ci95'][0] * 100:+.1f}, {c['ci95'][1] * 100:+.1f}]",
         "better" if c["ci95"][0] > 0 else "worse" if c["ci95"][1] < 0 else "not distinguishable"]
        for c in policy["comparisons"]])
    return [Section("Candidates", [facts], [candidates]),
            Section("Policy pass rate per rule", ["Wilson score 95 % intervals of each pass rate."], [rules]),
            Section("Gains with paired bootstrap 95 % intervals",
                    ["The tuned model minus each candidate on the same probe rows, resampled together."], [gains])]


def interval(bounds: list[float] | None) -> str:
    return MISSING if bounds is None else f"[{bounds[0] * 100:.0f}, {bounds[1] * 100:.0f}] %"


def ordered_examples(scores: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """Probe rows, those where the SFT adapter and the tuned model differ (pass vs fail) first."""
    passed = scores["policy"]["passed"]
    other = SFT if SFT in passed else next((name for name in passed if name != FINETUNED), FINETUNED)
    rows = list(enumerate(scores["examples"]))
    return sorted(rows, key=lambda item: passed[FINETUNED][item[0]] == passed[other][item[0]])


def markdown_examples(scores: dict[str, Any]) -> str:
    passed = scores["policy"]["passed"]
    lines = ["## Side by side on the probe", ""]
    for row, example in ordered_examples(scores)[:MARKDOWN_EXAMPLES]:
        lines += [f"**{example['rule']}**: {example['prompt']}", ""]
        lines += [f"- {name} ({'pass' if passed[name][row] else 'FAIL'}): {example[name]!r}" for name in passed]
        lines.append("")
    return "\n".join(lines)


def render_policy_html(scores: dict[str, Any], sections: list[Section], loss_png: bytes, curves_png: bytes) -> str:
    decision = scores["decision"]
    reasons = "".join(f"<li>{escape(reason)}</li>" for reason in scores["decision_reasons"])
    body = [f'<div class="decision {escape(decision)}"><h1>{html.DECISION_TEXT[decision]}</h1>'
            f"<p>Policy evaluation of the preference-tuned adapter.</p><ul>{reasons}</ul></div>",
            *map(html.section, sections),
            "<h2>Reward margin and answer log-probabilities</h2>", _image("preference curves", curves_png),
            "<h2>Loss curve</h2>", _image("loss curve", loss_png),
            "<h2>Side by side on the probe</h2>", examples_html(scores)]
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.DECISION_TEXT[decision]}: tunewright policy report</title>\n<style>{STYLE}</style>\n"
            "</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")


def examples_html(scores: dict[str, Any]) -> str:
    """Every probe row: the request and each candidate's answer, marked pass / FAIL."""
    passed = scores["policy"]["passed"]
    names = [name for name in (SFT, FINETUNED) if name in passed] + [n for n in passed if n not in (SFT, FINETUNED)]
    head = "".join(f"<th>{escape(header)}</th>" for header in ("request", *names))
    rows = []
    for row, example in ordered_examples(scores):
        cells = "".join(
            f'<td><span class="badge {"improved" if passed[name][row] else "regressed"}">'
            f'{"pass" if passed[name][row] else "FAIL"}</span> {escape(example[name])}</td>' for name in names)
        rows.append(f'<tr><th colspan="{len(names) + 1}">{escape(example["rule"])}</th></tr>'
                    f"<tr><td>{escape(example['prompt'])}</td>{cells}</tr>")
    return f'<table class="examples"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _image(alt: str, png: bytes) -> str:
    return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
