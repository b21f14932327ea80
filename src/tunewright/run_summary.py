"""What a finished run says about itself, as typed records: training_result.json (TrainingResult) and
summary.json (RunSummary: the decision, the data, the training, the evaluation, the artifacts, the
timings). Written by train/ and pipeline.py; read by the report, the dashboard, the CLI and the
adapter library. Never imports torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tunewright.runs import read_json


@dataclass(frozen=True)
class TrainingResult:
    steps: int
    planned_steps: int
    best_val_loss: float | None
    best_step: int | None
    stopped_early: bool
    overfitting_alert: bool
    train_tokens: int
    train_tokens_per_second: float
    seconds: float
    precision: str
    trainable_parameters: int
    total_parameters: int
    method: str = "lora"
    resumed_from_step: int | None = None
    precision_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> TrainingResult:
        return cls(**_known(cls, payload))

    @classmethod
    def read(cls, path: Path) -> TrainingResult:
        return cls.from_json(read_json(path))


@dataclass(frozen=True)
class EvalSummary:
    """The evaluation part of summary.json; metric maps stay keyed by metric name as score_run wrote them."""

    test_rows: int
    best_baseline: str
    gate: dict[str, Any]  # config.GateConfig as dumped, so a report shows the bars the run was held to
    candidates: dict[str, dict[str, Any]]
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    bootstrap_resamples: int = 0
    probes: dict[str, Any] = field(default_factory=dict)
    human_review: dict[str, Any] | None = None
    label_without_llm: dict[str, Any] | None = None
    calibration: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> EvalSummary:
        return cls(**_known(cls, payload))


@dataclass(frozen=True)
class Timings:
    """Wall-clock seconds of every stage and its parts ("baselines/zero_shot"), in the order they ran
    (timing.py), and the whole run's. In the file each top-level stage is also a key of its own."""

    stages: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        top = {name: seconds for name, seconds in self.stages.items() if "/" not in name}
        return {**top, "total_seconds": self.total_seconds, "stages": dict(self.stages)}

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> Timings:
        """A summary written before stages were recorded has only the top-level keys."""
        stages = payload["stages"] if "stages" in payload else {
            key: value for key, value in payload.items() if key != "total_seconds"}
        return cls(dict(stages), float(payload.get("total_seconds", 0.0)))


@dataclass(frozen=True)
class RunSummary:
    decision: str
    decision_reasons: list[str]
    task: str
    base_model: str
    method: str
    data: dict[str, int]  # rows per split
    training: TrainingResult
    evaluation: EvalSummary  # "eval" in the file
    artifacts: dict[str, str]  # name -> path relative to the run directory
    timings: Timings = field(default_factory=Timings)

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["eval"] = payload.pop("evaluation")
        payload["timings"] = self.timings.to_json()
        return payload

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> RunSummary:
        values = _known(cls, {**payload, "evaluation": payload.get("eval", {})})
        values["training"] = TrainingResult.from_json(values["training"])
        values["evaluation"] = EvalSummary.from_json(values["evaluation"])
        values["timings"] = Timings.from_json(values.get("timings") or {})
        return cls(**values)

    @classmethod
    def read(cls, path: Path) -> RunSummary:
        return cls.from_json(read_json(path))


def _known(cls: type, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload's values for `cls`'s fields; a file may carry more (written by a newer version)."""
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in payload.items() if key in names}
