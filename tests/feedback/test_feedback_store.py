"""The feedback store: ordered migrations in WAL mode, PII redaction, ratings, and export to dataset rows
that pass `data check`, without rows the existing dataset already has."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tunewright.config import TaskConfig
from tunewright.data.pii import redact
from tunewright.errors import TunewrightError
from tunewright.feedback.export import export_feedback
from tunewright.feedback.store import MIGRATIONS, Exchange, FeedbackStore
from tunewright.records import Message

TASK = TaskConfig(name="support", system_prompt="Label it.", labels=["Fraud Report", "Account Access"],
                  label_regex=r"^\[Intent: (?P<label>[^\]]+)\]")


def exchange(number: int, question: str, answer: str) -> Exchange:
    return Exchange(f"chatcmpl-{number}", "support", "support", "chat", (Message("user", question),), answer,
                    10, 5, 12.5, "stop")


def test_store_migrates_in_order_and_uses_wal(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.db")
    assert store.schema_version == len(MIGRATIONS)
    store.log(exchange(1, "hi", "hello"))
    store.close()
    db = sqlite3.connect(tmp_path / "fb.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(TunewrightError, match="newer"):
        FeedbackStore(tmp_path / "fb.db")


def test_pii_is_redacted_before_it_is_stored(tmp_path: Path) -> None:
    assert redact("card 4111 1111 1111 1111, mail a.b@example.org, call +44 20 7946 0958")[0] == \
        "card <CARD>, mail <EMAIL>, call <PHONE>"
    store = FeedbackStore(tmp_path / "fb.db")
    store.log(exchange(1, "my email is jo@example.com", "Thanks, jo@example.com"))
    (row,) = store.exchanges()
    assert row.messages[0].content == "my email is <EMAIL>" and row.response == "Thanks, <EMAIL>"
    raw = FeedbackStore(tmp_path / "raw.db", redact_pii=False)
    raw.log(exchange(1, "my email is jo@example.com", "ok"))
    assert raw.exchanges()[0].messages[0].content == "my email is jo@example.com"


def test_export_corrections_and_rated_answers(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.db")
    rows = [("Someone used my card", "[Intent: Account Access] Hi"),
            ("I forgot my password", "[Intent: Account Access] Ok"),
            ("Is my card stolen?", "[Intent: Fraud Report] Sorry"), ("Already in data", "[Intent: Fraud Report] x"),
            ("Not rated", "[Intent: Fraud Report] y")]
    for number, (question, answer) in enumerate(rows):
        store.log(exchange(number, question, answer))
    assert store.add_feedback("chatcmpl-0", -1, "[Intent: Fraud Report] Please call us now.")
    assert store.add_feedback("chatcmpl-1", 5, None)
    assert store.add_feedback("chatcmpl-2", 1, None)
    assert store.add_feedback("chatcmpl-3", 5, None)
    assert not store.add_feedback("missing", 5, None)
    dataset = tmp_path / "data.jsonl"
    dataset.write_text(json.dumps({"messages": [{"role": "user", "content": "already in  DATA"},
                                                {"role": "assistant", "content": "[Intent: Fraud Report] z"}]}) + "\n")
    result = export_feedback(store, tmp_path / "out.jsonl", TASK, min_rating=4, dedupe_against=dataset)
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert (result.corrections, result.rated_answers, result.duplicates) == (1, 1, 1)
    assert [row["messages"][-1]["content"] for row in written] == [
        "[Intent: Fraud Report] Please call us now.", "[Intent: Account Access] Ok"]
    assert [row["label"] for row in written] == ["Fraud Report", "Account Access"]
    only_corrections = export_feedback(store, tmp_path / "corrections.jsonl", TASK)
    assert only_corrections.written == 1


def test_export_refuses_rows_that_fail_data_check(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "fb.db")
    store.log(exchange(1, "hi", "[Intent: Unknown Thing] hello"))
    store.add_feedback("chatcmpl-1", 5, None)
    with pytest.raises(TunewrightError, match="data check"):
        export_feedback(store, tmp_path / "out.jsonl", TASK, min_rating=1)
    assert not (tmp_path / "out.jsonl").exists()


def test_feedback_package_never_imports_torch() -> None:
    code = ("import sys, tunewright.feedback.store, tunewright.feedback.export; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
