"""`eval`: score a trained run against prompting baselines; exit 3 on no-go."""

from __future__ import annotations

from pathlib import Path

from tunewright.cli.common import SetOption, announce, app, print_summary
from tunewright.config import load_config
from tunewright.runs import existing_run


@app.command("eval")
def evaluate(run_dir: Path, overrides: list[str] = SetOption) -> None:
    """Evaluate a trained run against prompting baselines; exit 3 on no-go."""
    import time

    from tunewright.pipeline import finish_run

    run_paths = existing_run(run_dir)
    loaded = load_config(run_paths.config, overrides)
    summary = finish_run(loaded, run_paths, announce, True, {}, time.perf_counter())
    print_summary(run_paths, summary)
