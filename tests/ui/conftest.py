"""A runs directory for the dashboard tests: one run trained and evaluated for real on the tiny model
(session-wide, about a minute), the dashboard on a real uvicorn server, and Debian's chromium under
Playwright. Screenshots land in tests/ui/screenshots/ (CI keeps them as artefacts)."""

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

SCREENSHOTS = Path(__file__).parent / "screenshots"
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


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is missing: `apt-get install -y chromium` (make test installs it)")
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture()
def browser_page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()
