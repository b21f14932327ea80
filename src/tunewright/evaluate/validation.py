"""The fine-tuned model on the validation split, for `tunewright sweep`: its answers produced and scored
the way evaluation produces and scores the test split's, reduced to the one metric trials are compared on."""

from __future__ import annotations

from tunewright.config import Config
from tunewright.errors import ConfigError
from tunewright.evaluate.candidates import zero_shot_chats
from tunewright.evaluate.gate import FINETUNED
from tunewright.evaluate.label_answers import label_scoring_format, prepare_scorer, scored_labels
from tunewright.evaluate.metrics import grade_rubric, score

# evaluate/__init__.py's own generation and loading, so validation answers are made exactly as test answers
from tunewright.evaluate.task_decoding import (
    finetuned_prompts,
    generate_answers,
    label_constraint,
    load_finetuned,
    narrowed_constraints,
)
from tunewright.records import Prediction, extract_label
from tunewright.runs import RunPaths


def validation_metric(config: Config, run: RunPaths, metric: str) -> float:
    """The fine-tuned artifact's `metric` on the run's val split, its answers produced and scored the way
    evaluate_finetuned and score_run produce and score the test split's (`tunewright sweep` selects on it).
    For a label metric under label scoring only the label is scored, so the rest is not generated."""
    val, train = run.load_split("val"), run.load_split("train")
    model, tokenizer = load_finetuned(config, run)
    fmt = label_scoring_format(config, train)
    prompted = finetuned_prompts(config, train)
    if fmt is not None and metric in ("label_accuracy", "macro_f1"):
        scorer = prepare_scorer(config, model, tokenizer, train, val, fmt, prompted)
        replies = [config.task.escalation_reply if label is None else fmt.before + label + fmt.after
                   for label in scored_labels(scorer, val)]
    else:
        chats = zero_shot_chats(prompted(val), config.task.system_prompt)
        replies = generate_answers(config, model, tokenizer, chats, "val", False,
                                   label_constraint(config, tokenizer, train),
                                   narrowed_constraints(config, tokenizer, val, train))
    predictions = [Prediction(example_id=example.id, candidate=FINETUNED, output=reply, reference=example.reference,
                              label=example.label, predicted_label=extract_label(reply, config.task.label_regex),
                              rubric=grade_rubric(config.task, reply))
                   for example, reply in zip(val, replies, strict=True)]
    similarity = None
    if metric == "semantic_similarity":
        from tunewright.retrieval import packaged_embedder

        similarity = packaged_embedder().similarity(replies, [p.reference for p in predictions])
    verdicts = None
    if metric == "judge_pass_rate" and config.eval.judge is not None:
        from tunewright.evaluate.judge import judge_answers
        from tunewright.retrieval import input_text

        verdicts, _ = judge_answers(config.eval.judge, [(input_text(example), p.reference, p.output)
                                                        for example, p in zip(val, predictions, strict=True)])
    value = getattr(score(config.task, predictions, similarity, verdicts), metric)
    if value is None:
        raise ConfigError(f"eval.gate.metric {metric}: this task's validation answers have no {metric}; "
                          "pick a metric the task produces")
    return float(value)
