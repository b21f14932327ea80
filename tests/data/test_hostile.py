"""Hostile input: values nested thousands of levels deep in every reader format become one finding
with file:line (exit 2 from `data check`), and fuzzed bytes or JSON give findings or a clean parse,
never an exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tunewright.cli import app
from tunewright.data.formats import read_examples

DEEP = "[" * 5000 + "]" * 5000
runner = CliRunner()


def _deep_file(directory: Path, suffix: str) -> Path:
    path = directory / f"deep{suffix}"
    if suffix == ".jsonl":
        path.write_text(f'{{"instruction": {DEEP}, "output": "x"}}\n')
    elif suffix == ".json":
        path.write_text(f"[{DEEP}]")
    else:
        path.write_text(f'instruction,output,messages\nhi,there,"{DEEP}"\n')
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
def test_deep_nesting_is_one_clear_line_and_exit_2(suffix: str, tmp_path: Path) -> None:
    path = _deep_file(tmp_path, suffix)
    done = runner.invoke(app, ["data", "check", str(path)])
    assert done.exit_code == 2, done.output
    assert "Traceback" not in done.output and isinstance(done.exception, SystemExit)  # a clean exit, no crash
    assert f"{path}:" in done.output and "too-deep" in done.output


def test_feedback_export_refuses_a_deep_dedupe_file_in_one_line(tmp_path: Path) -> None:
    from tunewright.config import TaskConfig
    from tunewright.errors import DataError
    from tunewright.feedback.export import export_feedback
    from tunewright.feedback.store import FeedbackStore

    deep = _deep_file(tmp_path, ".jsonl")
    store = FeedbackStore(tmp_path / "feedback.db")
    with pytest.raises(DataError, match="too-deep"):
        export_feedback(store, tmp_path / "out.jsonl", TaskConfig(name="t", system_prompt="Answer."),
                        dedupe_against=deep)
    assert not (tmp_path / "out.jsonl").exists()


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=20)
rows = st.one_of(json_values, st.fixed_dictionaries({"instruction": json_values, "output": json_values}),
                 st.fixed_dictionaries({"messages": json_values}))


def _read(suffix: str, payload: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"fuzz{suffix}"
        path.write_bytes(payload)
        examples, findings = read_examples(path, r"^\[(?P<label>\w+)\]")
        assert all(finding.source.startswith(str(path)) for finding in findings)
        assert all(example.messages for example in examples)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([".jsonl", ".json", ".csv", ".parquet"]))
def test_arbitrary_bytes_give_findings_or_rows_never_an_exception(payload: bytes, suffix: str) -> None:
    _read(suffix, payload)


@FUZZ
@given(st.lists(rows, min_size=1, max_size=5), st.booleans())
def test_arbitrary_json_gives_findings_or_rows_never_an_exception(values: list[object], as_array: bool) -> None:
    if as_array:
        _read(".json", json.dumps(values).encode())
    else:
        _read(".jsonl", "\n".join(json.dumps(value) for value in values).encode())
