"""Turn rated traffic into dataset rows for the next round: corrections always, well-rated answers from
`min_rating` up, minus anything the existing dataset already holds, checked by `data check` before a
line is written. Never imports torch."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tunewright.config import TaskConfig
from tunewright.data.check import check_dataset
from tunewright.data.formats import read_examples
from tunewright.errors import DataError
from tunewright.feedback.store import FeedbackStore
from tunewright.records import Example, Message, extract_label
from tunewright.runs import write_jsonl


@dataclass
class FeedbackExport:
    path: Path
    corrections: int = 0
    rated_answers: int = 0
    duplicates: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def written(self) -> int:
        return self.corrections + self.rated_answers


def export_feedback(store: FeedbackStore, out: Path, task: TaskConfig, min_rating: int | None = None,
                    dedupe_against: Path | None = None) -> FeedbackExport:
    """Write chat-format rows to `out` (atomically); raises DataError, writing nothing, when the rows
    fail `data check`."""
    result = FeedbackExport(out)
    seen = _known_prompts(dedupe_against, task) if dedupe_against is not None else set()
    rows: list[dict[str, object]] = []
    for rated in store.rated():
        if rated.correction is not None:
            answer, kind = rated.correction, "correction"
        elif min_rating is not None and rated.rating >= min_rating:
            answer, kind = rated.exchange.response, "rated"
        else:
            continue
        messages = (*rated.exchange.messages, Message("assistant", answer))
        key = _prompt_key(messages)
        if key in seen:
            result.duplicates += 1
            continue
        seen.add(key)
        if kind == "correction":
            result.corrections += 1
        else:
            result.rated_answers += 1
        row: dict[str, object] = {"id": f"feedback-{rated.exchange.id}",
                                  "messages": [{"role": m.role, "content": m.content} for m in messages]}
        if (label := extract_label(answer, task.label_regex)) is not None:
            row["label"] = label
        rows.append(row)
    if not rows:
        write_jsonl(out, [])
        return result
    result.warnings = write_checked(rows, out, task)
    return result


def write_checked(rows: list[dict[str, object]], out: Path, task: TaskConfig) -> list[str]:
    """Write `rows` to `out` only if they pass `data check`; returns its warnings."""
    fd, tmp_name = tempfile.mkstemp(dir=out.parent if out.parent.exists() else None, suffix=".jsonl")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write_jsonl(tmp, rows)
        report = check_dataset(tmp, task)
        if report.errors:
            first = report.errors[0]
            raise DataError(f"feedback rows fail data check ({len(report.errors)} errors), nothing written; "
                            f"first: {first.line().replace(str(tmp), 'row')}")
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return [finding.line().replace(str(tmp), str(out)) for finding in report.warnings]


def _known_prompts(dataset: Path, task: TaskConfig) -> set[str]:
    examples, findings = read_examples(dataset, task.label_regex)
    if not examples and findings:
        raise DataError(f"--dedupe-against {dataset}: {findings[0].line()}")
    return {_prompt_key(example.messages) for example in examples}


def _prompt_key(messages: tuple[Message, ...]) -> str:
    """The conversation before the answer, case and spacing folded: one answer per input is kept, so a
    correction never contradicts a row the dataset already has."""
    prompt = Example("", messages).prompt
    return "\n".join(f"{m.role}:{' '.join(m.content.lower().split())}" for m in prompt if m.role != "system")
