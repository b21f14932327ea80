"""The whole loop for one config: check data, split, prompting baselines, train, evaluate the
adapter, decide, report. Each stage reads and writes files in the run directory."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from tunewright.config import Config, dump_config
from tunewright.data.check import CheckReport, check_dataset
from tunewright.data.split import Splits, build_splits, split_position, split_preferences
from tunewright.errors import ConfigError, DataError
from tunewright.methods.facts import METHOD_FACTS
from tunewright.modeling import load_tokenizer, resolve_base_model
from tunewright.records import Example
from tunewright.run_summary import EvalSummary, RunSummary, Timings, TrainingResult
from tunewright.runs import RunPaths, read_json, write_json, write_jsonl, write_text
from tunewright.timing import recording, stage

Announce = Callable[[str], None]
FIXED_TEST_TOLERATED = ("conflicting-labels", "duplicate", "near-duplicate")


def prepare_run(config: Config, run: RunPaths, announce: Announce) -> CheckReport:
    """Save the resolved config, check the data (errors stop here) and write the splits."""
    write_text(run.config, dump_config(config))
    if (chosen_by := config.sweep.chosen_by) is not None:  # the report shows the sweep that chose the settings
        if not chosen_by.is_file():
            raise ConfigError(f"sweep.chosen_by: {chosen_by} not found; unset it or point it at a sweep.json")
        write_text(run.sweep, chosen_by.read_text(encoding="utf-8"))
    report, tokenizer = check_run_data(config, run, announce)
    if report.preferences:
        return _write_preference_splits(config, run, report, announce)
    splits = build_splits(report.examples, config.data.split, report.clusters)
    if config.data.test_path is not None:
        splits = _with_fixed_test(config, tokenizer, splits)
    _write_splits(config, run, splits, "examples")
    announce(f"{len(report.examples)} examples: train {len(splits.train)}, val {len(splits.val)}, "
             f"test {len(splits.test)}; {len(report.warnings)} warning(s)")
    return report


def check_run_data(config: Config, run: RunPaths, announce: Announce) -> tuple[CheckReport, Any]:
    """Check data.path (not data.test_path), write the data report; errors stop here. Returns the
    report and the base model's tokenizer."""
    announce(f"checking {config.data.path}")
    tokenizer = load_tokenizer(resolve_base_model(config.model.base))
    report = check_dataset(config.data.path, config.task, tokenizer, config.training.max_seq_len,
                           method=config.method.name)
    write_json(run.data_report, report.to_json())
    check_data_fits_method(config, report)
    if blocking := report.blocking(config.data.strict):
        codes = ", ".join(f"{code} x{count}" for code, count in Counter(f.code for f in blocking).items())
        kind = "error(s) and warning(s) (data.strict)" if config.data.strict else "error(s)"
        raise DataError(f"{len(blocking)} data {kind} ({codes}), first: {blocking[0].line()} "
                        f"(run `tunewright data check {config.data.path}` for all)")
    return report, tokenizer


def train_val_splits(config: Config, report: CheckReport) -> tuple[list[Example], list[Example]]:
    """The train and val rows `prepare_run` writes for these examples, found without reading any test file."""
    splits = build_splits(report.examples, config.data.split, report.clusters)
    if config.data.test_path is None:
        return splits.train, splits.val
    return _train_val_cut(config, splits)


def check_data_fits_method(config: Config, report: CheckReport) -> None:
    """Preference methods train on preference rows, the others on examples; say so before anything runs."""
    preference = METHOD_FACTS[config.method.name].preference
    if preference and report.examples:
        raise DataError(f"{config.data.path}: method {config.method.name} trains on preference rows (prompt, chosen, "
                        "rejected; or prompt, completion, label true/false for kto), and this file holds SFT examples")
    if not preference and report.preferences:
        raise DataError(f"{config.data.path}: holds preference rows; train them with method.name dpo, kto or orpo "
                        f"(method {config.method.name} learns from examples)")


def _write_preference_splits(config: Config, run: RunPaths, report: CheckReport, announce: Announce) -> CheckReport:
    """Preference rows split by prompt (every pair of one prompt in one split)."""
    splits = split_preferences(report.preferences, config.data.split)
    _write_splits(config, run, splits, "preference rows")
    announce(f"{len(report.preferences)} preference rows: train {len(splits.train)}, val {len(splits.val)}, "
             f"test {len(splits.test)}; {len(report.warnings)} warning(s)")
    return report


def _write_splits(config: Config, run: RunPaths, splits: Any, rows_are: str) -> None:
    """Each split's rows (examples or preference rows, anything with to_json) and the manifest; an empty
    split stops the run."""
    for name, rows in splits.by_name().items():
        if not rows:
            raise DataError(f"{config.data.path}: the {name} split is empty; add {rows_are}")
        write_jsonl(run.split_file(name), [row.to_json() for row in rows])
    write_json(run.split_manifest, splits.manifest(config.data.split.seed, config.data.split))


def _with_fixed_test(config: Config, tokenizer: Any, splits: Splits) -> Splits:
    """Every row of data.path in train or val (ratio split.train : split.val); data.test_path is test."""
    assert config.data.test_path is not None
    test_report = check_dataset(config.data.test_path, config.task, tokenizer, config.training.max_seq_len)
    # A fixed test file is often a published benchmark: it is scored as it is, so only rows that
    # cannot be read stop the run (duplicates or conflicting labels there are the benchmark's own).
    errors = [e for e in test_report.errors if e.code not in FIXED_TEST_TOLERATED]
    if errors:
        raise DataError(f"{len(errors)} data error(s) in data.test_path, first: {errors[0].line()}")
    return Splits(*_train_val_cut(config, splits), test_report.examples)


def _train_val_cut(config: Config, splits: Splits) -> tuple[list[Example], list[Example]]:
    """With data.test_path: every row of data.path to train or val, in the ratio split.train : split.val."""
    split = config.data.split
    rows = [*splits.train, *splits.val, *splits.test]
    cut = split.train / (split.train + split.val)
    return ([e for e in rows if split_position(e, split.seed) < cut],
            [e for e in rows if split_position(e, split.seed) >= cut])


def run_pipeline(config: Config, run: RunPaths, announce: Announce, show_progress: bool = True) -> RunSummary:
    """check -> split -> baselines -> train -> evaluate -> decide -> report; returns the summary."""
    if METHOD_FACTS[config.method.name].preference:
        raise ConfigError(f"method {config.method.name} is evaluated on its policy, not against prompting "
                          "baselines: run `tunewright train CONFIG --out RUN_DIR`, then `tunewright eval RUN_DIR`")
    from tunewright.evaluate import evaluate_baselines
    from tunewright.train import train_run

    started = time.perf_counter()
    stages: dict[str, float] = {}
    with recording(stages):
        with stage("data"):
            prepare_run(config, run, announce)
        announce(f"prompting baselines on the test split (base model: {', '.join(config.eval.candidates)})")
        with stage("baselines"):
            evaluate_baselines(config, run, show_progress)
        announce(f"training: {config.method.name} on {config.model.base}")
        with stage("training"):
            train_run(config, run, show_progress)
    return finish_run(config, run, announce, show_progress, stages, started)


def finish_run(config: Config, run: RunPaths, announce: Announce, show_progress: bool,
               stages: dict[str, float], started: float) -> RunSummary:
    """Evaluate the saved adapter against the baselines, decide, write the reports and summary.
    `stages`: the seconds of the stages so far (timing.stage names), which this adds to."""
    from tunewright.evaluate import evaluate_baselines, evaluate_finetuned, score_run
    from tunewright.report import write_reports

    baselines = [*config.eval.candidates, *(endpoint.name for endpoint in config.eval.endpoints)]
    with recording(stages):
        if not all(run.predictions(name).exists() for name in baselines):
            with stage("baselines"):
                evaluate_baselines(config, run, show_progress)
        announce("evaluating the fine-tuned adapter on the test split")
        with stage("evaluation"):
            evaluate_finetuned(config, run, show_progress)
            with stage("scoring"):
                result = score_run(config, run)
        # The report's timing table has every stage but the report itself, which is still being written.
        summary = replace(build_summary(config, run, result.to_json()),
                          timings=Timings(dict(stages), time.perf_counter() - started))
        with stage("report"):
            write_reports(run, summary)
    summary = replace(summary, timings=Timings(dict(stages), time.perf_counter() - started))
    write_json(run.summary, summary.to_json())
    return summary


def rescore_run(config: Config, run: RunPaths) -> RunSummary:
    """Score the predictions on disk again (the human verdicts as they are now), decide, rewrite the
    reports and summary; training facts and timings stay those of the run."""
    from tunewright.evaluate import score_run
    from tunewright.report import write_reports

    if not run.summary.exists():
        raise DataError(f"{run.summary}: no summary yet; run `tunewright eval {run.root}` without --rescore")
    previous = RunSummary.read(run.summary)
    result = score_run(config, run)
    summary = replace(build_summary(config, run, result.to_json()), timings=previous.timings)
    write_reports(run, summary)
    write_json(run.summary, summary.to_json())
    return summary


def build_summary(config: Config, run: RunPaths, evaluation: dict[str, Any]) -> RunSummary:
    """summary.json without its timings, which finish_run adds once the report is written."""
    manifest = read_json(run.split_manifest)
    return RunSummary(
        decision=evaluation["decision"],
        decision_reasons=evaluation["decision_reasons"],
        task=config.task.name,
        base_model=config.model.base,
        method=config.method.name,
        data={name: split["rows"] for name, split in manifest["splits"].items()},
        training=TrainingResult.read(run.training_result),
        evaluation=EvalSummary.from_json({**evaluation, "gate": config.eval.gate.model_dump(),
                                          "bootstrap_resamples": config.eval.bootstrap_resamples}),
        artifacts={
            "adapter": _relative(run.adapter, run.root),
            "report_html": _relative(run.report_html, run.root),
            "report_md": _relative(run.report_md, run.root),
            "metrics": _relative(run.metrics, run.root),
            "loss_curve": _relative(run.loss_plot, run.root),
            "config": _relative(run.config, run.root),
        },
    )


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root))
