"""Repository rules that keep the code readable."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tunewright"
MAX_LINES = 500
AIM_LINES = 300  # a file past this says why at its top
MAX_FUNCTION_LINES = 60


def test_no_source_file_exceeds_the_line_ceiling() -> None:
    too_long = {str(path.relative_to(SRC)): n for path in SRC.rglob("*.py")
                if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not too_long, f"files over {MAX_LINES} lines: {too_long}"


def test_light_modules_do_not_import_torch() -> None:
    for name in ("config.py", "records.py", "errors.py"):
        text = (SRC / name).read_text(encoding="utf-8")
        assert "import torch" not in text, name


def test_files_over_300_lines_say_why_at_their_top() -> None:
    unexplained = [str(path.relative_to(SRC)) for path in SRC.rglob("*.py")
                   if len(lines := path.read_text(encoding="utf-8").splitlines()) > AIM_LINES
                   and not any(f"over {AIM_LINES} lines" in line.lower() for line in lines[:12])]
    assert not unexplained, f"over {AIM_LINES} lines without a reason at the top: {unexplained}"


def test_no_function_exceeds_60_lines() -> None:
    long = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(SRC)}:{node.name}"] = length
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_dashboard_never_imports_torch_or_other_stages_internals() -> None:
    for path in [SRC / "review.py", *(SRC / "ui").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for forbidden in ("import torch", "tunewright.train", "tunewright.evaluate", "tunewright.serve"):
            assert forbidden not in text, f"{path.name} imports {forbidden}"
