"""The `tunewright` command: parse, load config, call one stage function, print, exit.

Exit codes: 0 ok / go, 1 problems found (data check), 2 bad input or usage, 3 no-go, 130 interrupted.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import click
import typer
from rich.console import Console
from rich.table import Table

from tunewright.config import Config, load_config
from tunewright.errors import EXIT_INTERRUPTED, EXIT_NO_GO, EXIT_PROBLEMS, TunewrightError
from tunewright.runs import RunPaths, existing_run, new_run_dir

app = typer.Typer(help="Turn a general open LLM into a specialist for one narrow task.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Check datasets before training.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
STATE = {"debug": False}

SetOption = typer.Option([], "--set", help="Override a config value: section.key=value (repeatable).")
OutOption = typer.Option(None, "--out", help="Run directory to create (default runs/<task>-<time>).")


@app.callback()
def main_options(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    STATE["debug"] = debug


@app.command()
def quickstart(out: Path | None = OutOption, overrides: list[str] = SetOption) -> None:
    """Run the whole loop on the bundled fintech-support example and the packaged model."""
    config_path = examples_dir() / "fintech-support" / "tunewright.yaml"
    _run_loop(load_config(config_path, overrides), out)


@app.command()
def run(config: Path, out: Path | None = OutOption, overrides: list[str] = SetOption) -> None:
    """check -> split -> baselines -> train -> evaluate -> go / no-go -> report."""
    _run_loop(load_config(config, overrides), out)


@app.command()
def train(config: Path, out: Path | None = OutOption, overrides: list[str] = SetOption) -> None:
    """Check and split the data, then train; evaluate later with `tunewright eval RUN_DIR`."""
    from tunewright.pipeline import prepare_run
    from tunewright.train import train_run

    loaded = load_config(config, overrides)
    run_paths = new_run_dir(out, loaded.task.name)
    prepare_run(loaded, run_paths, _announce)
    result = train_run(loaded, run_paths)
    console.print(f"adapter: {run_paths.adapter}  (steps {result.steps}, best val loss "
                  f"{result.best_val_loss:.4f}{', stopped early' if result.stopped_early else ''})")


@app.command("eval")
def evaluate(run_dir: Path, overrides: list[str] = SetOption) -> None:
    """Evaluate a trained run against prompting baselines; exit 3 on no-go."""
    import time

    from tunewright.pipeline import finish_run

    run_paths = existing_run(run_dir)
    loaded = load_config(run_paths.config, overrides)
    summary = finish_run(loaded, run_paths, _announce, True, {}, time.perf_counter())
    _print_summary(run_paths, summary)


@app.command()
def merge(run_dir: Path, out: Path | None = typer.Option(None, "-o", "--out", help="Merged model directory.")) -> None:
    """Merge a run's LoRA adapter into its base model (safetensors + tokenizer + chat template)."""
    from tunewright.merge import merge_adapter

    run_paths = existing_run(run_dir)
    result = merge_adapter(load_config(run_paths.config), run_paths, out or run_paths.root / "merged")
    console.print(f"merged model: {result.path}  (max |logit diff| vs adapter: {result.max_abs_diff:.2e})")


@app.command()
def serve(
    base: str = typer.Option("smollm2-135m-instruct", help="Base model name or local model directory."),
    adapter: Path | None = typer.Option(None, help="A run directory or adapter directory to serve."),
    name: str | None = typer.Option(None, help="Model name clients use for the adapter (default: task)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    api_key: str | None = typer.Option(None, envvar="TUNEWRIGHT_API_KEY", help="Bearer key clients send."),
    max_tokens: int = typer.Option(512, help="Largest max_tokens a request may ask for."),
) -> None:
    """Serve the base model and an adapter through an OpenAI-compatible API."""
    import uvicorn

    from tunewright.modeling import resolve_base_model
    from tunewright.serve.app import create_app
    from tunewright.serve.engine import Engine, read_adapter

    adapters = [read_adapter(name or _adapter_default_name(adapter), adapter)] if adapter else []
    engine = Engine(base, resolve_base_model(base), adapters)
    if api_key is None:
        api_key = secrets.token_urlsafe(24)
        err.print(f"no --api-key or TUNEWRIGHT_API_KEY given; this run's key is: {api_key}")
    err.print(f"serving {', '.join(engine.model_names)} on http://{host}:{port}/v1")
    uvicorn.run(create_app(engine, {api_key}, max_tokens), host=host, port=port, log_level="warning")


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


def examples_dir() -> Path:
    """Bundled examples: inside the installed wheel, or at the repository root in a source checkout."""
    packaged = Path(__file__).parent / "examples"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "examples"


def _run_loop(config: Config, out: Path | None) -> None:
    from tunewright.pipeline import run_pipeline

    run_paths = new_run_dir(out, config.task.name)
    _announce(f"run directory: {run_paths.root}")
    summary = run_pipeline(config, run_paths, _announce)
    _print_summary(run_paths, summary)


def _print_summary(run_paths: RunPaths, summary: dict[str, Any]) -> None:
    table = Table(title=f"{summary['task']} on the test split ({summary['eval']['test_rows']} rows)")
    for column in ("candidate", "label accuracy", "macro-F1", "rubric pass rate"):
        table.add_column(column)
    for name, metrics in summary["eval"]["candidates"].items():
        table.add_row(name, *(_percent(metrics[key]) for key in ("label_accuracy", "macro_f1", "rubric_pass_rate")))
    console.print(table)
    colour = "green" if summary["decision"] == "go" else "red"
    console.print(f"[bold {colour}]decision: {summary['decision'].upper()}[/]")
    for reason in summary["decision_reasons"]:
        console.print(f"  - {reason}", markup=False)
    training = summary["training"]
    console.print(f"training: {training['steps']} steps, best val loss {training['best_val_loss']:.4f}, "
                  f"{training['train_tokens_per_second']:.0f} tokens/s; total "
                  f"{summary['timings']['total_seconds']:.0f} s")
    console.print(f"report: {run_paths.report_html}")
    if summary["decision"] != "go":
        raise typer.Exit(EXIT_NO_GO)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _announce(message: str) -> None:
    err.print(f"[dim]>[/] {message}")


def _adapter_default_name(path: Path) -> str:
    config_file = RunPaths(path).config
    return load_config(config_file).task.name if config_file.is_file() else path.resolve().name


def main() -> None:
    """Entry point: user errors become one line and an exit code; --debug shows tracebacks."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        code = app(standalone_mode=False)
    except click.ClickException as exc:  # usage errors: bad option, missing argument
        exc.show()
        sys.exit(exc.exit_code)
    except TunewrightError as exc:
        if STATE["debug"]:
            raise
        err.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)
