"""The report's evidence sections as plain data (title, paragraphs, tables): differences with bootstrap
intervals, the confusion matrix, the per-field error table of extraction tasks, the probes, and a
comparison with another round."""

from __future__ import annotations

from typing import Any

from tunewright.config import METRIC_TITLES, metric_title
from tunewright.report.view import FINETUNED, MISSING, Section, Table, percent
from tunewright.run_summary import RunSummary
from tunewright.sweep.table import SweepResult, sweep_summary, trial_table

FULL_MATRIX_LABELS = 12  # above this many labels, the most frequent confusions are listed instead
TOP_CONFUSIONS = 15
def points(value: float) -> str:
    return f"{value * 100:+.1f}"


def intervals_section(comparisons: list[dict[str, Any]], resamples: int | None) -> Section | None:
    if not comparisons:
        return None
    rows = []
    for item in comparisons:
        low, high = item["ci95"]
        verdict = "better" if low > 0 else "worse" if high < 0 else "not distinguishable"
        rows.append([metric_title(item["metric"]), item["baseline"], points(item["difference"]),
                     f"[{points(low)}, {points(high)}]", verdict])
    note = ("Each row is the fine-tuned model minus one baseline, in percentage points, with a paired bootstrap "
            "95 % interval (the same resampled test rows for both candidates"
            + (f", {resamples} resamples" if resamples else "") + "). An interval that contains 0 means the "
            "test set cannot tell the two apart on that metric.")
    table = Table(["metric", "baseline", "difference (points)", "95 % interval", "reading"], rows)
    return Section("Differences with 95 % intervals", [note], [table], folded=True)


def confusion_section(candidates: dict[str, dict[str, Any]]) -> Section | None:
    confusion: dict[str, dict[str, int]] = candidates.get(FINETUNED, {}).get("confusion") or {}
    if not confusion:
        return None
    labels = sorted({*confusion, *(p for row in confusion.values() for p in row)})
    if len(labels) <= FULL_MATRIX_LABELS:
        rows = [[gold, *(str(confusion[gold].get(predicted, 0)) for predicted in labels)]
                for gold in labels if gold in confusion]
        note = "Rows are the reference label, columns the fine-tuned model's label; the diagonal is right."
        return Section("Confusion matrix (fine-tuned)", [note], [Table(["reference \\ predicted", *labels], rows)])
    pairs = sorted(((count, gold, predicted) for gold, row in confusion.items() for predicted, count in row.items()
                    if predicted != gold), reverse=True)[:TOP_CONFUSIONS]
    rows = [[gold, predicted, str(count)] for count, gold, predicted in pairs]
    note = f"{len(labels)} labels are too many for a readable matrix: the most frequent confusions follow."
    return Section("Confusion matrix (fine-tuned)", [note], [Table(["reference", "predicted", "rows"], rows)])


def fields_section(candidates: dict[str, dict[str, Any]], best_baseline: str) -> Section | None:
    """Extraction tasks: per field, how often the fine-tuned model (and the best baseline) got the value
    right, wrong, left it out or added it."""
    tables = []
    for name in (FINETUNED, best_baseline):
        rows = candidates.get(name, {}).get("fields") or []
        if rows:
            tables.append(Table([f"{name}: field", "in reference", "right", "wrong value", "missing", "extra",
                                 "precision", "recall", "F1"],
                                [[r["field"], str(r["gold"]), str(r["correct"]), str(r["wrong_value"]),
                                  str(r["missing"]), str(r["extra"]), percent(r["precision"]), percent(r["recall"]),
                                  percent(r["f1"])] for r in rows]))
    if not tables:
        return None
    note = ("Each field of the answer object (nested keys joined with '.'), over the test rows: a value that "
            "differs from the reference is wrong (counted against precision and recall), a field only the "
            "reference has is missing (recall), one only the answer has is extra (precision).")
    return Section("Errors per field", [note], tables)


def probe_sections(probes: dict[str, Any]) -> list[Section]:
    sections = []
    copied = probes.get("memorisation")
    if copied:
        text = (f"{copied['copied']} of {copied['rows']} fine-tuned test answers ({percent(copied['rate'])}) repeat "
                f"a span of {copied['span_tokens']} or more tokens from a training answer.")
        rows = [[e["example_id"], e["span"], e["training_example"]] for e in copied["examples"]]
        tables = [Table(["test row", "copied span", "training example"], rows)] if rows else []
        sections.append(Section("Probe: memorisation", [text], tables))
    forgot = probes.get("forgetting")
    if forgot:
        per_kind = "; ".join(f"{kind} {percent(r['base'])} to {percent(r['finetuned'])}"
                             for kind, r in forgot["by_kind"].items())
        text = (f"On {forgot['probes']} general questions shipped with tunewright, base to fine-tuned by kind: "
                f"{per_kind} (all kinds {percent(forgot['base_pass_rate'])} to "
                f"{percent(forgot['finetuned_pass_rate'])}).")
        kinds = Table(["kind", "base", "fine-tuned"],
                      [[kind, percent(r["base"]), percent(r["finetuned"])] for kind, r in forgot["by_kind"].items()])
        lost = Table(["question", "base answer", "fine-tuned answer"],
                     [[r["prompt"], r["base"], r["finetuned"]] for r in forgot["lost"]])
        sections.append(Section("Probe: forgetting", [text], [kinds, *([lost] if forgot["lost"] else [])]))
    fair = probes.get("fairness")
    if fair:
        if fair["pairs"]:
            text = (f"{fair['pairs']} test inputs had a name, gendered word or place swapped; the fine-tuned model "
                    f"changed its label on {fair['flipped']} ({percent(fair['flip_rate'])}).")
        else:
            text = "No test input mentions a name, gendered word or place from the word lists: nothing to swap."
        rows = [[e["input"], e["swapped_input"], e["label"] or MISSING, e["swapped_label"] or MISSING]
                for e in fair["examples"]]
        tables = [Table(["input", "swapped input", "label", "label after swap"], rows)] if rows else []
        sections.append(Section("Probe: counterfactual fairness", [text], tables))
    return sections


def round_comparison(summary: RunSummary, other: RunSummary, other_name: str) -> Section:
    """This run's fine-tuned model against another round's, metric by metric."""
    ours, theirs = summary.evaluation.candidates[FINETUNED], other.evaluation.candidates[FINETUNED]
    rows = []
    for key, title in METRIC_TITLES.items():
        if ours.get(key) is None and theirs.get(key) is None:
            continue
        change = MISSING if ours.get(key) is None or theirs.get(key) is None else points(ours[key] - theirs[key])
        rows.append([title, percent(theirs.get(key)), percent(ours.get(key)), change])
    rows.append(["decision", other.decision, summary.decision, ""])
    text = (f"This run against {other_name} (the other round's fine-tuned model), on their own test splits "
            f"({other.evaluation.test_rows} and {summary.evaluation.test_rows} rows).")
    return Section(f"Compared with {other_name}", [text], [Table(["metric", other_name, "this run", "change"], rows)])


def calibration_section(calibration: dict[str, Any]) -> Section | None:
    """ECE per candidate with confidences, the fine-tuned model's reliability bins (the reliability
    diagram as a table) and its accuracy when the least confident answers are withheld."""
    if not calibration:
        return None
    ece = Table(["candidate", "expected calibration error"],
                [[name, f"{found['ece']:.3f}"] for name, found in calibration.items()])
    note = ("A candidate's confidence is its probability of the label it chose. Expected calibration error is "
            "the gap between confidence and accuracy, averaged over rows in 10 confidence bins (0 is perfect).")
    tables = [ece]
    found = calibration.get(FINETUNED) or next(iter(calibration.values()))
    name = FINETUNED if FINETUNED in calibration else next(iter(calibration))
    tables.append(Table([f"{name}: confidence bin", "rows", "mean confidence", "accuracy"],
                        [[f"{b['low']:.1f}-{b['high']:.1f}", str(b["rows"]), percent(b["confidence"]),
                          percent(b["accuracy"])] for b in found["reliability"]]))
    tables.append(Table([f"{name}: answer when confidence >=", "coverage", "accuracy on answered rows"],
                        [[f"{c['threshold']:.3f}", percent(c["coverage"]), percent(c["accuracy"])]
                         for c in found["coverage"]]))
    return Section("Confidence and calibration", [note], tables)


def timing_section(stages: dict[str, float]) -> Section | None:
    """Where the run's seconds went, stage by stage (summary.json's timings.stages)."""
    from tunewright.timing import timing_rows

    if not stages:
        return None
    rows = [[("  " * name.count("/")) + name.rpartition("/")[2], f"{seconds:,.1f}",
             percent(share) if share is not None else MISSING]
            for name, seconds, share in timing_rows(stages)]
    note = ("Wall-clock seconds of each stage and of its parts (indented), with each part's share of the "
            "stage above it; the report's own writing is not included. The whole table is in summary.json "
            "(timings.stages).")
    return Section("Where the time went", [note], [Table(["stage", "seconds", "share"], rows)], folded=True)


def sweep_section(result: SweepResult) -> Section:
    """The sweep that chose this run's settings (sweep.json copied in by the run): every trial."""
    headers, rows = trial_table(result)
    note = (f"Each rung cell is the trial's {metric_title(result.metric)} (%) on the validation split after that "
            "rung, @ the step it was measured at; the best 1/"
            f"{result.eta} of each rung went on, resumed from its checkpoint. The test split was not read.")
    return Section("Settings chosen by the sweep", [*sweep_summary(result), note], [Table(headers, rows)],
                   folded=True)
