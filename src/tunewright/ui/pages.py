"""The runs page, a run's page (decision, charts, probes, examples side by side, filterable) and the
server-sent events that stream metrics.jsonl to the live loss curve."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from tunewright.report.charts import confusion_heatmap, forest_plot, grouped_bars
from tunewright.report.sections import probe_sections
from tunewright.report.view import candidate_order, gate_line, metrics_table, rubric_table
from tunewright.review import summarise
from tunewright.runs import RunPaths, read_json
from tunewright.ui.app import page, settings_of
from tunewright.ui.runs import ExampleRow, example_rows, find_run, loss_points, run_dirs, run_row, summary_of

router = APIRouter()
PAGE_SIZE = 50
FILTERS = ("all", "changed", "improved", "regressed", "rubric")
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class ExamplePage:
    rows: list[ExampleRow]
    shown: str  # what the filter keeps, e.g. "11 improved of 40 rows; showing 1-11"
    page: int
    pages: int


@router.get("/")
def runs_page(request: Request) -> Response:
    settings = settings_of(request)
    rows = [run_row(path) for path in run_dirs(settings.runs_dir)]
    return page(request, "runs.html", rows=rows, runs_dir=str(settings.runs_dir))


def _run(request: Request, name: str) -> RunPaths:
    run = find_run(settings_of(request).runs_dir, name)
    if run is None:
        raise HTTPException(404, f"no run named {name!r} under the runs directory")
    return run


@router.get("/runs/{name}")
def run_page(request: Request, name: str, show: str = "all", q: str = "", page_number: int = 1) -> Response:
    run = _run(request, name)
    summary = summary_of(run)
    context: dict[str, object] = {"name": name, "row": run_row(run.root), "summary": summary}
    if summary is not None:
        evaluation = summary.evaluation
        candidates = evaluation.candidates
        order = candidate_order(candidates)
        best = evaluation.best_baseline
        judge_file = run.eval_dir / "judge.json"
        human = summarise(run.root, best, read_json(judge_file) if judge_file.is_file() else None) if best else None
        context.update(
            gate=gate_line(evaluation.gate, best), best=best, human=human,
            metrics=metrics_table(candidates, order, best), rubric=rubric_table(candidates, order),
            forest=forest_plot(evaluation.comparisons),
            heatmap=confusion_heatmap(candidates.get("finetuned", {}).get("confusion") or {}),
            bars=grouped_bars({n: candidates[n] for n in order}),
            probes=probe_sections(evaluation.probes),
            examples=filter_examples(example_rows(run, best), show, q, page_number),
            show=show if show in FILTERS else "all", q=q, filters=FILTERS,
        )
    return page(request, "run.html", **context)


def filter_examples(rows: list[ExampleRow], show: str, query: str, page_number: int) -> ExamplePage:
    """Rows kept by the filter and the text search (input, reference or either answer), one page of them;
    changed rows first so label flips are never below the fold."""
    kept = rows
    if show == "changed":
        kept = [r for r in rows if r.change]
    elif show in ("improved", "regressed"):
        kept = [r for r in rows if r.change == show]
    elif show == "rubric":
        kept = [r for r in rows if r.rubric_failures]
    if query:
        needle = query.lower()
        kept = [r for r in kept if needle in (r.input + r.reference + r.tuned.output + r.baseline.output).lower()]
    kept = sorted(kept, key=lambda r: ("improved", "regressed", "").index(r.change))
    pages = max(1, -(-len(kept) // PAGE_SIZE))
    page_number = min(max(page_number, 1), pages)
    start = (page_number - 1) * PAGE_SIZE
    shown = kept[start:start + PAGE_SIZE]
    improved = sum(r.change == "improved" for r in rows)
    regressed = sum(r.change == "regressed" for r in rows)
    line = (f"{len(rows)} test rows: {improved} improved, {regressed} regressed. The filter keeps {len(kept)}; "
            f"showing {start + 1 if shown else 0}-{start + len(shown)}.")
    return ExamplePage(shown, line, page_number, pages)


@router.get("/runs/{name}/events")
async def loss_events(request: Request, name: str) -> StreamingResponse:
    """Every metrics.jsonl line as one `data:` event (its line number as the id, so a reconnecting
    EventSource resumes), then new lines as training writes them; a `done` event once summary.json exists."""
    run = _run(request, name)
    start = int(request.headers.get("last-event-id", "-1")) + 1

    async def stream() -> AsyncIterator[str]:
        sent = start
        while not await request.is_disconnected():
            for point in loss_points(run, sent):
                yield f"id: {sent}\ndata: {json.dumps(point)}\n\n"
                sent += 1
            if run.summary.is_file():
                yield "event: done\ndata: {}\n\n"
                return
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
