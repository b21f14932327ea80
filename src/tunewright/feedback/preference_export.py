"""`feedback export --format preference`: served traffic as preference rows. A correction makes a pair (the
served answer rejected, the correction chosen); a rated answer without one makes a KTO row (desirable when
rated above 0, undesirable below; neutral ratings are skipped). Rows the existing dataset already holds
are dropped, and the file is written only if it passes `data check`. Never imports torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tunewright.config import TaskConfig
from tunewright.data.preferences import is_preference_row, rows_to_preferences
from tunewright.data.readers import RawRow, read_rows
from tunewright.errors import DataError
from tunewright.feedback.export import write_checked
from tunewright.feedback.store import FeedbackStore
from tunewright.records import Preference
from tunewright.runs import write_jsonl


@dataclass
class PreferenceExport:
    path: Path
    pairs: int = 0
    unpaired: int = 0
    duplicates: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def written(self) -> int:
        return self.pairs + self.unpaired


def export_preferences(store: FeedbackStore, out: Path, task: TaskConfig, pairs_only: bool = False,
                       dedupe_against: Path | None = None) -> PreferenceExport:
    """Write preference rows to `out` (atomically); raises DataError, writing nothing, when they fail
    `data check`."""
    result = PreferenceExport(out)
    seen = _known_rows(dedupe_against) if dedupe_against is not None else set()
    rows: list[dict[str, object]] = []
    for rated in store.rated():
        exchange = rated.exchange
        prompt = [{"role": m.role, "content": m.content} for m in exchange.messages]
        row: dict[str, object] = {"id": f"feedback-{exchange.id}", "messages": prompt}
        if rated.correction is not None and _fold(rated.correction) != _fold(exchange.response):
            row.update(chosen=rated.correction, rejected=exchange.response)
        elif rated.correction is None and rated.rating != 0 and not pairs_only:
            row.update(completion=exchange.response, label=rated.rating > 0)
        else:
            continue
        parsed, _ = rows_to_preferences([RawRow(f"feedback {exchange.id}", row)])
        if not parsed:  # unusable (an empty correction, say): `data check` below names the problem
            rows.append(row)
            continue
        preference = parsed[0]
        if (key := row_key(preference)) in seen:
            result.duplicates += 1
            continue
        seen.add(key)
        if preference.paired:
            result.pairs += 1
        else:
            result.unpaired += 1
        rows.append(row)
    if not rows:
        write_jsonl(out, [])
        return result
    result.warnings = write_checked(rows, out, task)
    return result


def row_key(preference: Preference) -> tuple[str, str, str]:
    """A row's prompt and its two sides, case and spacing folded."""
    return preference.prompt_key, _fold(preference.chosen), _fold(preference.rejected)


def _known_rows(dataset: Path) -> set[tuple[str, str, str]]:
    """The rows of an existing preference file; an SFT file holds no preference rows to match."""
    rows, findings = read_rows(dataset)
    if not rows and findings:
        raise DataError(f"--dedupe-against {dataset}: {findings[0].line()}")
    if not rows or not is_preference_row(rows[0].value):
        return set()
    preferences, _ = rows_to_preferences(rows)
    return {row_key(preference) for preference in preferences}


def _fold(text: str | None) -> str:
    return " ".join((text or "").lower().split())
