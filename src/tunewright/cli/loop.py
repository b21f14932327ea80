"""`quickstart` and `run`: the whole loop from one config."""

from __future__ import annotations

from pathlib import Path

from tunewright.cli.common import OutOption, SetOption, announce, app, examples_dir, print_summary
from tunewright.config import Config, load_config
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
