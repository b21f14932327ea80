"""The one look of every progress bar: title, bar, done/total, elapsed and ETA, on stderr."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_bar(title: str, *extra: ProgressColumn, disable: bool = False) -> Progress:
    return Progress(
        TextColumn(f"[bold]{title}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(), *extra, console=Console(stderr=True), disable=disable,
    )
