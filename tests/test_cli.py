"""`tunewright` through its real entry point, end to end on the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunewright.errors import EXIT_NO_GO


def tunewright(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tunewright", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


@pytest.mark.lowest
def test_run_goes_through_the_whole_loop(tiny_project: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = tunewright("run", str(tiny_project), "--out", str(out), "--set", "training.max_steps=4")
    summary = json.loads((out / "summary.json").read_text())
    assert done.returncode == (0 if summary["decision"] == "go" else EXIT_NO_GO), done.stderr
    assert summary["decision"] in {"go", "no-go"} and summary["decision_reasons"]
    assert summary["data"]["train"] + summary["data"]["val"] + summary["data"]["test"] == 120
    assert summary["training"]["steps"] == 4
    for candidate in ("finetuned", "zero_shot", "few_shot", "embedding_knn", "embedding_classifier"):
        metrics = summary["eval"]["candidates"][candidate]
        for key in ("label_accuracy", "macro_f1", "rubric_pass_rate"):
            assert 0.0 <= metrics[key] <= 1.0
    for artifact in ("adapter", "report_html", "report_md"):
        assert (out / summary["artifacts"][artifact]).exists()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "data" / "manifest.json").is_file() and (out / "metrics.jsonl").is_file()
    assert summary["decision"].upper() in done.stdout and "report.html" in done.stdout
    timings = summary["timings"]
    assert timings["total_seconds"] > 0
    stages = timings["stages"]  # every stage with its parts, each part within its stage
    for name in ("data", "baselines", "baselines/zero_shot", "training", "training/steps",
                 "training/steps/validation", "training/precision_probe", "evaluation",
                 "evaluation/test_answers", "report"):
        assert name in stages, name
    assert stages["baselines/zero_shot"] + stages["baselines/few_shot"] <= stages["baselines"]
    assert sum(stages[name] for name in ("data", "baselines", "training", "evaluation", "report")) \
        <= timings["total_seconds"]
    assert "Where the time went" in (out / "report.md").read_text()

    again = tunewright("eval", str(out))
    assert again.returncode == done.returncode, again.stderr
    assert json.loads((out / "summary.json").read_text())["eval"] == summary["eval"]  # greedy: same answers
    merged = tunewright("merge", str(out))
    assert merged.returncode == 0, merged.stderr
    assert (out / "merged" / "model.safetensors").is_file()


def test_bad_config_is_one_line_and_exit_2(tiny_project: Path, tmp_path: Path) -> None:
    done = tunewright("run", str(tiny_project), "--out", str(tmp_path / "r"), "--set", "training.epochz=1")
    assert done.returncode == 2
    assert "training.epochz" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_data_errors_stop_the_run_before_training(tiny_project: Path, tmp_path: Path) -> None:
    data = tiny_project.parent / "data.jsonl"
    lines = data.read_text().splitlines()
    lines[3] = lines[3].replace("[Intent: ", "[Intent: fraud ")  # label outside the set
    data.write_text("\n".join(lines) + "\n")
    done = tunewright("run", str(tiny_project), "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and "data.jsonl:4" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "r" / "adapter").exists()


@pytest.mark.parametrize(("content", "code"), [("{}\n", 2), ("", 2)])
def test_data_check_exit_codes_for_unusable_files(tmp_path: Path, content: str, code: int) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(content)
    assert tunewright("data", "check", str(path)).returncode == code


def test_data_check_clean_and_problem_files(tiny_project: Path) -> None:
    data = tiny_project.parent / "data.jsonl"
    clean = tunewright("data", "check", str(data), "--config", str(tiny_project))
    assert clean.returncode == 0, clean.stdout
    duplicated = data.read_text() + data.read_text().splitlines()[0] + "\n"
    data.write_text(duplicated)
    found = tunewright("data", "check", str(data), "--config", str(tiny_project), "--json")
    assert found.returncode == 1
    report = json.loads(found.stdout)
    assert report["warnings"] == 1 and report["findings"][0]["code"] == "duplicate"
