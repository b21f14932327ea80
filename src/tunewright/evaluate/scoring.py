"""Score every candidate with predictions on disk, compare the fine-tuned model with each baseline
(paired bootstrap 95 % intervals), read the probes and the human verdicts, and let the gate decide;
writes eval_result.json (and the judge's per-row verdicts, eval/judge.json, for agreement with humans)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, get_args

from tunewright.config import BaselineName, Config
from tunewright.evaluate.calibration import (
    accuracy_at_coverage,
    coverage_curve,
    expected_calibration_error,
    reliability,
)
from tunewright.evaluate.gate import FINETUNED, best_baseline, decide, label_without_llm
from tunewright.evaluate.metrics import COMPARED, CandidateMetrics, row_scores, score
from tunewright.evaluate.probes import forgetting, memorisation
from tunewright.evaluate.stats import Comparison, bootstrap_indices, paired_difference
from tunewright.records import Example, Prediction
from tunewright.review import summarise
from tunewright.runs import RunPaths, read_json, read_jsonl, write_json

BASELINES = get_args(BaselineName)  # every candidate the config can name, in its order


@dataclass(frozen=True)
class EvalResult:
    test_rows: int
    candidates: dict[str, CandidateMetrics]
    decision: str
    decision_reasons: list[str]
    best_baseline: str
    few_shot_ids: list[str]
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    probes: dict[str, Any] = field(default_factory=dict)
    human_review: dict[str, Any] | None = None  # review.HumanReview against the best baseline
    label_without_llm: dict[str, Any] | None = None  # evaluate/gate.py label_without_llm
    calibration: dict[str, Any] = field(default_factory=dict)  # per candidate with confidences

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def candidate_names(config: Config, run: RunPaths) -> list[str]:
    """The fine-tuned model first, then every baseline and endpoint that has predictions on disk."""
    names = [FINETUNED, *BASELINES, *(endpoint.name for endpoint in config.eval.endpoints)]
    return [name for name in dict.fromkeys(names) if run.predictions(name).exists()]


def score_run(config: Config, run: RunPaths) -> EvalResult:
    """Metrics, comparisons, probes and the gate's decision for a run with predictions on disk."""
    names = candidate_names(config, run)
    predictions = {name: [Prediction(**row) for row in read_jsonl(run.predictions(name))] for name in names}
    test = {example.id: example for example in run.load_split("test")}
    similarity = _similarities(config, predictions)
    judged = _judge(config, predictions, test)
    candidates, per_row = {}, {}
    for name, rows in predictions.items():
        verdicts, failures = judged.get(name, (None, None))
        candidates[name] = score(config.task, rows, similarity.get(name), verdicts, failures)
        per_row[name] = row_scores(config.task, rows, similarity.get(name), verdicts)
    comparisons = compare(config, per_row, len(predictions[FINETUNED]))
    judge_rows = {name: {p.example_id: verdict for p, verdict in zip(predictions[name], verdicts, strict=True)}
                  for name, (verdicts, _) in judged.items()}
    if judge_rows:
        write_json(run.eval_dir / "judge.json", judge_rows)
    best = best_baseline(config.eval.gate, candidates)
    human = summarise(run.root, best, judge_rows, config.eval.seed) if best else None
    decision = decide(config.eval.gate, candidates, comparisons, human,
                      _accuracy_at_coverage(predictions[FINETUNED], config.eval.gate.coverage))
    shots_file = run.eval_dir / "few_shot_examples.json"
    result = EvalResult(
        test_rows=candidates[FINETUNED].rows,
        candidates=candidates,
        decision=decision.decision,
        decision_reasons=decision.reasons,
        best_baseline=decision.best_baseline,
        few_shot_ids=[str(i) for i in read_json(shots_file)] if shots_file.exists() else [],
        comparisons=[comparison.to_json() for comparison in comparisons],
        probes=_probes(config, run, predictions[FINETUNED]),
        human_review=human.to_json() if human is not None else None,
        label_without_llm=label_without_llm(config.eval.gate, candidates),
        calibration={name: found for name, rows in predictions.items() if (found := calibration(rows))},
    )
    write_json(run.eval_result, result.to_json())
    return result


def calibration(rows: list[Prediction]) -> dict[str, Any] | None:
    """ECE, reliability bins and accuracy against coverage, for a candidate whose every labelled
    prediction has a confidence; None otherwise."""
    labelled = [p for p in rows if p.label is not None]
    if not labelled or any(p.confidence is None for p in labelled):
        return None
    confidence = [float(p.confidence) for p in labelled if p.confidence is not None]
    correct = [p.predicted_label == p.label for p in labelled]
    return {"ece": expected_calibration_error(confidence, correct),
            "reliability": [asdict(b) for b in reliability(confidence, correct)],
            "coverage": [{"threshold": t, "coverage": c, "accuracy": a}
                         for t, c, a in coverage_curve(confidence, correct)]}


def _accuracy_at_coverage(rows: list[Prediction], coverage: float | None) -> float | None:
    labelled = [p for p in rows if p.label is not None]
    if coverage is None or not labelled or any(p.confidence is None for p in labelled):
        return None
    return accuracy_at_coverage([float(p.confidence or 0.0) for p in labelled],
                                [p.predicted_label == p.label for p in labelled], coverage)


def compare(config: Config, per_row: dict[str, dict[str, Any]], rows: int) -> list[Comparison]:
    """finetuned - baseline for every metric both have, with paired bootstrap 95 % intervals."""
    samples = bootstrap_indices(rows, config.eval.bootstrap_resamples, config.eval.seed)
    tuned = per_row[FINETUNED]
    metrics = [m for m in (*COMPARED, *(f"rubric.{c.name}" for c in config.task.rubric)) if m in tuned]
    found = []
    for baseline, scores in per_row.items():
        if baseline == FINETUNED:
            continue
        for metric in metrics:
            if metric not in scores:
                continue
            comparison = paired_difference(metric, FINETUNED, baseline, tuned[metric], scores[metric], rows, samples)
            if comparison is not None:
                found.append(comparison)
    return found


def _similarities(config: Config, predictions: dict[str, list[Prediction]]) -> dict[str, list[float]]:
    if not config.eval.semantic_similarity:
        return {}
    from tunewright.retrieval import packaged_embedder

    embedder = packaged_embedder()
    return {name: embedder.similarity([p.output for p in rows], [p.reference for p in rows])
            for name, rows in predictions.items()}


def _judge(config: Config, predictions: dict[str, list[Prediction]],
           test: dict[str, Example]) -> dict[str, tuple[list[bool | None], int]]:
    if config.eval.judge is None:
        return {}
    from tunewright.evaluate.judge import judge_answers
    from tunewright.retrieval import input_text

    return {name: judge_answers(config.eval.judge, [(input_text(test[p.example_id]) if p.example_id in test else "",
                                                     p.reference, p.output) for p in rows])
            for name, rows in predictions.items()}


def _probes(config: Config, run: RunPaths, tuned: list[Prediction]) -> dict[str, Any]:
    """Memorisation from the predictions; forgetting and fairness from the files generation wrote."""
    train = run.load_split("train")
    copied = memorisation([(p.example_id, p.output) for p in tuned], train, config.eval.probes.memorisation_tokens)
    probes: dict[str, Any] = {"memorisation": asdict(copied)}
    base_file, tuned_file = run.eval_dir / "probe_general_base.json", run.eval_dir / "probe_general_finetuned.json"
    if base_file.exists() and tuned_file.exists():
        probes["forgetting"] = forgetting(read_json(base_file), read_json(tuned_file))
    fairness_file = run.eval_dir / "probe_fairness.json"
    if fairness_file.exists():
        probes["fairness"] = read_json(fairness_file)
    return probes
