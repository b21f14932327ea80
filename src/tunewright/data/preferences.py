"""Preference rows into `Preference` records: pairs (`prompt` or `messages`, `chosen`, `rejected`) and
unpaired rows for KTO (`prompt` or `messages`, `completion`, `label: true/false`), detected per row (one
file may hold both: kto trains on both, a pair giving one row of each), with a finding (file:line:field)
for every row that cannot be used."""

from __future__ import annotations

from typing import Any

from tunewright.data.readers import Finding, RawRow
from tunewright.records import ROLES, Message, Preference, preference_id

PAIR_SIDES = ("chosen", "rejected")
OPTIONAL = {"id", "group", "source"}
PAIR_FIELDS = {"prompt", "messages", *PAIR_SIDES, *OPTIONAL}
UNPAIRED_FIELDS = {"prompt", "messages", "completion", "label", *OPTIONAL}


def is_preference_row(row: Any) -> bool:
    """A pair (has chosen or rejected) or a KTO row (a completion whose label is true or false)."""
    if not isinstance(row, dict):
        return False
    return bool(set(PAIR_SIDES) & row.keys()) or ("completion" in row and isinstance(row.get("label"), bool))


def rows_to_preferences(rows: list[RawRow]) -> tuple[list[Preference], list[Finding]]:
    preferences: list[Preference] = []
    findings: list[Finding] = []
    for raw in rows:
        if not isinstance(raw.value, dict):
            findings.append(Finding("error", "not-an-object", "each row must be a JSON object", raw.source))
            continue
        kind = "pair" if set(PAIR_SIDES) & raw.value.keys() else "unpaired"
        preference, row_findings = to_preference(kind, raw.value, raw.source)
        findings.extend(row_findings)
        if preference is not None:
            preferences.append(preference)
    return preferences, findings


def to_preference(kind: str, row: dict[str, Any], source: str) -> tuple[Preference | None, list[Finding]]:
    allowed = PAIR_FIELDS if kind == "pair" else UNPAIRED_FIELDS
    findings = [Finding("warning", "unknown-field", f"ignored field {key!r}", source, key)
                for key in sorted(row.keys() - allowed)]
    prompt = _prompt(row, source)
    if isinstance(prompt, Finding):
        return None, [*findings, prompt]
    if kind == "unpaired" and not isinstance(row.get("label"), bool):
        return None, [*findings, Finding("error", "wrong-type", "label must be true (a desirable answer) or false "
                                         "(an undesirable one)", source, "label")]
    sides: dict[str, Any] = {side: row.get(side) for side in PAIR_SIDES} if kind == "pair" else \
        {"chosen" if row["label"] else "rejected": row.get("completion")}
    for side, value in sides.items():
        findings += _side_findings(side, side if kind == "pair" else "completion", value, row, source)
    for key in ("id", "group"):
        if row.get(key) is not None and not isinstance(row[key], str):
            findings.append(Finding("error", "wrong-type", f"expected a string, got {type(row[key]).__name__}",
                                    source, key))
    if any(f.severity == "error" for f in findings):
        return None, findings
    chosen, rejected = sides.get("chosen"), sides.get("rejected")
    return Preference(row.get("id") or preference_id(prompt, chosen, rejected), prompt, chosen, rejected,
                      row.get("group") or None, source), findings


def _side_findings(side: str, field: str, value: Any, row: dict[str, Any], source: str) -> list[Finding]:
    if field not in row:
        return [Finding("error", "missing-field", f"{field!r} is missing: pair rows need prompt (or messages), "
                        "chosen and rejected; KTO rows prompt, completion and label", source, field)]
    if not isinstance(value, str):
        return [Finding("error", "wrong-type", f"expected a string, got {type(value).__name__}", source, field)]
    if not value.strip():
        return [Finding("error", "empty-side", f"the {side} answer is empty", source, field)]
    return []


def _prompt(row: dict[str, Any], source: str) -> tuple[Message, ...] | Finding:
    """The turns before the answer: `prompt` as one user turn, or `messages` ending on a user turn."""
    if isinstance(row.get("prompt"), str):
        if not row["prompt"].strip():
            return Finding("error", "empty-content", "the prompt is empty", source, "prompt")
        return (Message("user", row["prompt"]),)
    if "prompt" in row:
        return Finding("error", "wrong-type", f"expected a string, got {type(row['prompt']).__name__}",
                       source, "prompt")
    if row.get("messages") is None:
        return Finding("error", "missing-field", "a prompt is needed: 'prompt' (a string) or 'messages' (the turns "
                       "before the answer)", source, "prompt")
    return _messages_prompt(row["messages"], source)


def _messages_prompt(value: Any, source: str) -> tuple[Message, ...] | Finding:
    if not isinstance(value, list) or not value:
        return Finding("error", "wrong-type", "messages must be a non-empty list", source, "messages")
    messages = []
    for index, item in enumerate(value):
        field = f"messages[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("content"), str):
            return Finding("error", "wrong-type", "each message needs 'role' and a string 'content'", source, field)
        if item.get("role") not in ROLES:
            return Finding("error", "unknown-role", f"role {item.get('role')!r} is not one of {ROLES}",
                           source, f"{field}.role")
        if not item["content"].strip():
            return Finding("error", "empty-content", f"{item['role']} turn {index} is empty", source, field)
        messages.append(Message(item["role"], item["content"]))
    if messages[-1].role != "user":
        return Finding("error", "last-turn-not-user", "messages are the turns before the answer and must end "
                       "with the user's turn; the answers go in chosen / rejected", source, "messages")
    return tuple(messages)
