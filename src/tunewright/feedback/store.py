"""The feedback store: one SQLite file in WAL mode holding every served exchange and the ratings and
corrections clients send back. Its schema grows only by the ordered migrations below, tracked in
`PRAGMA user_version`. Never imports torch."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tunewright.data.pii import redact
from tunewright.errors import TunewrightError
from tunewright.records import Message

# Append only: a store at version N runs migrations N+1.. on open; never edit one that has shipped.
MIGRATIONS = (
    """CREATE TABLE exchanges (
        id TEXT PRIMARY KEY, created REAL NOT NULL, model TEXT NOT NULL, adapter TEXT,
        endpoint TEXT NOT NULL, request TEXT NOT NULL, response TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
        latency_ms REAL NOT NULL, finish_reason TEXT NOT NULL)""",
    """CREATE TABLE feedback (
        id INTEGER PRIMARY KEY AUTOINCREMENT, response_id TEXT NOT NULL REFERENCES exchanges(id),
        rating INTEGER NOT NULL, correction TEXT, created REAL NOT NULL)""",
    "CREATE INDEX feedback_response ON feedback(response_id)",
    "ALTER TABLE exchanges ADD COLUMN user TEXT",
)


@dataclass(frozen=True)
class Exchange:
    id: str
    model: str
    adapter: str | None
    endpoint: str
    messages: tuple[Message, ...]  # the request's conversation (or one user turn for /v1/completions)
    response: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    finish_reason: str
    user: str | None = None  # the request's `user`: the client's id for its end user


@dataclass(frozen=True)
class RatedExchange:
    exchange: Exchange
    rating: int
    correction: str | None


class FeedbackStore:
    """Thread-safe: one connection behind a lock (writes are tiny; WAL lets readers run alongside)."""

    def __init__(self, path: Path, redact_pii: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.redact_pii = path, redact_pii
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise TunewrightError(f"{self.path}: feedback store schema v{version} is newer than this "
                                  f"tunewright (v{len(MIGRATIONS)}); upgrade tunewright")
        for number, statement in enumerate(MIGRATIONS[version:], start=version + 1):
            with self._lock:
                self._db.execute("BEGIN")
                self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number}")
                self._db.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def log(self, exchange: Exchange) -> None:
        clean = self._clean
        request = json.dumps([{"role": m.role, "content": clean(m.content)} for m in exchange.messages],
                             ensure_ascii=False)
        with self._lock:
            self._db.execute(
                "INSERT INTO exchanges (id, created, model, adapter, endpoint, request, response, prompt_tokens, "
                "completion_tokens, latency_ms, finish_reason, user) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (exchange.id, time.time(), exchange.model, exchange.adapter, exchange.endpoint, request,
                 clean(exchange.response), exchange.prompt_tokens, exchange.completion_tokens,
                 exchange.latency_ms, exchange.finish_reason, exchange.user))

    def add_feedback(self, response_id: str, rating: int, correction: str | None) -> bool:
        """Record a rating; False when no exchange has that id."""
        with self._lock:
            if self._db.execute("SELECT 1 FROM exchanges WHERE id = ?", (response_id,)).fetchone() is None:
                return False
            self._db.execute("INSERT INTO feedback (response_id, rating, correction, created) VALUES (?, ?, ?, ?)",
                             (response_id, rating, None if correction is None else self._clean(correction),
                              time.time()))
        return True

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM exchanges").fetchone()[0])

    def exchanges(self) -> list[Exchange]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM exchanges ORDER BY created").fetchall()
        return [_exchange(row) for row in rows]

    def rated(self) -> list[RatedExchange]:
        """Every exchange with its latest rating and correction, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT e.*, f.rating, f.correction FROM exchanges e JOIN feedback f ON f.response_id = e.id "
                "WHERE f.id = (SELECT MAX(id) FROM feedback WHERE response_id = e.id) ORDER BY e.created"
            ).fetchall()
        return [RatedExchange(_exchange(row[:12]), int(row[12]), row[13]) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _clean(self, text: str) -> str:
        return redact(text)[0] if self.redact_pii else text


def _exchange(row: tuple[object, ...]) -> Exchange:
    messages = tuple(Message(m["role"], m["content"]) for m in json.loads(str(row[5])))
    return Exchange(id=str(row[0]), model=str(row[2]), adapter=None if row[3] is None else str(row[3]),
                    endpoint=str(row[4]), messages=messages, response=str(row[6]),
                    prompt_tokens=int(str(row[7])), completion_tokens=int(str(row[8])),
                    latency_ms=float(str(row[9])), finish_reason=str(row[10]),
                    user=None if row[11] is None else str(row[11]))
