"""`data check|clean|split|stats`: find problems in a dataset, fix the mechanical ones, split it, describe it.

`data check` exits 0 when it finds nothing, 1 when it finds errors or warnings, 2 when the input is
unusable (no readable example, bad config or usage)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from tunewright.cli.common import SetOption, app, console
from tunewright.config import Config, SplitConfig, TaskConfig, load_config
from tunewright.errors import EXIT_PROBLEMS, EXIT_USAGE, DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tunewright.data.check import CheckReport

data_app = typer.Typer(help="Check, clean, split and describe datasets before training.", no_args_is_help=True)
app.add_typer(data_app, name="data")
ConfigOption = typer.Option(None, "--config", help="Config whose task card, model and method to check against.")


@data_app.command("check")
def data_check(
    file: Path,
    config: Path | None = ConfigOption,
    overrides: list[str] = SetOption,
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON document."),
    split_dir: Path | None = typer.Option(None, "--split-dir", help="Also check a split directory (train/val/"
                                          "test.jsonl, as `data split` writes) for val/test rows leaking from train."),
    per_code: int = typer.Option(10, "--max-per-code", help="Findings listed per code (0: all)."),
) -> None:
    """Find problems in a dataset (or, given a config file, in its data.path against its task card); exit 0
    clean, 1 errors or warnings found, 2 unusable input."""
    from tunewright.data.check import check_dataset

    if file.suffix.lower() in (".yaml", ".yml") and config is None:
        config = file  # `data check tunewright.yaml`: the config's own dataset, checked against its card
    loaded = load_config(config, overrides) if config is not None else None
    if loaded is not None and file == config:
        file = loaded.data.path
    task, tokenizer = _task_and_tokenizer(loaded)
    report = check_dataset(file, task, tokenizer, loaded.training.max_seq_len if loaded else None,
                           method=loaded.method.name if loaded else "lora", split_dir=split_dir)
    if as_json:
        console.print_json(json.dumps(report.to_json()))
    else:
        _print_report(report, per_code, checked_lengths=tokenizer is not None)
    if not report.examples and not report.preferences:
        raise typer.Exit(EXIT_USAGE)
    if report.findings:
        raise typer.Exit(EXIT_PROBLEMS)


@data_app.command("clean")
def data_clean(
    file: Path,
    out: Path = typer.Option(..., "-o", "--out", help="Where to write the cleaned JSONL (never the input)."),
    config: Path | None = ConfigOption,
    overrides: list[str] = SetOption,
    redact_pii: bool = typer.Option(False, "--redact-pii", help="Replace personal data with <EMAIL>, <CARD>, ..."),
    map_labels: bool = typer.Option(False, "--map-labels", help="Rewrite label variants to the task card's "
                                    "spelling (needs --config)."),
) -> None:
    """Normalise unicode and whitespace, drop exact duplicates, optionally map labels and redact personal
    data; writes OUT and OUT.changes.jsonl."""
    from tunewright.data.clean import clean_dataset

    loaded = load_config(config, overrides) if config is not None else None
    if map_labels and (loaded is None or not loaded.task.labels):
        raise DataError("--map-labels needs --config with task.labels and task.label_regex")
    result = clean_dataset(file, out, loaded.task if loaded else _no_task(), redact_pii, map_labels)
    counts = ", ".join(f"{action} {count}" for action, count in sorted(result.counts().items())) or "no changes"
    console.print(f"{result.rows_in} rows in, {result.rows_out} out ({counts}); wrote {out} and "
                  f"{out.name}.changes.jsonl", markup=False, highlight=False)


@data_app.command("split")
def data_split(
    file: Path,
    out: Path = typer.Option(..., "--out", help="Directory for train.jsonl, val.jsonl, test.jsonl, manifest.json."),
    config: Path | None = ConfigOption,
    overrides: list[str] = SetOption,
) -> None:
    """Deterministic, label-stratified, group- and near-duplicate-aware split (default 80/10/10)."""
    from tunewright.data.formats import read_examples
    from tunewright.data.split import build_splits

    loaded = load_config(config, overrides) if config is not None else None
    task, fractions = (loaded.task, loaded.data.split) if loaded else (_no_task(), SplitConfig())
    if _split_preference_file(file, out, fractions):
        return
    examples, findings = read_examples(file, task.label_regex)
    if not examples:
        raise DataError(f"{file}: no readable examples; run `tunewright data check {file}`")
    splits = build_splits(examples, fractions)
    _write_split_dir(out, splits, fractions)
    table = Table(title=f"{file.name}: {len(examples)} rows in {splits.units} units")
    labels = sorted({e.label or "(none)" for e in examples})
    for column in ("split", "rows", *labels):
        table.add_column(column)
    for name, rows in splits.by_name().items():
        per_label = Counter(e.label or "(none)" for e in rows)
        table.add_row(name, str(len(rows)), *(str(per_label[label]) for label in labels))
    console.print(table)
    if findings:
        console.print(f"{len({f.source for f in findings})} unreadable row(s) left out; see `data check`")
    console.print(f"wrote {out}", markup=False, highlight=False)


def _split_preference_file(file: Path, out: Path, fractions: SplitConfig) -> bool:
    """Split a file of preference rows (every row of one prompt in one split); False for other files."""
    from tunewright.data.preferences import is_preference_row, rows_to_preferences
    from tunewright.data.readers import read_rows
    from tunewright.data.split import split_preferences

    rows, _ = read_rows(file)
    if not rows or not is_preference_row(rows[0].value):
        return False
    preferences, findings = rows_to_preferences(rows)
    if not preferences:
        raise DataError(f"{file}: no readable preference rows; run `tunewright data check {file}`")
    splits = split_preferences(preferences, fractions)
    _write_split_dir(out, splits, fractions)
    counts = ", ".join(f"{name} {len(part)}" for name, part in splits.by_name().items())
    console.print(f"{file.name}: {len(preferences)} preference rows: {counts}; wrote {out}", markup=False,
                  highlight=False)
    if findings:
        console.print(f"{len({f.source for f in findings})} unreadable row(s) left out; see `data check`")
    return True


@data_app.command("stats")
def data_stats(
    file: Path,
    config: Path | None = ConfigOption,
    overrides: list[str] = SetOption,
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
) -> None:
    """Rows, labels, output-field coverage, token lengths after the chat template, duplicates and personal data."""
    from tunewright.data.stats import dataset_stats

    loaded = load_config(config, overrides) if config is not None else None
    task, tokenizer = _task_and_tokenizer(loaded, default_model=True)
    stats = dataset_stats(file, task, tokenizer)
    if as_json:
        console.print_json(json.dumps(stats.to_json()))
        return
    table = Table(title=f"{file.name}", show_header=False)
    rows: list[tuple[str, Any]] = [("rows", stats.rows), ("unreadable rows", stats.unreadable),
                                   ("exact duplicates", stats.exact_duplicates),
                                   ("near-duplicate inputs", stats.near_duplicates),
                                   ("personal data", ", ".join(f"{k} {v}" for k, v in stats.pii.items()) or "none")]
    rows += [(f"label {label}", f"{count} ({count / max(stats.rows, 1):.1%})")
             for label, count in sorted(stats.labels.items(), key=lambda item: -item[1])]
    rows += [(f"field {path}", f"{count} ({count / max(stats.rows, 1):.1%})") for path, count in stats.fields.items()]
    rows += [(f"tokens {name}", value) for name, value in stats.token_percentiles.items()]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    if stats.histogram:
        console.print("tokens per row after the chat template:")
        for line in stats.histogram_lines():
            console.print(line, markup=False, highlight=False)


def _print_report(report: CheckReport, per_code: int, checked_lengths: bool) -> None:
    table = Table(title=f"data check: {report.path}")
    for column in ("severity", "code", "count"):
        table.add_column(column)
    by_code: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for finding in report.findings:
        by_code[(finding.severity, finding.code)].append(finding)
    ordered = sorted(by_code.items(), key=lambda item: (item[0][0] != "error", item[0][1]))
    for (severity, code), found in ordered:
        table.add_row(severity, code, str(len(found)))
    if ordered:
        console.print(table)
    for (_, code), found in ordered:
        shown = found if per_code <= 0 else found[:per_code]
        for finding in shown:
            console.print(finding.line(), markup=False, highlight=False)
        if len(found) > len(shown):
            console.print(f"... and {len(found) - len(shown)} more {code} (--max-per-code 0 lists all)",
                          markup=False, highlight=False)
    labels = Counter(e.label for e in report.examples if e.label is not None)
    largest = dict(labels.most_common(8))
    more = f" and {len(labels) - len(largest)} more" if len(labels) > len(largest) else ""
    rows = f"{len(report.preferences)} preference rows" if report.preferences else f"{len(report.examples)} examples"
    console.print(f"{rows}, {len(report.errors)} error(s), {len(report.warnings)} "
                  f"warning(s)" + (f"; {len(labels)} labels: {largest}{more}" if labels else ""),
                  markup=False, highlight=False)
    if not checked_lengths:
        console.print("labels and token lengths were not checked (no task card or model): give --config",
                      markup=False, highlight=False)


def _task_and_tokenizer(loaded: Config | None, default_model: bool = False
                        ) -> tuple[TaskConfig, PreTrainedTokenizerBase | None]:
    from tunewright.modeling import PACKAGED_MODEL, load_tokenizer, resolve_base_model

    if loaded is not None:
        return loaded.task, load_tokenizer(resolve_base_model(loaded.model.base))
    return _no_task(), load_tokenizer(resolve_base_model(PACKAGED_MODEL)) if default_model else None


def _no_task() -> TaskConfig:
    return TaskConfig(name="unnamed", system_prompt="")


def _write_split_dir(out: Path, splits: Any, fractions: SplitConfig) -> None:
    """train/val/test.jsonl and manifest.json in `out`, all or nothing."""
    from tunewright.runs import atomic_dir, write_json, write_jsonl

    with atomic_dir(out) as target:
        for name, rows in splits.by_name().items():
            write_jsonl(target / f"{name}.jsonl", [row.to_json() for row in rows])
        write_json(target / "manifest.json", splits.manifest(fractions.seed, fractions))
