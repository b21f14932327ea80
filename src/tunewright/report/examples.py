"""Which test rows the report shows side by side: where the fine-tuned model got it right and the best
baseline did not ("improved"), the reverse ("regressed"), then the rest. For tasks with an output
schema a row is right when every field is, and each side's wrong fields are named."""

from __future__ import annotations

from typing import Any

from tunewright.records import Example, Prediction
from tunewright.report.view import FINETUNED, Comparison
from tunewright.runs import RunPaths, read_jsonl
from tunewright.schema import answer_fields, parse_answer, wrong_fields

SHOWN_EXAMPLES = 8
CHANGE_ORDER = ("improved", "regressed", "")


def compare_examples(run: RunPaths, best_baseline: str,
                     schema: dict[str, Any] | None = None) -> tuple[list[Comparison], str]:
    """Up to SHOWN_EXAMPLES comparisons, changed rows first, and a line counting the changes."""
    if not best_baseline or not run.predictions(best_baseline).exists():
        return [], "No baseline was evaluated, so there is nothing to show side by side."
    inputs = {example.id: last_user_turn(example) for example in run.load_split("test")}
    baseline = {p.example_id: p for p in _predictions(run, best_baseline)}
    comparisons = [
        _compare(tuned, baseline[tuned.example_id], inputs[tuned.example_id], best_baseline, schema)
        for tuned in _predictions(run, FINETUNED)
    ]
    improved = [c for c in comparisons if c.change == "improved"]
    regressed = [c for c in comparisons if c.change == "regressed"]
    shown = pick_shown(improved, regressed, [c for c in comparisons if not c.change])
    summary = (f"{FINETUNED} vs {best_baseline} on {len(comparisons)} test rows: "
               f"{len(improved)} improved, {len(regressed)} regressed. Shown here: {len(shown)} of them "
               f"(improved and regressed first); every row is in eval/predictions-*.jsonl and `tunewright ui`.")
    return shown, summary


def pick_shown(improved: list[Comparison], regressed: list[Comparison],
               unchanged: list[Comparison]) -> list[Comparison]:
    """Half the slots each for improvements and regressions, so neither hides the other, then the rest."""
    half = SHOWN_EXAMPLES // 2
    shown = improved[:half] + regressed[:half]
    shown += (improved[half:] + regressed[half:] + unchanged)[: SHOWN_EXAMPLES - len(shown)]
    return sorted(shown, key=lambda c: CHANGE_ORDER.index(c.change))


def last_user_turn(example: Example) -> str:
    return next(m.content for m in reversed(example.messages) if m.role == "user")


def correct(prediction: Prediction) -> bool | None:
    """Right label for labelled rows; every rubric criterion passed for free-form ones; None if neither."""
    if prediction.label is not None:
        return prediction.predicted_label == prediction.label
    return all(prediction.rubric.values()) if prediction.rubric else None


def _compare(tuned: Prediction, baseline: Prediction, user_input: str, baseline_name: str,
             schema: dict[str, Any] | None) -> Comparison:
    tuned_right, baseline_right = correct(tuned), correct(baseline)
    wrong: dict[str, list[str]] = {}
    if schema is not None:
        for name, p in ((baseline_name, baseline), (FINETUNED, tuned)):
            answer, gold = parse_answer(p.output.strip(), schema), parse_answer(p.reference.strip(), schema)
            wrong[name] = (wrong_fields(answer_fields(gold.value), answer_fields(answer.value))
                           if answer.valid_json else ["(not JSON)"])
        tuned_right, baseline_right = not wrong[FINETUNED], not wrong[baseline_name]
    change = ""
    if tuned_right is True and baseline_right is False:
        change = "improved"
    elif tuned_right is False and baseline_right is True:
        change = "regressed"
    labels = ""
    if tuned.label is not None:
        labels = (f"label {tuned.label} · {baseline_name} said {baseline.predicted_label or 'no label'} · "
                  f"{FINETUNED} said {tuned.predicted_label or 'no label'}")
    if wrong:
        labels = " · ".join(filter(None, [labels, *(f"{name} wrong fields: {', '.join(fields) or 'none'}"
                                                    for name, fields in wrong.items())]))
    return Comparison(
        example_id=tuned.example_id,
        change=change,
        input=user_input,
        reference=tuned.reference,
        baseline_output=baseline.output,
        finetuned_output=tuned.output,
        labels=labels,
    )


def _predictions(run: RunPaths, candidate: str) -> list[Prediction]:
    return [Prediction(**row) for row in read_jsonl(run.predictions(candidate))]
