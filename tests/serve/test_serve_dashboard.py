"""The dashboard's playground and feedback queue in a real browser (Debian's chromium under Playwright)
against a real `tunewright serve` (uvicorn, the adapter library, a SQLite feedback store): the two
answers shown side by side equal what the models answer run locally, and a correction written in the
queue reaches the store and `feedback export`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tunewright.chat import with_system_prompt
from tunewright.config import load_config
from tunewright.evaluate.generate import generate_replies
from tunewright.feedback.export import export_feedback
from tunewright.feedback.store import FeedbackStore
from tunewright.library import AdapterLibrary
from tunewright.modeling import load_model, load_tokenizer
from tunewright.records import Message
from tunewright.serve.app import create_app as create_server
from tunewright.serve.engine import Engine
from tunewright.ui import UISettings, create_app

SCREENSHOTS = Path(__file__).parents[1] / "ui" / "screenshots"
MAX_TOKENS = 128  # what the playground asks for
KEY = "test-key"
# what two of tests/serve/conftest.py's adapters learned to answer, and questions they were trained on
REPLIES = {"fraud": "[Intent: Fraud Report]", "dispute": "[Intent: Transaction Dispute]"}
QUESTIONS = ["Someone used my card abroad", "I was charged twice"]


@pytest.fixture()
def served_ui(tiny_model_dir: Path, adapter_library: Path, serve_app: Any,
              tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """(dashboard URL, server URL, feedback db) with the library's adapters served beside the base."""
    library = tmp_path / "library"
    shutil.copytree(adapter_library, library)
    db = tmp_path / "feedback.db"
    store = FeedbackStore(db)
    (tmp_path / "runs").mkdir()
    with ExitStack() as stack:
        engine = Engine("base", tiny_model_dir, AdapterLibrary(library))
        serve_url = stack.enter_context(serve_app(create_server(engine, {KEY}, feedback=store)))
        settings = UISettings(runs_dir=tmp_path / "runs", serve_url=serve_url, serve_key=KEY, feedback_db=db)
        yield stack.enter_context(serve_app(create_app(settings))), serve_url, db
    store.close()


def test_playground_shows_both_models_answers_side_by_side(served_ui: tuple[str, str, Path], browser_page: Any,
                                                           tiny_model_dir: Path) -> None:
    question = QUESTIONS[0]
    chat = with_system_prompt([Message("user", question)], "")
    base_answer = generate_replies(load_model(tiny_model_dir), load_tokenizer(tiny_model_dir), [chat], MAX_TOKENS,
                                   1)[0].text
    browser_page.goto(served_ui[0] + "/playground")
    browser_page.select_option("#model-left", "base")
    browser_page.select_option("#model-right", "fraud")
    browser_page.fill("#prompt", question)
    browser_page.click("#playground button")
    for side in ("left", "right"):
        browser_page.wait_for_selector(f"#reply-{side}[data-state=answered]", state="attached", timeout=120_000)
    assert browser_page.inner_text("#title-left") == "base" and browser_page.inner_text("#title-right") == "fraud"
    assert browser_page.text_content("#reply-left") == base_answer
    assert browser_page.text_content("#reply-right") == REPLIES["fraud"] != base_answer
    browser_page.screenshot(path=str(SCREENSHOTS / "playground.png"), full_page=True)


def test_a_correction_written_in_the_queue_reaches_the_store_and_the_export(
        served_ui: tuple[str, str, Path], browser_page: Any, tmp_path: Path,
        make_project: Callable[[Path, int], Path]) -> None:
    ui_url, serve_url, db = served_ui
    auth = {"Authorization": f"Bearer {KEY}"}
    question = QUESTIONS[1]
    reply = httpx.post(f"{serve_url}/v1/chat/completions", headers=auth, timeout=120, json={
        "model": "fraud", "max_tokens": 16, "messages": [{"role": "user", "content": question}]}).json()
    assert reply["choices"][0]["message"]["content"] == REPLIES["fraud"]
    rated = httpx.post(f"{serve_url}/v1/feedback", headers=auth, json={"response_id": reply["id"], "rating": -1})
    assert rated.status_code == 200, rated.text

    browser_page.goto(ui_url + "/feedback")
    item = browser_page.locator(".feedback-item", has_text=reply["id"])
    assert question in item.inner_text() and REPLIES["fraud"] in item.inner_text()
    correction = REPLIES["dispute"]
    item.locator("textarea[name=correction]").fill(correction)
    with browser_page.expect_navigation():
        item.locator("button").click()
    assert browser_page.locator(".feedback-item", has_text=reply["id"]).count() == 0  # left the queue
    assert f"{reply['id']}: {correction}" in browser_page.inner_text("main")
    browser_page.screenshot(path=str(SCREENSHOTS / "feedback.png"), full_page=True)

    store = FeedbackStore(db)
    try:
        latest = {r.exchange.id: r for r in store.rated()}[reply["id"]]
        assert latest.rating == -1 and latest.correction == correction
        out = tmp_path / "next.jsonl"
        (tmp_path / "project").mkdir()
        written = export_feedback(store, out, load_config(make_project(tmp_path / "project", 40)).task)
    finally:
        store.close()
    assert written.corrections == 1
    row = json.loads(out.read_text().splitlines()[0])
    assert row["messages"][-2:] == [{"role": "user", "content": question},
                                    {"role": "assistant", "content": correction}]
    assert row["label"] == "Transaction Dispute"
