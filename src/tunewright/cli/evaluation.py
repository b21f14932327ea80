"""`eval`: score a trained run against prompting baselines (exit 3 on no-go); `report`: rewrite a run's
reports, optionally beside another round's results."""

from __future__ import annotations

from pathlib import Path

import typer

from tunewright.cli.common import SetOption, announce, app, console, print_summary
from tunewright.config import Config, load_config
from tunewright.errors import EXIT_NO_GO, TunewrightError
from tunewright.methods.facts import METHOD_FACTS
from tunewright.run_summary import RunSummary
from tunewright.runs import RunPaths, existing_run


@app.command("eval")
def evaluate(
    run_dir: Path,
    overrides: list[str] = SetOption,
    rescore: bool = typer.Option(False, "--rescore", help="Score the predictions already on disk again (new "
                                 "human verdicts, a changed gate) without generating; rewrites the reports."),
) -> None:
    """Evaluate a trained run against prompting baselines; exit 3 on no-go."""
    import time

    from tunewright.pipeline import finish_run, rescore_run

    run_paths = existing_run(run_dir)
    loaded = load_config(run_paths.config, overrides)
    if METHOD_FACTS[loaded.method.name].preference:
        _evaluate_preference_run(loaded, run_paths)
        return
    if rescore:
        summary = rescore_run(loaded, run_paths)
    else:
        summary = finish_run(loaded, run_paths, announce, True, {}, time.perf_counter())
    print_summary(run_paths, summary)


def _evaluate_preference_run(config: Config, run: RunPaths) -> None:
    """The policy probe, preference accuracy and task accuracy of a dpo / kto / orpo run; exit 3 on no-go."""
    from tunewright.evaluate.preference_run import evaluate_preference_run

    announce("evaluating the policy probe: tuned adapter, SFT adapter, base model")
    scores = evaluate_preference_run(config, run)
    console.print(f"{scores['decision'].upper()}", markup=False, highlight=False)
    for reason in scores["decision_reasons"]:
        console.print(f"  {reason}", markup=False, highlight=False)
    console.print(f"report: {run.eval_dir / 'policy.md'}", markup=False, highlight=False)
    if scores["decision"] != "go":
        raise typer.Exit(EXIT_NO_GO)


@app.command()
def report(
    run_dir: Path,
    compare: Path | None = typer.Option(None, "--compare", help="Another run to compare this one with."),
) -> None:
    """Rewrite report.md / report.html from the run's summary.json (with --compare: beside another round)."""
    from tunewright.report import write_reports

    run_paths = existing_run(run_dir)
    if not run_paths.summary.exists():
        raise TunewrightError(f"{run_paths.summary}: no summary yet; run `tunewright eval {run_dir}` first")
    other = None
    if compare is not None:
        other_paths = existing_run(compare)
        if not other_paths.summary.exists():
            raise TunewrightError(f"{other_paths.summary}: the run to compare with has no summary.json")
        other = (compare.name or str(compare), RunSummary.read(other_paths.summary))
    write_reports(run_paths, RunSummary.read(run_paths.summary), other)
    console.print(f"report: {run_paths.report_html}")
    console.print(f"report: {run_paths.report_md}")
