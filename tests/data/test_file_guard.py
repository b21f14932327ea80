"""`data check` on paths that are not data files: a symlink to /dev/zero, a FIFO, a directory and a file
above the size limit are refused at once with one finding and exit 2, without reading them; JSONL is
read as a stream, with the same findings as before."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tunewright.data.readers import MAX_FILE_BYTES, read_rows


def _make(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{kind}.jsonl"
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)  # opening it to read would wait for a writer forever
    elif kind == "directory":
        path.mkdir()
    else:  # sparse: costs no disk
        with path.open("wb") as handle:
            handle.truncate(MAX_FILE_BYTES + 1)
    return path


@pytest.mark.parametrize(("kind", "why"), [("dev-zero", "not a regular file"), ("fifo", "not a regular file"),
                                           ("directory", "not a regular file"), ("huge", "above the limit")])
def test_non_data_paths_are_refused_with_one_line_and_exit_2(tmp_path: Path, kind: str, why: str) -> None:
    path = _make(kind, tmp_path)
    done = subprocess.run([sys.executable, "-m", "tunewright", "data", "check", str(path)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    said = [line for line in done.stdout.splitlines() if why in line]
    assert len(said) == 1 and str(path) in said[0] and "unreadable" in said[0]


def test_streamed_jsonl_keeps_line_numbers_and_byte_findings(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n{"b": \xff}\n{oops\r\n{"c": "x\x00"}\n{"d": 4}')
    rows, findings = read_rows(path)
    assert [(row.source, row.value) for row in rows] == [(f"{path}:1", {"a": 1}), (f"{path}:6", {"d": 4})]
    assert [(f.code, f.source) for f in findings] == [
        ("bom", f"{path}:1"), ("bad-utf8", f"{path}:3"), ("invalid-json", f"{path}:4"), ("nul-byte", f"{path}:5")]
