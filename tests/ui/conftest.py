"""A runs directory for the dashboard tests: one run trained and evaluated for real on the tiny model
(session-wide, about a minute) and the dashboard on a real uvicorn server. The browser fixtures are in
tests/conftest.py (the serving tests drive the dashboard too)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tunewright.config import load_config
from tunewright.pipeline import run_pipeline
from tunewright.runs import RunPaths

SCREENSHOTS = Path(__file__).parent / "screenshots"  # where tests/conftest.py's browser fixture saves too
RUN = "tiny-support"


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory, make_project: Callable[[Path, int], Path]) -> Path:
    """runs/ holding one finished run (12 test rows, three baselines) with the whole loop behind it."""
    root = tmp_path_factory.mktemp("ui")
    config_path = make_project(root, 120)
    raw = yaml.safe_load(config_path.read_text())
    raw["eval"].update(max_test_rows=12, candidates=["zero_shot", "few_shot"])
    raw["eval"]["probes"] = {"fairness": False}
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    runs = root / "runs"
    run_pipeline(load_config(config_path), RunPaths(runs / RUN), lambda message: None, show_progress=False)
    return runs


@pytest.fixture()
def ui_url(runs_dir: Path, serve_app: Any, tmp_path: Path) -> Iterator[str]:
    """The dashboard over a fresh copy of runs_dir (tests write verdicts), on a real server."""
    from tunewright.ui import UISettings, create_app

    runs = tmp_path / "runs"
    shutil.copytree(runs_dir, runs)
    with serve_app(create_app(UISettings(runs_dir=runs))) as url:
        yield url
