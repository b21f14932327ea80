"""Read a dataset file into raw rows, each with its `file:line` source: JSONL, a JSON array, CSV or
Parquet, chosen by extension or content. Byte-level problems (UTF-8, BOM, NUL, huge lines) are findings."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_LINE_CHARS = 100_000  # a JSONL line longer than this is almost always a pasted file, not an example


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
    """Every parsed row of `path` and a finding for each part that could not be parsed."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [], [Finding("error", "unreadable", f"{exc.strerror or exc}; check the path", str(path))]
    if path.suffix.lower() == ".parquet" or raw.startswith(b"PAR1"):
        return _parquet_rows(path)
    findings: list[Finding] = []
    if raw.startswith(b"\xef\xbb\xbf"):
        findings.append(Finding("warning", "bom", "file starts with a UTF-8 byte-order mark; it is skipped, "
                                "but some tools choke on it (data clean removes it)", f"{path}:1"))
        raw = raw[3:]
    text, bad_lines = _decode(raw)
    findings += [Finding("error", "bad-utf8", f"not valid UTF-8 at byte {column}; re-save the file as UTF-8",
                         f"{path}:{line}") for line, column in bad_lines]
    skip = {line for line, _ in bad_lines}
    if path.suffix.lower() in (".csv", ".tsv"):
        rows, more = _csv_rows(path, text, "\t" if path.suffix.lower() == ".tsv" else ",")
    elif text.lstrip().startswith("["):
        rows, more = _json_array_rows(path, text)
    else:
        rows, more = _jsonl_rows(path, text, skip)
    return rows, findings + more


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


def _jsonl_rows(path: Path, text: str, skip: set[int]) -> tuple[list[RawRow], list[Finding]]:
    rows: list[RawRow] = []
    findings: list[Finding] = []
    loads = json.loads
    for number, line in enumerate(text.split("\n"), start=1):
        if number in skip or not line or line.isspace():
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
