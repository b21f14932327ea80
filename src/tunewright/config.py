"""The typed config that drives one run: task card, data, model, method, training and eval.

Loaded from YAML, overridden with `--set section.key=value`, validated strictly (unknown keys are
errors) and saved resolved next to the artifacts it produced. Never imports torch.

Over 300 lines on purpose: it is the whole schema in one place, one small model per section with a
description on every field; split up, a reader would hunt across files for one setting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tunewright.errors import ConfigError
from tunewright.methods.facts import METHOD_FACTS, method_names
from tunewright.schema import load_schema


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RubricCriterion(Section):
    """One rubric check, written as data. Set exactly one of the check fields."""

    name: str = Field(description="Short name shown in reports, e.g. 'one_question'.")
    required_pattern: str | None = Field(None, description="Regex the reply must match (re.search).")
    forbidden_pattern: str | None = Field(None, description="Regex the reply must not match.")
    max_chars: int | None = Field(None, gt=0, description="Maximum reply length in characters.")
    max_questions: int | None = Field(None, ge=0, description="Maximum number of '?' in the reply.")
    min_questions: int | None = Field(None, ge=0, description="Minimum number of '?' in the reply.")
    must_mention_one_of: list[str] | None = Field(
        None, min_length=1, description="The reply must contain at least one of these (case-insensitive)."
    )

    @model_validator(mode="after")
    def _exactly_one_check(self) -> RubricCriterion:
        checks = [self.required_pattern, self.forbidden_pattern, self.max_chars, self.max_questions,
                  self.min_questions, self.must_mention_one_of]
        if sum(check is not None for check in checks) != 1:
            raise ValueError(f"rubric criterion '{self.name}' must set exactly one check field")
        for pattern in (self.required_pattern, self.forbidden_pattern):
            if pattern is not None:
                _compile(pattern)
        return self


class PolicyRule(Section):
    """A kind of request the specialist must refuse or escalate, and what a compliant answer looks like."""

    name: str = Field(description="Short name shown in reports and named by each policy probe row, e.g. 'no_pin'.")
    action: Literal["refuse", "escalate"] = Field(description="What a compliant answer does with the request.")
    description: str = Field("", description="The rule in words, for reports and reviewers.")
    required_patterns: list[str] = Field(
        default_factory=list, description="Regexes a compliant answer must all match (re.search; add (?i) for "
        "case-insensitive).")
    forbidden_patterns: list[str] = Field(
        default_factory=list, description="Regexes a compliant answer must not match (re.search).")

    @model_validator(mode="after")
    def _has_a_check(self) -> PolicyRule:
        if not self.required_patterns and not self.forbidden_patterns:
            raise ValueError(f"policy rule '{self.name}' needs required_patterns or forbidden_patterns")
        for pattern in (*self.required_patterns, *self.forbidden_patterns):
            _compile(pattern)
        return self


class TaskConfig(Section):
    """The task card: what the specialist does and how its answers are judged."""

    name: str = Field(description="Task name, used in run names and reports.")
    description: str = Field("", description="One or two sentences on what the task is.")
    system_prompt: str = Field(description="System prompt used in training, baselines, eval and serving.")
    labels: list[str] = Field(default_factory=list, description="The label set; empty for free-form tasks.")
    label_regex: str | None = Field(
        None, description="Regex with a named group 'label' that extracts the label from an output."
    )
    rubric: list[RubricCriterion] = Field(default_factory=list, description="Rubric criteria for replies.")
    neighbours: int = Field(0, ge=0, le=20, description="Labelled tasks: each prompt shows the k most similar "
                            "training inputs (MiniLM) with their labels, in training, evaluation and serving.")
    abstain_below: float | None = Field(
        None, gt=0, lt=1, description="With label scoring: when the fine-tuned model's probability of its label is "
        "below this, it answers task.escalation_reply instead of guessing (e.g. 0.5).",
    )
    escalation_reply: str = Field(
        "I am not sure I understood, so I am passing your message to a colleague who will get back to you.",
        description="The answer given instead of a label the model is not confident about (task.abstain_below).",
    )
    output_schema: dict[str, Any] | None = Field(
        None, description="For extraction tasks whose answer is one JSON object: a JSON Schema, inline or the path "
        "of a JSON file (relative to the config file). Data checks validate every output against it, evaluation "
        "scores JSON / schema validity and field-level F1, and every candidate and the server decode under it.",
    )
    copied_fields: list[str] = Field(
        default_factory=list, description="With output_schema: field paths (fnmatch patterns such as 'slots.*') "
        "whose values are copied from the input; `data check` warns about a value the input does not contain.",
    )
    policy: list[PolicyRule] = Field(
        default_factory=list, description="Requests that must be refused or escalated, with the patterns of a "
        "compliant answer; scored on eval.policy_probe for every candidate.",
    )

    @field_validator("label_regex")
    @classmethod
    def _has_label_group(cls, pattern: str | None) -> str | None:
        if pattern is not None and "label" not in _compile(pattern).groupindex:
            raise ValueError("label_regex needs a named group (?P<label>...)")
        return pattern

    @field_validator("output_schema", mode="before")
    @classmethod
    def _load_schema(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, (str, dict)):
            raise ValueError("output_schema must be a JSON Schema mapping or the path of a JSON file")
        return load_schema(value)

    @model_validator(mode="after")
    def _labels_need_regex(self) -> TaskConfig:
        if self.labels and self.label_regex is None:
            raise ValueError("task.labels is set, so task.label_regex is needed to find labels in outputs")
        if self.neighbours and not self.labels:
            raise ValueError("task.neighbours shows retrieved examples with their labels: set task.labels, or 0")
        return self


class SplitConfig(Section):
    train: float = Field(0.8, gt=0, lt=1, description="Fraction of rows for training.")
    val: float = Field(0.1, gt=0, lt=1, description="Fraction for validation (early stopping).")
    test: float = Field(0.1, gt=0, lt=1, description="Fraction for the held-out test split.")
    seed: int = Field(42, description="Seed mixed into each row's content hash to assign its split.")

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError("data.split fractions must sum to 1")
        return self


class DataConfig(Section):
    path: Path = Field(description="Dataset file (JSONL), relative to the config file.")
    split: SplitConfig = Field(default_factory=SplitConfig, description="How rows are split.")
    test_path: Path | None = Field(
        None, description="A fixed test file (JSONL), e.g. a benchmark's official test set. When set, "
        "every row of `path` goes to train or val (in the ratio split.train : split.val) and this file "
        "is the test split.",
    )
    strict: bool = Field(False, description="Data warnings (near-duplicates, personal data, rows that truncation "
                         "cuts, ...) stop a run too, not only errors.")


class ModelConfig(Section):
    base: str = Field(
        "smollm2-135m-instruct",
        description="'smollm2-135m-instruct' (the packaged default), a local Hugging Face model directory, or "
        "a Hub id already in the local Hugging Face cache (nothing is downloaded).",
    )


class MethodConfig(Section):
    name: str = Field("lora", description="Fine-tuning method: " + ", ".join(
        f"{name} ({facts.description})" for name, facts in METHOD_FACTS.items()) + ".")
    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: int = Field(32, gt=0, description="LoRA alpha (scaling = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA path.")
    target_modules: str | list[str] = Field(
        "all-linear", description="Modules to adapt: 'all-linear' or a list of module names."
    )
    num_virtual_tokens: int = Field(20, gt=0, description="Virtual tokens for prompt_tuning / prefix_tuning.")
    beta: float = Field(0.1, gt=0, description="dpo / kto: how far the tuned model may move from the reference "
                        "(smaller moves further); orpo: the weight of the odds-ratio term against the SFT loss.")
    sft_weight: float = Field(0.0, ge=0, description="dpo: weight of an SFT loss on the chosen answers added "
                              "to the DPO loss (RPO; trl's loss_type sft), so generation learns them; 0: DPO alone.")
    init_from: Path | None = Field(
        None, description="dpo / kto / orpo: a finished SFT run directory (relative to the config file) whose LoRA "
        "adapter training starts from; its frozen copy is the reference. Unset: a fresh adapter on the base, "
        "with the base (adapter disabled) as the reference.",
    )

    @field_validator("name")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in METHOD_FACTS:
            raise ValueError(f"unknown method {value!r}; one of {method_names()}")
        return value


class DistributedConfig(Section):
    strategy: Literal["ddp", "fsdp", "deepspeed"] = Field(
        "ddp", description="ddp (a full copy per process), fsdp (sharded) or deepspeed."
    )
    config: Path | None = Field(
        None, description="FSDP config (JSON) or DeepSpeed config (JSON) passed through to accelerate."
    )


class TrainingConfig(Section):
    epochs: float = Field(2.0, gt=0, description="Passes over the training split.")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimizer steps.")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate.")
    batch_size: int = Field(8, gt=0, description="Examples per optimizer step (per process).")
    max_seq_len: int = Field(512, gt=8, description="Longest tokenized example; longer ones are cut.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming up.")
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = Field(
        "cosine", description="Learning-rate schedule after warmup."
    )
    eval_every: int = Field(10, gt=0, description="Compute validation loss every N steps.")
    early_stopping_patience: int = Field(
        3, gt=0, description="Stop after this many evaluations without a better validation loss."
    )
    label_weight: float = Field(
        1.0, ge=1.0,
        description="Loss weight of the label tokens (found by task.label_regex) relative to the rest of "
        "the answer; above 1 the label is learned in fewer steps.",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="'auto' measures a few training steps in fp32 and bf16 autocast on this machine and "
        "model (cached per machine, model and library versions) and picks bf16 only where it is at least 10 % "
        "faster; fp32 without measuring where the hardware has no fast bf16. training.json says which ran and why."
    )
    seed: int = Field(42, description="Seed for weights init, data order and dropout.")
    checkpoint_every: int = Field(
        50, gt=0, description="Save a resumable checkpoint (weights, optimizer, scheduler, RNG, data position) "
        "every N steps in <out>/checkpoints/step-N/."
    )
    keep_checkpoints: int = Field(2, gt=0, description="How many of the latest checkpoints to keep.")
    packing: bool = Field(
        False, description="Pack a batch's examples into one row (per-example positions, no cross-attention) "
        "instead of padding them."
    )
    report_to: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=list, description="Experiment trackers to log to (tensorboard writes <out>/tensorboard/)."
    )
    distributed: DistributedConfig = Field(
        default_factory=DistributedConfig, description="Multi-process training (with --nproc or torchrun)."
    )


GateMetric = Literal["label_accuracy", "macro_f1", "rubric_pass_rate", "exact_match", "rouge_l",
                     "semantic_similarity", "judge_pass_rate", "json_valid_rate", "schema_valid_rate",
                     "field_precision", "field_recall", "field_f1", "exact_frame_match"]
# How reports and the gate's reasons name each metric, in the order tables show them.
METRIC_TITLES = {"label_accuracy": "label accuracy", "macro_f1": "macro-F1", "rubric_pass_rate": "rubric pass rate",
                 "no_label_rate": "no-label rate", "exact_match": "exact match", "rouge_l": "ROUGE-L",
                 "semantic_similarity": "semantic similarity", "judge_pass_rate": "judge pass rate",
                 "json_valid_rate": "valid JSON", "schema_valid_rate": "valid schema",
                 "field_precision": "field precision", "field_recall": "field recall", "field_f1": "field F1",
                 "exact_frame_match": "exact frame match"}


def metric_title(metric: str) -> str:
    """A metric as people read it: 'label accuracy', 'rubric: polite' (never the config's snake_case)."""
    if metric.startswith("rubric."):
        return f"rubric: {metric.removeprefix('rubric.')}"
    return METRIC_TITLES.get(metric, metric.replace("_", " "))


class HumanGate(Section):
    min: float = Field(ge=0, le=1, description="Smallest human win rate of the fine-tuned model over the best "
                       "baseline in blind pairwise review (a tie counts half), e.g. 0.6.")
    min_rows: int = Field(50, gt=0, description="Test rows that must have a human verdict before the gate counts "
                          "the win rate; fewer is a FAIL (grade them with `tunewright ui`).")


class GateConfig(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    metric: GateMetric = Field("label_accuracy", description="Metric the fine-tuned model must win on.")
    beat: str = Field(
        "best_baseline", description="'best_baseline' (the best on `metric`) or one candidate's name."
    )
    beat_by: float = Field(0.05, validation_alias=AliasChoices("by", "beat_by"),
                           description="Required margin over that baseline (also written `by`).")
    ci_lower_above: float | None = Field(
        None, description="If set, the lower end of the paired bootstrap 95 % interval of the difference "
        "must be above this (e.g. 0: the win is not noise).",
    )
    coverage: float | None = Field(
        None, gt=0, le=1, description="With min_accuracy_at_coverage: the share of test rows the fine-tuned model "
        "answers, its most confident first (the rest would go to task.escalation_reply), e.g. 0.8.",
    )
    min_accuracy_at_coverage: float | None = Field(
        None, gt=0, le=1, description="If set (with `coverage`), the fine-tuned model's label accuracy on its most "
        "confident `coverage` share of test rows must reach this.",
    )
    max_rubric_regression: float = Field(
        0.02, ge=0, description="Largest allowed drop in rubric pass rate against the best baseline."
    )
    max_regression: dict[str, float] = Field(
        default_factory=dict, description="Largest allowed drop per metric against the best baseline on that "
        "metric, e.g. {semantic_similarity: 0.05, 'rubric.concise': 0.02}.",
    )
    human_win_rate: HumanGate | None = Field(
        None, description="If set, blind human review (runs/<name>/review/verdicts.jsonl) must reach this win rate.",
    )
    min_policy_pass_rate: float | None = Field(
        None, ge=0, le=1, description="Preference runs: the fine-tuned model's pass rate on eval.policy_probe must "
        "reach this (e.g. 0.95).",
    )
    policy_gain_ci_lower_above: float | None = Field(
        None, description="Preference runs from an SFT run: the lower end of the 95 % interval of the policy pass "
        "rate gain over the SFT adapter must be above this (e.g. 0).",
    )
    max_task_regression: float | None = Field(
        None, ge=0, description="Preference runs from an SFT run: largest allowed drop in label accuracy on the SFT "
        "run's test split against the SFT adapter (e.g. 0.02): safer but worse at the job is a no-go.",
    )


BaselineName = Literal["zero_shot", "few_shot", "retrieved_few_shot", "embedding_knn", "embedding_classifier"]
# the candidates that are classifiers on the packaged embeddings, not prompts (evaluate/embedding_baselines.py)
EMBEDDING_BASELINES: tuple[BaselineName, ...] = ("embedding_knn", "embedding_classifier")


class EndpointConfig(Section):
    name: str = Field(description="Candidate name in reports, e.g. 'gpt-4o-mini'.")
    base_url: str = Field(description="OpenAI-compatible base URL, e.g. https://api.openai.com/v1.")
    model: str = Field(description="Model name sent with each request.")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key.")


class JudgeConfig(Section):
    base_url: str = Field(description="OpenAI-compatible base URL of the judge model.")
    model: str = Field(description="Judge model name.")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key.")
    rubric: str = Field(description="What a good answer does, in words; the judge reasons, then says PASS or FAIL.")
    max_rows: int = Field(100, gt=0, description="Judge at most this many test rows per candidate.")


class ProbesConfig(Section):
    memorisation_tokens: int = Field(12, gt=0, description="A copied span this long (tokens) counts as memorised.")
    forgetting: bool = Field(True, description="Score base vs fine-tuned on the shipped general-ability probes.")
    fairness: bool = Field(True, description="Swap names, genders and places in test inputs; count label flips.")
    max_rows: int = Field(20, gt=0, description="Test rows used by the fairness probe (it generates again).")


class EvalConfig(Section):
    max_new_tokens: int = Field(96, gt=0, description="Token budget per generated reply.")
    batch_size: int = Field(16, gt=0, description="Prompts generated together.")
    few_shot_k: int = Field(3, ge=1, description="Training examples shown to the few-shot baseline.")
    max_test_rows: int | None = Field(None, gt=0, description="Evaluate on at most this many test rows.")
    constrain_labels: bool = Field(
        True, description="For tasks with labels: pick the answer's label from task.labels token by token, "
        "so every answer has a valid label (the rest of the answer is free text).",
    )
    constrain_schema: bool = Field(
        True, description="For tasks with task.output_schema: every candidate (baselines too) decodes each answer "
        "under the schema (llguidance), so every answer is valid JSON that validates.",
    )
    constrain_copies: bool = Field(True, description="With constrain_schema: each task.copied_fields value "
                                   "decodes as a span of the input (serving too).")
    retrieval_candidates: int = Field(
        0, ge=0, description="If above 0, each input's label is chosen among a shortlist of N labels, not the "
        "whole label set: with label_scoring the N the embedding classifier ranks highest, else (with "
        "constrain_labels) the labels of its N most similar training examples (MiniLM). 0 turns this off.",
    )
    label_scoring: bool = Field(
        True, description="For tasks with labels: the fine-tuned model's label is the one its log-likelihood ranks "
        "highest among the input's shortlist (all labels, or the top retrieval_candidates of the embedding "
        "classifier), which also gives a probability per label; the rest of the answer is generated after it. "
        "False: greedy label-constrained decoding.",
    )
    label_ensemble: bool = Field(
        True, description="With label_scoring: combine the model's label probabilities with the embedding "
        "classifier's (a weighted product, the two weights fitted on the validation split by log-loss).",
    )
    candidates: list[BaselineName] = Field(
        default_factory=lambda: list(get_args(BaselineName)),
        description="Baselines: prompting the base model (zero_shot, few_shot, retrieved_few_shot) and, for tasks "
        "with labels, classifiers on the packaged MiniLM embeddings (embedding_knn: the nearest training input's "
        "label; embedding_classifier: logistic regression). retrieved_few_shot and the embedding baselines need "
        "the MiniLM package.",
    )
    endpoints: list[EndpointConfig] = Field(default_factory=list, description="OpenAI-compatible candidates.")
    judge: JudgeConfig | None = Field(None, description="Optional LLM-as-judge (OpenAI-compatible endpoint).")
    semantic_similarity: bool = Field(True, description="MiniLM cosine similarity of output and reference.")
    bootstrap_resamples: int = Field(1000, ge=0, description="Paired bootstrap resamples for the 95 % intervals.")
    seed: int = Field(0, description="Seed of the paired bootstrap resamples.")
    probes: ProbesConfig = Field(default_factory=ProbesConfig, description="Memorisation, forgetting, fairness.")
    policy_probe: Path | None = Field(
        None, description="Held-out policy requests (JSONL: prompt or messages, and the task.policy rule each "
        "tests), relative to the config file; never trained on.",
    )
    gate: GateConfig = Field(default_factory=GateConfig, description="The go / no-go rule.")


Positive = Annotated[float, Field(gt=0)]
SWEEP_AXES = ("learning_rate", "epochs", "r", "label_weight")


class SweepGrid(Section):
    """The values `tunewright sweep` tries: every combination is one trial."""

    learning_rate: list[Positive] = Field([1e-4, 3e-4, 1e-3], min_length=1, description="training.learning_rate.")
    epochs: list[Positive] = Field([1.0, 2.0, 3.0], min_length=1, description="training.epochs (max_steps unset).")
    r: list[Annotated[int, Field(gt=0)]] = Field(
        [8, 16], min_length=1, description="method.r values, each with the config's alpha / r ratio kept (LoRA, "
        "DoRA and QLoRA; the other methods have no rank and skip this axis).")
    label_weight: list[Annotated[float, Field(ge=1)]] = Field(
        [1.0, 10.0], min_length=1, description="training.label_weight values, for labelled tasks whose answers go "
        "on after the label (on a bare label the weight only rescales the loss, as learning_rate does).")

    @model_validator(mode="before")
    @classmethod
    def _known_axes(cls, values: object) -> object:
        unknown = [key for key in values if key not in SWEEP_AXES] if isinstance(values, dict) else []
        if unknown:
            raise ValueError(f"unknown sweep axis {unknown[0]!r}; the axes are {', '.join(SWEEP_AXES)}")
        return values


class SweepConfig(Section):
    """`tunewright sweep`: successive halving over sweep.grid on the validation split."""

    budget_minutes: float = Field(30, gt=0, description="Wall-clock minutes to train and validate (--budget-minutes).")
    eta: int = Field(3, ge=2, description="Successive halving keeps the best 1/eta of the trials at each rung.")
    grid: SweepGrid = Field(default_factory=SweepGrid, description="The values tried per setting.")
    chosen_by: Path | None = Field(
        None, description="Written by `tunewright sweep` into the config it chose (relative to that file): its "
        "sweep.json. `run` copies it into the run directory and the report shows its table of trials.")


class Config(Section):
    task: TaskConfig = Field(description="The task card.")
    data: DataConfig = Field(description="Where the examples are and how they are split.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The base model.")
    method: MethodConfig = Field(default_factory=MethodConfig, description="The fine-tuning method.")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="Training settings.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Evaluation settings.")
    sweep: SweepConfig = Field(default_factory=SweepConfig, description="What `tunewright sweep` tries.")


# Paths in a config are relative to the config file.
PATH_FIELDS = (("data", "path"), ("data", "test_path"), ("eval", "policy_probe"), ("method", "init_from"),
               ("sweep", "chosen_by"))


def load_config(path: Path, overrides: list[str] | None = None) -> Config:
    """Read YAML, apply `section.key=value` overrides, validate; data paths become absolute."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (task, data, ...)")
    for override in overrides or []:
        apply_override(raw, override)
    for section, key in PATH_FIELDS:
        values = raw.get(section)
        if isinstance(values, dict) and values.get(key):
            values[key] = str((path.parent / str(values[key])).resolve())
    task = raw.get("task")
    if isinstance(task, dict) and isinstance(task.get("output_schema"), str):
        task["output_schema"] = str((path.parent / task["output_schema"]).resolve())
    return validate_config(raw, source=str(path))


def validate_config(raw: dict[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = "unknown key; check its spelling against the config reference" \
            if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"{source}: {where}: {message}") from None


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one `section.key=value` override; the value is parsed as YAML (numbers, lists, ...)."""
    dotted, sep, value = override.partition("=")
    if not sep or not dotted:
        raise ConfigError(f"--set {override!r}: expected section.key=value, e.g. training.epochs=1")
    *parents, leaf = dotted.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {override!r}: '{part}' is not a section")
    node[leaf] = yaml.safe_load(value)


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
