"""`train`: check and split the data, then train one run."""

from __future__ import annotations

from pathlib import Path

from tunewright.cli.common import OutOption, SetOption, announce, app, console
from tunewright.config import load_config
from tunewright.runs import new_run_dir


@app.command()
def train(config: Path, out: Path | None = OutOption, overrides: list[str] = SetOption) -> None:
    """Check and split the data, then train; evaluate later with `tunewright eval RUN_DIR`."""
    from tunewright.pipeline import prepare_run
    from tunewright.train import train_run

    loaded = load_config(config, overrides)
    run_paths = new_run_dir(out, loaded.task.name)
    prepare_run(loaded, run_paths, announce)
    result = train_run(loaded, run_paths)
    console.print(f"adapter: {run_paths.adapter}  (steps {result.steps}, best val loss "
                  f"{result.best_val_loss:.4f}{', stopped early' if result.stopped_early else ''})")
