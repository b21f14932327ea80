"""`quickstart` and `run`: the whole loop from one config; `sweep`: its settings chosen on validation."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tunewright.cli.common import OutOption, SetOption, announce, app, console, examples_dir, print_summary
from tunewright.config import Config, load_config, metric_title
from tunewright.errors import ConfigError
from tunewright.runs import new_run_dir


@app.command()
def quickstart(out: Path | None = OutOption, overrides: list[str] = SetOption) -> None:
    """Run the whole loop on the bundled fintech-support example and the packaged model."""
    config_path = examples_dir() / "fintech-support" / "tunewright.yaml"
    _run_loop(load_config(config_path, overrides), out)


@app.command()
def run(config: Path, out: Path | None = OutOption, overrides: list[str] = SetOption) -> None:
    """check -> split -> baselines -> train -> evaluate -> go / no-go -> report."""
    _run_loop(load_config(config, overrides), out)


def _run_loop(config: Config, out: Path | None) -> None:
    from tunewright.pipeline import run_pipeline

    run_paths = new_run_dir(out, config.task.name)
    announce(f"run directory: {run_paths.root}")
    summary = run_pipeline(config, run_paths, announce)
    print_summary(run_paths, summary)


@app.command()
def sweep(config: Path,
          budget_minutes: float | None = typer.Option(
              None, "--budget-minutes", help="Wall-clock minutes for training and validating (default sweep."
              "budget_minutes, 30)."),
          out: Path | None = typer.Option(None, "--out", help="Sweep directory to create (default "
                                          "runs/<task>-sweep-<time>)."),
          overrides: list[str] = SetOption) -> None:
    """Choose learning rate, epochs, rank (and label weight) on the validation split by successive halving;
    writes sweep.json and chosen.yaml (for `tunewright run`). Never reads the test split."""
    from tunewright.sweep.table import sweep_summary, trial_table

    if budget_minutes is not None:
        if not budget_minutes > 0:
            raise ConfigError(f"--budget-minutes {budget_minutes:g}: the budget must be above 0 minutes, "
                              "e.g. --budget-minutes 30")
        overrides = [*overrides, f"sweep.budget_minutes={budget_minutes!r}"]
    loaded = load_config(config, overrides)
    from tunewright.sweep.run import run_sweep  # torch and transformers: after the config is known to be good

    paths = new_run_dir(out, f"{loaded.task.name}-sweep")
    announce(f"sweep directory: {paths.root}")
    result = run_sweep(loaded, paths, announce)
    headers, rows = trial_table(result)
    table = Table(title=f"{metric_title(result.metric)} (%) on the validation split after each rung")
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for line in sweep_summary(result):
        console.print(line, markup=False)
    console.print(f"chosen config: {result.chosen_config}\nnext: tunewright run {result.chosen_config}",
                  markup=False)
