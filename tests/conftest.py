"""Shared fixtures: a tiny random Llama with a tokenizer trained on the spot, saved as a model
directory exactly like a user's, and a small project (config + data) that uses it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from fastapi import FastAPI

REPO = Path(__file__).resolve().parents[1]
# The compute precision of every tiny-model project: fp32 by default whatever the CPU, so tests that
# assert numerical identity hold on every machine. `make test` runs the tests marked `precision` a
# second time with TUNEWRIGHT_TEST_PRECISION=bf16, so the bf16 path runs wherever CI lands.
TEST_PRECISION = os.environ.get("TUNEWRIGHT_TEST_PRECISION", "fp32")
# Largest difference between two computations of the same thing in TEST_PRECISION (different
# summation orders, one or two processes); bf16 keeps 8 bits of mantissa.
TOLERANCE = {"fp32": 1e-4, "bf16": 3e-2}[TEST_PRECISION]
EXAMPLE = REPO / "examples" / "fintech-support"
SCREENSHOTS = REPO / "tests" / "ui" / "screenshots"  # browser tests save them here (CI keeps them)


def example_rows(limit: int | None = None) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in (EXAMPLE / "data.jsonl").read_text(encoding="utf-8").splitlines()]
    return rows[:limit]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random Llama of bench/tiny_model.py (which `bench/gpu_check.sh --dry-run` runs on too)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_model", REPO / "bench" / "tiny_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target = tmp_path_factory.mktemp("tiny-llama")
    module.build(target)
    return target


@pytest.fixture(scope="session")
def test_precision() -> str:
    """The training precision of tiny-model projects in this run ("fp32" unless forced to "bf16")."""
    return TEST_PRECISION


@pytest.fixture(scope="session")
def tolerance() -> float:
    """How far two computations of the same numbers may differ in this run's precision."""
    return TOLERANCE


ProjectFactory = Callable[[Path, int], Path]


@pytest.fixture(scope="session")
def make_project(tiny_model_dir: Path) -> ProjectFactory:
    """Writes a config + the first `rows` example rows into a folder, wired to the tiny model, with
    settings that train in seconds; returns the config path."""

    def write(root: Path, rows: int) -> Path:
        config = yaml.safe_load((EXAMPLE / "tunewright.yaml").read_text(encoding="utf-8"))
        (root / "data.jsonl").write_text("".join(json.dumps(row) + "\n" for row in example_rows(rows)))
        config["data"]["path"] = "data.jsonl"
        config["model"]["base"] = str(tiny_model_dir)
        config["training"].update(max_steps=6, eval_every=2, batch_size=4, max_seq_len=768, precision=TEST_PRECISION)
        config["eval"].update(max_new_tokens=8, batch_size=8, few_shot_k=2, max_test_rows=6)
        path = root / "tunewright.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return write


@pytest.fixture()
def tiny_project(tmp_path: Path, make_project: ProjectFactory) -> Path:
    """A 120-row project in this test's tmp_path."""
    return make_project(tmp_path, 120)


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """`app` under a real uvicorn server on 127.0.0.1; yields its base URL."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def serve_app() -> object:
    """The `running(app)` context manager, for tests to start servers with."""
    return running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium under Playwright (no browser download: none is reachable). One per module:
    Playwright's sync API keeps an event loop running in this thread while it is open, so a later
    test's asyncio.run would fail."""
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
