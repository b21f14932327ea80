"""Read a dataset file into raw rows, each with its `file:line` source: JSONL, a JSON array, CSV or
Parquet, chosen by extension or content. Byte-level problems (UTF-8, BOM, NUL, huge lines) are findings;
a path that is not a regular file, or a file over MAX_FILE_BYTES, is refused before anything is read."""

from __future__ import annotations

import csv
import io
import json
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_LINE_CHARS = 100_000  # a JSONL line longer than this is almost always a pasted file, not an example
MAX_FILE_BYTES = 1 << 30  # 1 GiB: far above any task dataset; beyond it, split the file


@dataclass(frozen=True)
class Finding:
    """One problem in a dataset, located as precisely as we can."""

    severity: str  # "error" | "warning"
    code: str
    message: str
    source: str  # "file:line" or "file"
    field: str | None = None

    def line(self) -> str:
        where = f"{self.source}:{self.field}" if self.field else self.source
        return f"{where}: {self.severity} {self.code}: {self.message}"


@dataclass(frozen=True)
class RawRow:
    source: str  # "file:line" for JSONL and CSV, "file:itemN" / "file:rowN" for JSON arrays and Parquet
    value: Any  # a dict for a usable row


def read_rows(path: Path) -> tuple[list[RawRow], list[Finding]]:
    """Every parsed row of `path` and a finding for each part that could not be parsed. Only a regular
    file of at most MAX_FILE_BYTES is read; JSONL is read line by line."""
    refused = _refusal(path)
    if refused is not None:
        return [], [refused]
    with path.open("rb") as handle:
        head = handle.read(1024)
    if path.suffix.lower() == ".parquet" or head.startswith(b"PAR1"):
        return _parquet_rows(path)
    findings: list[Finding] = []
    if head.startswith(b"\xef\xbb\xbf"):
        findings.append(Finding("warning", "bom", "file starts with a UTF-8 byte-order mark; it is skipped, "
                                "but some tools choke on it (data clean removes it)", f"{path}:1"))
    if path.suffix.lower() not in (".csv", ".tsv") and not head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"["):
        rows, more = _jsonl_rows(path)
        return rows, findings + more
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    text, bad_lines = _decode(raw)
    del raw
    findings += [_bad_utf8(path, line, column) for line, column in bad_lines]
    if path.suffix.lower() in (".csv", ".tsv"):
        rows, more = _csv_rows(path, text, "\t" if path.suffix.lower() == ".tsv" else ",")
    else:
        rows, more = _json_array_rows(path, text)
    return rows, findings + more


def _refusal(path: Path) -> Finding | None:
    """Why `path` is not read at all: missing, not a regular file (a FIFO, a device such as a symlink to
    /dev/zero, a directory), or above the size limit."""
    try:
        info = path.stat()
    except OSError as exc:
        return Finding("error", "unreadable", f"{exc.strerror or exc}; check the path", str(path))
    if not stat.S_ISREG(info.st_mode):
        return Finding("error", "unreadable", "not a regular file (a device, FIFO or directory); point at "
                       "a data file", str(path))
    if info.st_size > MAX_FILE_BYTES:
        return Finding("error", "unreadable", f"file is {info.st_size:,} bytes, above the limit of "
                       f"{MAX_FILE_BYTES:,}; split it into several files or sample it", str(path))
    return None


def _bad_utf8(path: Path, line: int, column: int) -> Finding:
    return Finding("error", "bad-utf8", f"not valid UTF-8 at byte {column}; re-save the file as UTF-8",
                   f"{path}:{line}")


def _decode(raw: bytes) -> tuple[str, list[tuple[int, int]]]:
    """The text, with undecodable bytes replaced, and (line, byte column) of each line that had them."""
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    bad = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad.append((number, exc.start + 1))
    return raw.decode("utf-8", errors="replace"), bad


def _jsonl_rows(path: Path) -> tuple[list[RawRow], list[Finding]]:
    """One row per line, read as a stream: memory holds the parsed rows, never the whole text."""
    rows: list[RawRow] = []
    findings: list[Finding] = []
    loads = json.loads
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                line = raw.decode("utf-8").removesuffix("\n")
            except UnicodeDecodeError as exc:
                findings.append(_bad_utf8(path, number, exc.start + 1))
                continue
            if not line or line.isspace():
                continue
            source = f"{path}:{number}"
            if len(line) > MAX_LINE_CHARS:
                findings.append(Finding("warning", "long-line", f"line is {len(line):,} characters; an example "
                                        f"this long is usually a pasted document (limit {MAX_LINE_CHARS:,})", source))
            if "\x00" in line:
                findings.append(Finding("error", "nul-byte", "line contains a NUL byte; remove it (binary data "
                                        "or a broken export)", source))
                continue
            try:
                rows.append(RawRow(source, loads(line)))
            except json.JSONDecodeError as exc:
                findings.append(Finding("error", "invalid-json", f"{exc.msg} (column {exc.colno})", source))
            except RecursionError:
                findings.append(too_deep(source))
    return rows, findings


def _json_array_rows(path: Path, text: str) -> tuple[list[RawRow], list[Finding]]:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [Finding("error", "invalid-json", f"{exc.msg} (column {exc.colno})", f"{path}:{exc.lineno}")]
    except RecursionError:
        return [], [too_deep(f"{path}:1")]
    if not isinstance(parsed, list):
        return [], [Finding("error", "not-an-object", "expected a JSON array of row objects", f"{path}:1")]
    return [RawRow(f"{path}:item{number}", item) for number, item in enumerate(parsed, start=1)], []


def _csv_rows(path: Path, text: str, delimiter: str) -> tuple[list[RawRow], list[Finding]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[RawRow] = []
    findings: list[Finding] = []
    line = reader.line_num + 1
    for record in reader:
        source = f"{path}:{line}"
        line = reader.line_num + 1
        if None in record:
            findings.append(Finding("error", "wrong-column-count", "more cells than header columns; quote "
                                    "cells that contain the delimiter", source))
            continue
        # A chat row in CSV keeps its `messages` as a JSON string in one cell.
        row: dict[str, Any] = {key: value for key, value in record.items() if value is not None}
        if isinstance(row.get("messages"), str):
            try:
                row["messages"] = json.loads(row["messages"])
            except json.JSONDecodeError as exc:
                findings.append(Finding("error", "invalid-json", f"messages cell: {exc.msg}", source, "messages"))
                continue
            except RecursionError:
                findings.append(too_deep(source, "messages"))
                continue
        rows.append(RawRow(source, row))
    return rows, findings


def _parquet_rows(path: Path) -> tuple[list[RawRow], list[Finding]]:
    import pyarrow.parquet as pq

    try:
        values = pq.read_table(path).to_pylist()
    except RecursionError:
        return [], [too_deep(str(path))]
    except Exception as exc:  # pyarrow raises several unrelated types for a corrupt file
        return [], [Finding("error", "unreadable", f"not a readable Parquet file ({exc})", str(path))]
    return [RawRow(f"{path}:row{number}", row) for number, row in enumerate(values, start=1)], []


def too_deep(source: str, field: str | None = None) -> Finding:
    """Values nested past Python's recursion limit cannot be read; no example is nested like that."""
    return Finding("error", "too-deep", "value nested too deeply to read (thousands of levels); an example "
                   "is a flat object of strings", source, field)
