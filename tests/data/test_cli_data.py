"""The four `data` commands in-process through the Typer app: output shape, files written, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tunewright.cli import app

runner = CliRunner()


def test_check_prints_a_summary_then_findings_grouped_and_capped(tiny_project: Path) -> None:
    data = tiny_project.parent / "data.jsonl"
    lines = data.read_text(encoding="utf-8").splitlines()
    data.write_text("\n".join([*lines, *lines[:4], "{oops"]) + "\n", encoding="utf-8")
    done = runner.invoke(app, ["data", "check", str(data), "--config", str(tiny_project), "--max-per-code", "2"])
    assert done.exit_code == 1, done.output
    out = done.output
    assert out.index("count") < out.index(f"{data}:125: error invalid-json")  # table first, errors before warnings
    assert out.index("invalid-json") < out.index("warning duplicate")
    assert f"{data}:121: warning duplicate: same as {data}:1" in out
    assert "... and 2 more duplicate" in out
    assert "120 examples" in out or "124 examples" in out
    as_json = json.loads(runner.invoke(app, ["data", "check", str(data), "--json"]).output)
    assert as_json["codes"]["duplicate"] == 4 and as_json["errors"] == 1


def test_check_clean_file_exits_0_and_unusable_file_exits_2(tiny_project: Path, tmp_path: Path) -> None:
    data = tiny_project.parent / "data.jsonl"
    assert runner.invoke(app, ["data", "check", str(data), "--config", str(tiny_project)]).exit_code == 0
    given_the_config = runner.invoke(app, ["data", "check", str(tiny_project)])  # its data.path, against its card
    assert given_the_config.exit_code == 0 and given_the_config.output.startswith("120 examples")
    assert "4 labels" in given_the_config.output  # the card's labels were checked
    empty = tmp_path / "empty.jsonl"
    empty.write_text("{}\n")
    assert runner.invoke(app, ["data", "check", str(empty)]).exit_code == 2


def test_split_writes_files_and_manifest_and_check_sees_no_leakage(tiny_project: Path, tmp_path: Path) -> None:
    data = tiny_project.parent / "data.jsonl"
    out = tmp_path / "splits"
    done = runner.invoke(app, ["data", "split", str(data), "--out", str(out), "--config", str(tiny_project)])
    assert done.exit_code == 0, done.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 42 and manifest["fractions"] == {"train": 0.8, "val": 0.1, "test": 0.1}
    sizes = {name: len((out / f"{name}.jsonl").read_text().splitlines()) for name in ("train", "val", "test")}
    assert sizes == {name: manifest["splits"][name]["rows"] for name in sizes} and sum(sizes.values()) == 120
    assert all(len(manifest["splits"][name]["content_hashes"]) == sizes[name] for name in sizes)
    checked = runner.invoke(app, ["data", "check", str(data), "--config", str(tiny_project), "--split-dir", str(out)])
    assert checked.exit_code == 0, checked.output
    test_rows = (out / "test.jsonl").read_text().splitlines()
    with (out / "train.jsonl").open("a") as handle:
        handle.write(test_rows[0] + "\n")
    leaked = runner.invoke(app, ["data", "check", str(data), "--split-dir", str(out), "--json"])
    assert json.loads(leaked.output)["codes"].get("leakage") == 1


def test_clean_and_stats_commands(tiny_project: Path, tmp_path: Path) -> None:
    data = tiny_project.parent / "data.jsonl"
    out = tmp_path / "clean.jsonl"
    done = runner.invoke(app, ["data", "clean", str(data), "-o", str(out), "--config", str(tiny_project),
                               "--redact-pii", "--map-labels"])
    assert done.exit_code == 0, done.output
    assert "120 rows in, 120 out" in done.output and (tmp_path / "clean.jsonl.changes.jsonl").is_file()
    stats = runner.invoke(app, ["data", "stats", str(out), "--config", str(tiny_project)])
    assert stats.exit_code == 0, stats.output
    assert "tokens p95" in stats.output and "#" in stats.output and "exact duplicates" in stats.output


def test_a_run_refuses_data_with_errors_and_with_warnings_under_strict(tiny_project: Path, tmp_path: Path) -> None:
    import pytest

    from tunewright.config import load_config
    from tunewright.errors import DataError
    from tunewright.pipeline import prepare_run
    from tunewright.runs import RunPaths

    data = tiny_project.parent / "data.jsonl"
    lines = data.read_text(encoding="utf-8").splitlines()
    data.write_text("\n".join([*lines, lines[0]]) + "\n", encoding="utf-8")  # a duplicate: a warning
    prepare_run(load_config(tiny_project), RunPaths(tmp_path / "ok"), lambda _: None)
    with pytest.raises(DataError, match=r"1 data error\(s\) and warning\(s\) \(data.strict\) \(duplicate x1\)"):
        prepare_run(load_config(tiny_project, ["data.strict=true"]), RunPaths(tmp_path / "strict"), lambda _: None)
    data.write_text("\n".join([*lines, lines[0].replace("[Intent: ", "[Intent: Loan ")]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data.jsonl:121:output: error unknown-label"):
        prepare_run(load_config(tiny_project), RunPaths(tmp_path / "bad"), lambda _: None)
