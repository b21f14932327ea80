"""Repository rules that keep the code readable."""

from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "tunewright"
MAX_LINES = 500


def test_no_source_file_exceeds_the_line_ceiling() -> None:
    too_long = {str(path.relative_to(SRC)): n for path in SRC.rglob("*.py")
                if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not too_long, f"files over {MAX_LINES} lines: {too_long}"


def test_light_modules_do_not_import_torch() -> None:
    for name in ("config.py", "records.py", "errors.py"):
        text = (SRC / name).read_text(encoding="utf-8")
        assert "import torch" not in text, name


def test_the_dashboard_never_imports_torch_or_other_stages_internals() -> None:
    for path in [SRC / "review.py", *(SRC / "ui").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for forbidden in ("import torch", "tunewright.train", "tunewright.evaluate", "tunewright.serve"):
            assert forbidden not in text, f"{path.name} imports {forbidden}"
