"""`data ...`: check datasets before training."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tunewright.cli.common import SetOption, app, console
from tunewright.config import load_config
from tunewright.errors import EXIT_PROBLEMS

data_app = typer.Typer(help="Check datasets before training.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("check")
def data_check(
    file: Path,
    config: Path | None = typer.Option(None, help="Config whose task card (labels, regex) to check against."),
    overrides: list[str] = SetOption,
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
) -> None:
    """Find problems in a dataset; exit 0 clean, 1 problems found, 2 unusable input."""
    from tunewright.config import TaskConfig
    from tunewright.data.check import check_dataset
    from tunewright.modeling import load_tokenizer, resolve_base_model

    if config is not None:
        loaded = load_config(config, overrides)
        tokenizer = load_tokenizer(resolve_base_model(loaded.model.base))
        report = check_dataset(file, loaded.task, tokenizer, loaded.training.max_seq_len)
    else:
        report = check_dataset(file, TaskConfig(name="unnamed", system_prompt=""))
    if as_json:
        console.print_json(json.dumps(report.to_json()))
    else:
        for finding in report.findings:
            console.print(finding.line(), markup=False, highlight=False)
        console.print(f"{len(report.examples)} examples, {len(report.errors)} error(s), "
                      f"{len(report.warnings)} warning(s)")
    if not report.examples:
        raise typer.Exit(2)
    if report.findings:
        raise typer.Exit(EXIT_PROBLEMS)
