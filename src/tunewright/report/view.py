"""What a report says, built once from the run summary as typed, formatted text, so the Markdown and
HTML reports lay out the same content and differ only in markup."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Mirrors evaluate.gate.FINETUNED; importing evaluate would pull torch into `import tunewright.report`.
FINETUNED = "finetuned"
MISSING = "—"
METRIC_COLUMNS = (
    ("label_accuracy", "label accuracy"),
    ("macro_f1", "macro-F1"),
    ("rubric_pass_rate", "rubric pass rate"),
    ("no_label_rate", "no-label rate"),
    ("exact_match", "exact match"),
    ("rouge_l", "ROUGE-L"),
    ("semantic_similarity", "semantic similarity"),
    ("judge_pass_rate", "judge pass rate"),
    ("json_valid_rate", "valid JSON"),
    ("schema_valid_rate", "valid schema"),
    ("field_f1", "field F1"),
    ("exact_frame_match", "exact frame"),
)
VERDICTS = {
    "go": "The fine-tuned model clears the quality gate against the best baseline.",
    "no-go": "The fine-tuned model does not clear the quality gate against the best baseline.",
}
CANDIDATE_NOTES = {
    "finetuned": "the base model with the trained adapter, given the task prompt",
    "zero_shot": "the base model, given the task prompt only",
    "few_shot": "the base model, given the task prompt and a few training examples",
    "retrieved_few_shot": "the base model, given the task prompt and the training examples most similar to the "
                          "input (MiniLM embeddings)",
    "embedding_knn": "no LLM: the label of the most similar training input (MiniLM embeddings), answered with "
                     "that training answer",
    "embedding_classifier": "no LLM: logistic regression on the MiniLM embeddings of the training inputs, answered "
                            "with the nearest training answer of the predicted label",
}


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Section:
    """A titled block of evidence: paragraphs, then tables."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    folded: bool = False  # long evidence the HTML report folds (the pictures above it carry the gist)


@dataclass(frozen=True)
class Comparison:
    """One test row side by side: the input, the reference and both candidates' answers."""

    example_id: str
    change: str  # "improved" | "regressed" | "" when both were right or both wrong
    input: str
    reference: str
    baseline_output: str
    finetuned_output: str
    labels: str  # e.g. "label positive · few_shot said negative · finetuned said positive"; "" if unlabelled


@dataclass(frozen=True)
class ReportView:
    decision: str  # "go" | "no-go"
    lead: str | None  # said before everything else: an embedding classifier is enough for the label
    verdict: str
    reasons: list[str]
    facts: list[str]  # the one-line context, item by item
    alerts: list[str]
    gate: str
    best_baseline: str
    candidate_notes: list[str]
    metrics: Table
    rubric: Table | None  # None when the task has no rubric
    plot_name: str
    comparison_summary: str
    comparisons: list[Comparison]
    sections: list[Section] = field(default_factory=list)  # intervals, confusion, probes, other rounds


def build_view(summary: dict[str, Any], plot_name: str, comparisons: list[Comparison],
               comparison_summary: str, sections: list[Section] | None = None) -> ReportView:
    evaluation = summary["eval"]
    candidates: dict[str, dict[str, Any]] = evaluation["candidates"]
    order = candidate_order(candidates)
    return ReportView(
        decision=summary["decision"],
        lead=label_lead(evaluation.get("label_without_llm")),
        verdict=VERDICTS[summary["decision"]],
        reasons=list(summary["decision_reasons"]),
        facts=context_facts(summary),
        alerts=training_alerts(summary["training"]) + forgetting_alerts(evaluation.get("probes", {})),
        gate=gate_line(evaluation["gate"], evaluation["best_baseline"]),
        best_baseline=evaluation["best_baseline"],
        candidate_notes=[f"{name}: {CANDIDATE_NOTES.get(name, 'an OpenAI-compatible endpoint')}" for name in order],
        metrics=metrics_table(candidates, order, evaluation["best_baseline"]),
        rubric=rubric_table(candidates, order),
        plot_name=plot_name,
        comparison_summary=comparison_summary,
        comparisons=comparisons,
        sections=sections or [],
    )


def label_lead(found: dict[str, Any] | None) -> str | None:
    """What the report says first when a classifier on the embeddings passes the gate on its own."""
    if not found:
        return None
    name, metric = found["candidate"], found["metric"].replace("_", " ")
    alone = (f"{name} (no LLM) reaches {percent(found['value'])} {metric}, passing the gate against the best "
             f"prompting baseline ({percent(found['best_prompting'])}) on its own")
    if found["finetune_needed"]:
        head = f"The fine-tune beats a classifier on the embeddings for the label: {alone}, and the fine-tune "
        head += f"reaches {percent(found['finetuned'])}."
    else:
        head = (f"An LLM fine-tune is not needed for the label: {alone}; the fine-tune reaches "
                f"{percent(found['finetuned'])}.")
    added = found.get("finetune_adds") or {}
    if not added:
        return head + " The fine-tune adds nothing measured beyond it."
    gains = ", ".join(f"{key.replace('_', ' ')} {percent(values['finetuned'])} vs {percent(values[name])}"
                      for key, values in added.items())
    return f"{head} What the fine-tune adds beyond it: {gains}."


def candidate_order(candidates: dict[str, Any]) -> list[str]:
    """The fine-tuned model first, then the baselines as the evaluation listed them."""
    return [FINETUNED, *(name for name in candidates if name != FINETUNED)]


def percent(value: float | None) -> str:
    return MISSING if value is None else f"{value * 100:.1f}%"


def duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def context_facts(summary: dict[str, Any]) -> list[str]:
    training, data = summary["training"], summary["data"]
    steps = f"{training['steps']} of {training['planned_steps']} planned steps"
    if training["stopped_early"]:
        steps += f", stopped early at step {training['steps']}"
    if training["best_step"] is not None:
        steps += f", best step {training['best_step']}"
    facts = [
        f"task {summary['task']}",
        f"base model {summary['base_model']}",
        f"method {summary['method']}",
        "data " + " / ".join(f"{split} {data[split]}" for split in ("train", "val", "test")) + " rows",
        steps,
    ]
    if training["best_val_loss"] is not None:
        facts.append(f"best val loss {training['best_val_loss']:.4f}")
    facts.append(f"training took {duration(training['seconds'])} at "
                 f"{training['train_tokens_per_second']:,.0f} tokens/s ({training['precision']})")
    share = percent(training["trainable_parameters"] / max(training["total_parameters"], 1))
    facts.append(f"{training['trainable_parameters']:,} of {training['total_parameters']:,} parameters "
                 f"trained ({share})")
    return facts


def training_alerts(training: dict[str, Any]) -> list[str]:
    if not training["overfitting_alert"]:
        return []
    return ["Overfitting alert: validation loss kept rising while training loss fell. "
            "The adapter kept is the one from the best step, before the rise."]


FORGETTING_ALERT = 0.15  # a drop this large in one kind of general question is news, whatever the average


def forgetting_alerts(probes: dict[str, Any]) -> list[str]:
    """One line per kind of general question (facts, arithmetic...) the fine-tune lost much of."""
    by_kind = (probes.get("forgetting") or {}).get("by_kind", {})
    return [f"Forgetting: on {kind} questions the base model passes {percent(rates['base'])}, the fine-tuned "
            f"model {percent(rates['finetuned'])}." for kind, rates in by_kind.items()
            if rates["base"] - rates["finetuned"] >= FORGETTING_ALERT]


def gate_line(gate: dict[str, Any], best_baseline: str) -> str:
    target = "the best prompting baseline" if gate.get("beat", "best_baseline") == "best_baseline" else gate["beat"]
    line = (f"To pass, the fine-tuned model must beat {target} ({best_baseline or 'none evaluated'}) on "
            f"{gate['metric']} by at least {gate['beat_by'] * 100:.1f} points")
    if gate.get("ci_lower_above") is not None:
        line += f", with the 95 % interval of the difference above {gate['ci_lower_above'] * 100:+.1f} points"
    if gate.get("min_accuracy_at_coverage") is not None and gate.get("coverage") is not None:
        line += (f", with label accuracy of at least {gate['min_accuracy_at_coverage'] * 100:.1f} % on its "
                 f"{gate['coverage'] * 100:.0f} % most confident answers")
    limits = {"rubric pass rate": gate["max_rubric_regression"], **gate.get("max_regression", {})}
    return line + ", and lose at most " + ", ".join(
        f"{value * 100:.1f} points of {name}" for name, value in limits.items()) + "."


def metrics_table(candidates: dict[str, dict[str, Any]], order: list[str], best_baseline: str) -> Table:
    shown = [(key, title) for key, title in METRIC_COLUMNS
             if any(candidates[name].get(key) is not None for name in order)]
    rows = []
    for name in order:
        metrics = candidates[name]
        title = f"{name} (best baseline)" if name == best_baseline else name
        rows.append([title, str(metrics["rows"]), *(percent(metrics.get(key)) for key, _ in shown)])
    return Table(["candidate", "test rows", *(title for _, title in shown)], rows)


def rubric_table(candidates: dict[str, dict[str, Any]], order: list[str]) -> Table | None:
    criteria = list(dict.fromkeys(name for candidate in order for name in candidates[candidate]["rubric"]))
    if not criteria:
        return None
    rows = [[criterion, *(percent(candidates[name]["rubric"].get(criterion)) for name in order)]
            for criterion in criteria]
    return Table(["criterion", *order], rows)
