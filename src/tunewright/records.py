"""The record types every stage shares: an example as chat messages with its id, label and origin.

Data readers produce them, training and evaluation consume them, feedback export writes them.
Never imports torch.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from json.encoder import encode_basestring
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Example:
    """One training / evaluation example. `messages` ends with the reference assistant turn."""

    id: str
    messages: tuple[Message, ...]
    label: str | None = None
    group: str | None = None
    source: str = ""  # "file:line" where the example was read

    @property
    def prompt(self) -> tuple[Message, ...]:
        """Every turn before the final assistant answer."""
        return self.messages[:-1]

    @property
    def reference(self) -> str:
        """The final assistant answer."""
        return self.messages[-1].content

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "messages": [asdict(message) for message in self.messages],
            "label": self.label,
            "group": self.group,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Example:
        return cls(
            id=row["id"],
            messages=tuple(Message(m["role"], m["content"]) for m in row["messages"]),
            label=row.get("label"),
            group=row.get("group"),
            source=row.get("source", ""),
        )


def content_hash(messages: tuple[Message, ...]) -> str:
    """A stable hash of an example's content: the same conversation always gets the same id."""
    # Exactly json.dumps([[role, content], ...], ensure_ascii=False), spelled out: a JSONEncoder built per
    # call made 100k hashes take 1.05 s instead of 0.47 s.
    payload = "[" + ", ".join(f"[{encode_basestring(m.role)}, {encode_basestring(m.content)}]" for m in messages) + "]"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class Prediction:
    """One generated answer for one test example, by one candidate."""

    example_id: str
    candidate: str
    output: str
    reference: str
    label: str | None
    predicted_label: str | None
    rubric: dict[str, bool] = field(default_factory=dict)
    confidence: float | None = None  # the candidate's probability of predicted_label, where it has one


def extract_label(output: str, label_regex: str | None) -> str | None:
    """The label a task's regex finds in an output, stripped; None when there is none."""
    if label_regex is None:
        return None
    match = re.search(label_regex, output.strip())
    return match.group("label").strip() if match else None


@dataclass(frozen=True)
class Preference:
    """One preference row: a prompt with a preferred (`chosen`) and a dispreferred (`rejected`) answer,
    or, for KTO, a prompt with one answer marked desirable (only `chosen`) or undesirable (only
    `rejected`). `group` keeps rows together in one split; it defaults to the prompt's hash."""

    id: str
    prompt: tuple[Message, ...]  # every turn before the answer; never ends with an assistant turn
    chosen: str | None
    rejected: str | None
    group: str | None = None
    source: str = ""

    @property
    def paired(self) -> bool:
        return self.chosen is not None and self.rejected is not None

    @property
    def prompt_key(self) -> str:
        """The hash every row with this prompt shares (splits keep them together)."""
        return content_hash(self.prompt)

    def with_answer(self, answer: str) -> Example:
        """The prompt with `answer` as its assistant turn: an SFT example, for what scores or checks one side."""
        return Example(self.id, (*self.prompt, Message("assistant", answer)), source=self.source)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prompt": [asdict(message) for message in self.prompt],
            "chosen": self.chosen,
            "rejected": self.rejected,
            "group": self.group,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Preference:
        return cls(
            id=row["id"],
            prompt=tuple(Message(m["role"], m["content"]) for m in row["prompt"]),
            chosen=row.get("chosen"),
            rejected=row.get("rejected"),
            group=row.get("group"),
            source=row.get("source", ""),
        )


def preference_id(prompt: tuple[Message, ...], chosen: str | None, rejected: str | None) -> str:
    """A stable id from a preference row's content."""
    sides = (Message("assistant", chosen or ""), Message("assistant", rejected or ""))
    return content_hash((*prompt, *sides))[:16]
