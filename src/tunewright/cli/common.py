"""What every command module shares: the Typer app, consoles, common options and printing."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from tunewright.errors import EXIT_NO_GO
from tunewright.run_summary import RunSummary
from tunewright.runs import RunPaths

app = typer.Typer(help="Turn a general open LLM into a specialist for one narrow task.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
STATE = {"debug": False}

SetOption = typer.Option([], "--set", help="Override a config value: section.key=value (repeatable).")
SUMMARY_METRICS = (("label_accuracy", "label accuracy"), ("macro_f1", "macro-F1"),
                   ("rubric_pass_rate", "rubric pass rate"), ("rouge_l", "ROUGE-L"),
                   ("semantic_similarity", "similarity"))
OutOption = typer.Option(None, "--out", help="Run directory to create (default runs/<task>-<time>).")


@app.callback()
def main_options(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    STATE["debug"] = debug


def examples_dir() -> Path:
    """Bundled examples: inside the installed wheel, or at the repository root in a source checkout."""
    packaged = Path(__file__).parents[1] / "examples"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[3] / "examples"


def print_summary(run_paths: RunPaths, summary: RunSummary) -> None:
    evaluation = summary.evaluation
    table = Table(title=f"{summary.task} on the test split ({evaluation.test_rows} rows)")
    shown = [(key, title) for key, title in SUMMARY_METRICS
             if any(metrics.get(key) is not None for metrics in evaluation.candidates.values())]
    for column in ("candidate", *(title for _, title in shown)):
        table.add_column(column)
    for name, metrics in evaluation.candidates.items():
        table.add_row(name, *(_percent(metrics.get(key)) for key, _ in shown))
    console.print(table)
    gate_metric = evaluation.gate["metric"]
    for item in evaluation.comparisons:
        if item["metric"] == gate_metric:
            low, high = item["ci95"]
            console.print(f"  {gate_metric}: finetuned - {item['baseline']} = {100 * item['difference']:+.1f} points "
                          f"(95% CI {100 * low:+.1f} to {100 * high:+.1f})", markup=False)
    colour = "green" if summary.decision == "go" else "red"
    console.print(f"[bold {colour}]decision: {summary.decision.upper()}[/]")
    for reason in summary.decision_reasons:
        console.print(f"  - {reason}", markup=False)
    training = summary.training
    console.print(f"training: {training.steps} steps, best val loss {_loss(training.best_val_loss)}, "
                  f"{training.train_tokens_per_second:.0f} tokens/s; total "
                  f"{summary.timings.total_seconds:.0f} s")
    console.print(f"report: {run_paths.report_html}")
    if summary.decision != "go":
        raise typer.Exit(EXIT_NO_GO)


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def announce(message: str) -> None:
    err.print(f"[dim]>[/] {message}")
