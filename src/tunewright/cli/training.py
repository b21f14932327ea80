"""`train`: check and split the data, then train one run (resumable, optionally in several processes);
`plan`: will a method fit, before anything is downloaded or trained."""

from __future__ import annotations

from pathlib import Path

import typer

from tunewright.cli.common import OutOption, SetOption, announce, app, console
from tunewright.config import Config, dump_config, load_config
from tunewright.errors import EXIT_PROBLEMS, TunewrightError
from tunewright.methods.facts import METHOD_FACTS, method_names
from tunewright.run_summary import TrainingResult
from tunewright.runs import RunPaths, new_run_dir


@app.command()
def train(
    config: Path,
    out: Path | None = OutOption,
    overrides: list[str] = SetOption,
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Train in N processes with torchrun (one per GPU, or N "
                              "CPU processes over gloo)."),
    prepare_only: bool = typer.Option(False, "--prepare-only", help="Check and split the data into --out, then "
                                      "stop; start torchrun yourself with --resume (e.g. on several nodes)."),
) -> None:
    """Check and split the data, then train; evaluate later with `tunewright eval RUN_DIR`."""
    from tunewright.pipeline import prepare_run
    from tunewright.report import write_loss_plot
    from tunewright.report.plots import write_preference_plot
    from tunewright.train import artifact_dir, distributed, train_run

    loaded = load_config(config, overrides)
    distributed.check_strategy(loaded)
    if resume:
        run_paths = _existing_run(out, loaded)
    else:
        run_paths = new_run_dir(out, loaded.task.name)
        prepare_run(loaded, run_paths, announce)
    if prepare_only:
        console.print(f"prepared: {run_paths.root}")
        return
    if nproc > 1:
        announce(f"training in {nproc} processes (torchrun)")
        code = distributed.launch(config, run_paths.root, overrides, nproc)
        raise typer.Exit(code)  # rank 0 of the launched processes has printed the result
    train_run(loaded, run_paths, show_progress=distributed.rank() == 0, resume=resume)
    if distributed.rank() == 0:
        write_loss_plot(run_paths)
        if METHOD_FACTS[loaded.method.name].preference:
            write_preference_plot(run_paths)
        result = TrainingResult.read(run_paths.training_result)
        best = "-" if result.best_val_loss is None else f"{result.best_val_loss:.4f}"
        console.print(f"{result.method}: {artifact_dir(loaded, run_paths)}  (steps {result.steps}, best val "
                      f"loss {best}{', stopped early' if result.stopped_early else ''})")


def _existing_run(out: Path | None, config: Config) -> RunPaths:
    if out is None:
        raise TunewrightError("--resume needs --out RUN_DIR, the run to continue")
    run = RunPaths(out)
    if not run.config.is_file() or not run.split_file("train").is_file():
        raise TunewrightError(f"{out}: no prepared run to resume (config.yaml and data/ missing); "
                              "start it without --resume")
    if run.config.read_text(encoding="utf-8") != dump_config(config):
        raise TunewrightError(f"{run.config}: the config differs from the one this run started with; resume with "
                              "the same config and --set overrides")
    return run


@app.command()
def plan(
    model: str = typer.Option("smollm2-135m-instruct", "--model", help="A size (135m, 7b, 70b, ...), a model "
                              "directory, or the packaged model's name."),
    method: str = typer.Option("lora", "--method", help=f"{method_names()}."),
    seq_len: int = typer.Option(512, "--seq-len", min=1, help="Tokens per example."),
    batch: int = typer.Option(8, "--batch", min=1, help="Examples per step (per GPU)."),
    gpu_memory: float | None = typer.Option(None, "--gpu-memory", help="GPU memory in GB, to check the fit."),
    precision: str = typer.Option("bf16", "--precision", help="bf16 or fp32 compute."),
) -> None:
    """Memory (weights, gradients, optimizer, activations), a rough step time, and whether it fits."""
    from tunewright.modeling import PACKAGED_MODEL, resolve_base_model
    from tunewright.plan import make_plan

    target = str(resolve_base_model(model)) if model == PACKAGED_MODEL else model
    result = make_plan(target, method, seq_len, batch, gpu_memory, precision)
    memory = result.memory
    console.print(f"{result.shape.name}: {result.shape.parameters / 1e6:,.0f}M parameters, {method}, "
                  f"batch {batch} x {seq_len} tokens, {precision}")
    for part in ("weights", "gradients", "optimizer", "activations"):
        console.print(f"  {part:<12} {getattr(memory, part) / 1e9:8.2f} GB")
    console.print(f"  {'total':<12} {memory.total / 1e9:8.2f} GB")
    console.print(f"  ~{result.seconds_per_step:.2g} s per step at 100 TFLOP/s and 40% utilisation")
    console.print(result.suggestion)
    if result.fits is False:
        raise typer.Exit(EXIT_PROBLEMS)
