"""`tunewright sweep` on the tiny model: the chosen trial is the validation argmax, survivors resume from
their checkpoints, chosen.yaml runs as it is, the test split is never opened, bad input is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tunewright.config import load_config
from tunewright.errors import EXIT_NO_GO, EXIT_USAGE
from tunewright.sweep.grid import Trial, rung_shares
from tunewright.sweep.halving import RungOutcome, successive_halving
from tunewright.sweep.table import SweepResult

EXAMPLE_DATA = Path(__file__).resolve().parents[1] / "examples" / "fintech-support" / "data.jsonl"

# The real entry point, with every path Python opens recorded (audit hook) and written out at exit.
AUDITED_CLI = """
import atexit, json, os, sys
opened = []
def record(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        opened.append(os.path.realpath(os.fsdecode(args[0])))
sys.addaudithook(record)
log = os.environ["OPENED_LOG"]
atexit.register(lambda: open(log, "w").write(json.dumps(opened)))
from tunewright.cli import main
sys.argv = ["tunewright", *sys.argv[1:]]
main()
"""


def tunewright(*args: str, opened_log: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENED_LOG": str(opened_log)} if opened_log else None
    command = ["-c", AUDITED_CLI] if opened_log else ["-m", "tunewright"]
    return subprocess.run([sys.executable, *command, *args], capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory,
          make_project: Callable[[Path, int], Path]) -> tuple[Path, Path, list[str]]:
    """A sweep of 4 trials (2 learning rates x 2 ranks, eta 2: rungs of 1/4, 1/2 and all steps) on a project
    whose test split is a fixed file; returns (project config, sweep dir, every path the sweep opened)."""
    root = tmp_path_factory.mktemp("sweep-project")
    config_path = make_project(root, 120)
    (root / "test.jsonl").write_text("".join(f"{line}\n" for line in EXAMPLE_DATA.read_text().splitlines()[120:140]))
    raw = yaml.safe_load(config_path.read_text())
    raw["data"]["test_path"] = "test.jsonl"
    raw["eval"].update(candidates=["zero_shot"], semantic_similarity=False, bootstrap_resamples=50,
                       label_ensemble=False, probes={"forgetting": False, "fairness": False})
    raw["sweep"] = {"eta": 2, "grid": {"learning_rate": [1e-4, 3e-2], "epochs": [0.3], "r": [4, 8],
                                       "label_weight": [2]}}
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    out, log = root / "sweep", root / "opened.json"
    done = tunewright("sweep", str(config_path), "--out", str(out), "--budget-minutes", "20", opened_log=log)
    assert done.returncode == 0, done.stderr
    assert "t01" in done.stdout and "chosen config:" in done.stdout and "next: tunewright run" in done.stdout
    return config_path, out, json.loads(log.read_text())


def test_sweep_never_opens_the_test_split(swept: tuple[Path, Path, list[str]]) -> None:
    config_path, out, opened = swept
    config = load_config(config_path)
    assert config.data.test_path is not None
    assert os.path.realpath(config.data.path) in opened  # the hook saw the data the sweep did read
    assert os.path.realpath(out / "data" / "val.jsonl") in opened
    assert os.path.realpath(config.data.test_path) not in opened
    assert not any(Path(path).name == "test.jsonl" for path in opened)  # no run's test split either
    assert not list(out.rglob("test.jsonl"))


def test_sweep_chooses_the_validation_argmax_and_survivors_resume(swept: tuple[Path, Path, list[str]]) -> None:
    _, out, _ = swept
    result = SweepResult.read(out / "sweep.json")
    assert result.metric == "label_accuracy" and result.shares == [0.25, 0.5, 1.0]
    assert [trial.settings for trial in result.trials] == [
        {"learning_rate": lr, "epochs": 0.3, "r": r, "label_weight": 2.0} for lr in (1e-4, 3e-2) for r in (4.0, 8.0)]
    assert all(trial.rungs and trial.rungs[0].rung == 0 for trial in result.trials)  # every trial started
    finished = [trial for trial in result.trials if trial.status == "finished"]
    best = max(trial.metric or 0.0 for trial in finished)
    assert result.chosen == next(trial.name for trial in finished if trial.metric == best)  # first of equals
    for trial in result.trials:
        steps = [rung.steps for rung in trial.rungs]
        assert steps == sorted(steps) and len(set(steps)) == len(steps)  # each rung trained further
        training = json.loads((out / "trials" / trial.name / "training.json").read_text()) \
            if (out / "trials" / trial.name / "training.json").exists() else None
        if training is not None and len(trial.rungs) > 1:
            assert training["resumed_from_step"] == steps[-2]  # continued from its checkpoint
        assert not (out / "trials" / trial.name / "checkpoints").exists()  # freed once it trains no more
    chosen = result.chosen_trial()
    assert chosen.status == "finished" and chosen.steps == chosen.planned_steps


def test_chosen_config_runs_as_it_is_and_its_report_shows_the_sweep(swept: tuple[Path, Path, list[str]],
                                                                    tmp_path: Path, tolerance: float) -> None:
    _, out, _ = swept
    result = SweepResult.read(out / "sweep.json")
    chosen = load_config(out / "chosen.yaml")
    settings = result.chosen_trial().settings
    assert (chosen.training.learning_rate, chosen.training.epochs, chosen.method.r, chosen.training.label_weight) \
        == (settings["learning_rate"], settings["epochs"], settings["r"], settings["label_weight"])
    assert chosen.training.max_steps is None and chosen.method.alpha == 2 * chosen.method.r  # alpha / r kept
    run = tmp_path / "run"
    done = tunewright("run", str(out / "chosen.yaml"), "--out", str(run))
    assert done.returncode in (0, EXIT_NO_GO), done.stderr
    assert json.loads((run / "training.json").read_text())["planned_steps"] == result.chosen_trial().planned_steps
    # trained rung by rung from checkpoints, the chosen trial took the steps the run takes in one go
    trial_losses, run_losses = (
        [row["train_loss"] for row in map(json.loads, (root / "metrics.jsonl").read_text().splitlines())
         if row["train_loss"] is not None] for root in (out / "trials" / result.chosen, run))
    assert len(trial_losses) == len(run_losses) == result.chosen_trial().steps
    assert trial_losses == pytest.approx(run_losses, abs=tolerance)
    assert json.loads((run / "sweep.json").read_text()) == result.to_json()
    report = (run / "report.md").read_text()
    assert "Settings chosen by the sweep" in report and f"{result.chosen} (chosen)" in report


@pytest.mark.parametrize(("args", "expected"), [
    (["--budget-minutes", "0"], "--budget-minutes 0: the budget must be above 0"),
    (["--set", "sweep.grid.dropout=[0.1]"], "unknown sweep axis 'dropout'"),
    (["--set", "sweep.grid.r=[]"], "sweep.grid.r"),
])
def test_bad_sweep_input_is_one_line_and_exit_2(tiny_project: Path, tmp_path: Path, args: list[str],
                                                 expected: str) -> None:
    done = tunewright("sweep", str(tiny_project), "--out", str(tmp_path / "s"), *args)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_halving_keeps_the_best_and_finishes_the_leader_when_time_runs_out() -> None:
    """The schedule on a known objective: trial quality q, its metric q * share trained (a fake clock
    advancing 1 s per training)."""
    quality = [0.2, 0.9, 0.5, 0.7, 0.1, 0.3, 0.8, 0.4, 0.6]
    trials = [Trial(f"t{i:02d}", {"learning_rate": q}) for i, q in enumerate(quality, start=1)]
    now = [0.0]
    calls: list[tuple[str, float, bool]] = []

    def train(trial: Trial, share: float, resume: bool) -> RungOutcome:
        calls.append((trial.name, share, resume))
        now[0] += 1
        return RungOutcome(round(9 * share), 9, share == 1.0, trial.settings["learning_rate"] * share, 1.0)

    retired: list[str] = []
    result = successive_halving(trials, 3, 100, train, lambda trial, finished: retired.append(trial.name),
                                lambda: now[0])
    assert result.shares == rung_shares(9, 3) == [1 / 9, 1 / 3, 1.0]
    assert [name for name, share, _ in calls if share == 1 / 3] == ["t02", "t07", "t04"]  # best 3 of 9
    assert [name for name, share, _ in calls if share == 1.0] == ["t02"] and result.chosen == "t02"
    assert all(resume for _, share, resume in calls if share > 1 / 9)
    assert sorted(retired) == sorted(t.name for t in trials)

    now[0], calls[:] = 0.0, []  # a budget of 4 trainings: rung 1 stops after 4 trials; the leader finishes
    late = successive_halving(trials, 3, 4, train, lambda trial, finished: None, lambda: now[0])
    assert late.over_budget and late.chosen == "t02" and calls[-1] == ("t02", 1.0, True)
    assert [t.status for t in late.trials][:5] == ["unfinished", "finished", "unfinished", "unfinished", "not run"]


def test_the_table_holds_the_validation_metric_and_free_form_metrics_are_generated(
        swept: tuple[Path, Path, list[str]]) -> None:
    from tunewright.evaluate.validation import validation_metric
    from tunewright.runs import RunPaths

    _, out, _ = swept
    result = SweepResult.read(out / "sweep.json")
    run = RunPaths(out / "trials" / result.chosen)
    config = load_config(run.config)
    assert validation_metric(config, run, "label_accuracy") == result.chosen_trial().metric  # scored again
    assert 0.0 <= validation_metric(config, run, "rouge_l") <= 1.0  # the answers generated, as in evaluation
