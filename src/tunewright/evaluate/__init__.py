"""Evaluate on the held-out test split: prompting baselines first, then the fine-tuned adapter,
scored the same way and judged by the gate in the config."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tunewright.config import Config
from tunewright.evaluate.candidates import few_shot_chats, pick_shots, zero_shot_chats
from tunewright.evaluate.gate import FINETUNED, decide
from tunewright.evaluate.generate import Chat, generate_replies
from tunewright.evaluate.metrics import CandidateMetrics, grade_rubric, score
from tunewright.modeling import load_model, load_tokenizer, load_with_adapter, resolve_base_model
from tunewright.progress import progress_bar
from tunewright.records import Example, Prediction, extract_label
from tunewright.runs import RunPaths, read_json, read_jsonl, write_json, write_jsonl

BASELINES = ("zero_shot", "few_shot")


@dataclass(frozen=True)
class EvalResult:
    test_rows: int
    candidates: dict[str, CandidateMetrics]
    decision: str
    decision_reasons: list[str]
    best_baseline: str
    few_shot_ids: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_baselines(config: Config, run: RunPaths, show_progress: bool = True) -> None:
    """Generate the prompting baselines' answers on the test split (base model, no training)."""
    test, train = test_examples(config, run), run.load_split("train")
    model_dir = resolve_base_model(config.model.base)
    tokenizer, model = load_tokenizer(model_dir), load_model(model_dir)
    model.eval()
    shots = pick_shots(train, config.eval.few_shot_k, config.training.seed)
    chats = {
        "zero_shot": zero_shot_chats(test, config.task.system_prompt),
        "few_shot": few_shot_chats(test, shots, config.task.system_prompt),
    }
    for name, candidate_chats in chats.items():
        replies = _generate(config, model, tokenizer, candidate_chats, name, show_progress)
        _write_predictions(config, run, name, test, replies)
    write_json(run.eval_dir / "few_shot_examples.json", [shot.id for shot in shots])


def evaluate_finetuned(config: Config, run: RunPaths, show_progress: bool = True) -> None:
    """Generate the fine-tuned adapter's answers on the test split."""
    test = test_examples(config, run)
    model_dir = resolve_base_model(config.model.base)
    # The adapter's own tokenizer carries the chat template it was trained with.
    tokenizer = load_tokenizer(run.adapter)
    # Merged in memory only to generate faster; the saved adapter is what is evaluated.
    model = load_with_adapter(model_dir, run.adapter).merge_and_unload()
    chats = zero_shot_chats(test, config.task.system_prompt)
    replies = _generate(config, model, tokenizer, chats, FINETUNED, show_progress)
    _write_predictions(config, run, FINETUNED, test, replies)


def score_run(config: Config, run: RunPaths) -> EvalResult:
    """Metrics for every candidate with predictions on disk, and the gate's decision."""
    candidates = {}
    for name in (FINETUNED, *BASELINES):
        predictions = [Prediction(**row) for row in read_jsonl(run.predictions(name))]
        candidates[name] = score(config.task, predictions)
    decision = decide(config.eval.gate, candidates)
    shots_file = run.eval_dir / "few_shot_examples.json"
    result = EvalResult(
        test_rows=candidates[FINETUNED].rows,
        candidates=candidates,
        decision=decision.decision,
        decision_reasons=decision.reasons,
        best_baseline=decision.best_baseline,
        few_shot_ids=[str(i) for i in read_json(shots_file)] if shots_file.exists() else [],
    )
    write_json(run.eval_result, result.to_json())
    return result


def test_examples(config: Config, run: RunPaths) -> list[Example]:
    return run.load_split("test")[: config.eval.max_test_rows]


def _generate(config: Config, model: Any, tokenizer: Any, chats: list[Chat], name: str,
              show_progress: bool) -> list[str]:
    progress = progress_bar(f"eval {name}", disable=not show_progress)
    with progress:
        task_id = progress.add_task(name, total=len(chats))
        replies = generate_replies(
            model, tokenizer, chats, config.eval.max_new_tokens, config.eval.batch_size,
            on_batch=lambda done: progress.advance(task_id, done),
        )
    return [reply.text for reply in replies]


def _write_predictions(config: Config, run: RunPaths, candidate: str, test: list[Example],
                       replies: list[str]) -> None:
    rows = [
        Prediction(
            example_id=example.id,
            candidate=candidate,
            output=reply,
            reference=example.reference,
            label=example.label,
            predicted_label=extract_label(reply, config.task.label_regex),
            rubric=grade_rubric(config.task, reply),
        )
        for example, reply in zip(test, replies, strict=True)
    ]
    write_jsonl(run.predictions(candidate), [asdict(row) for row in rows])
