"""Blind pairwise review: one test row at a time, the fine-tuned model's answer and the best baseline's on
sides fixed per (row, reviewer) by a coin flip, names hidden until every row is graded. A verdict is a
form post (keyboard shortcuts submit it) appended to runs/<name>/review/verdicts.jsonl."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from tunewright.config import Config
from tunewright.review import VerdictRecord, append_verdict, finetuned_side, latest, now, read_verdicts, summarise
from tunewright.runs import RunPaths
from tunewright.ui.app import page, settings_of
from tunewright.ui.runs import ExampleRow, example_rows, find_run, summary_of

router = APIRouter()
CHOICES = ("left", "right", "both_good", "both_bad")


def _reviewable(request: Request, name: str) -> tuple[RunPaths, str, list[ExampleRow]]:
    run = find_run(settings_of(request).runs_dir, name)
    summary = summary_of(run) if run is not None else None
    if run is None or summary is None:
        raise HTTPException(404, f"no evaluated run named {name!r}: review needs summary.json and predictions")
    baseline = summary.evaluation.best_baseline
    rows = example_rows(run, baseline)
    if not rows:
        raise HTTPException(404, f"{name}: no test rows with both the fine-tuned and {baseline!r} answers")
    return run, baseline, rows


def _rubric_names(run: RunPaths) -> list[str]:
    import yaml

    raw = yaml.safe_load(run.config.read_text(encoding="utf-8"))
    return [criterion.name for criterion in Config.model_validate(raw).task.rubric]


@router.get("/runs/{name}/review")
def review_page(request: Request, name: str, reviewer: str = "", row: str = "") -> Response:
    run, baseline, rows = _reviewable(request, name)
    reviewer = reviewer.strip()
    if not reviewer:
        return page(request, "review_start.html", name=name, rows=len(rows))
    graded = {key[1] for key in latest(read_verdicts(run.root), baseline) if key[0] == reviewer}
    remaining = [r for r in rows if r.example_id not in graded]
    current = next((r for r in rows if r.example_id == row), remaining[0] if remaining else None)
    if current is None:
        human = summarise(run.root, baseline)
        return page(request, "review_done.html", name=name, reviewer=reviewer, baseline=baseline, human=human,
                    rows=len(rows))
    side = finetuned_side(name, current.example_id, reviewer)
    left, right = ((current.tuned, current.baseline) if side == "left" else (current.baseline, current.tuned))
    return page(request, "review.html", name=name, reviewer=reviewer, row=current, left=left.output,
                right=right.output, graded=len(graded), total=len(rows), rubric=_rubric_names(run),
                position=rows.index(current) + 1)


@router.post("/runs/{name}/review")
def post_verdict(request: Request, name: str, reviewer: str = Form(...), row: str = Form(...),
                 choice: str = Form(...), comment: str = Form(""), failed_left: list[str] = Form([]),
                 failed_right: list[str] = Form([])) -> Response:
    run, baseline, rows = _reviewable(request, name)
    reviewer = reviewer.strip()
    if choice not in CHOICES:
        raise HTTPException(400, f"choice {choice!r}: use one of {', '.join(CHOICES)}")
    if not reviewer or row not in {r.example_id for r in rows}:
        raise HTTPException(400, "a reviewer name and a test row of this run are required")
    side = finetuned_side(name, row, reviewer)
    verdict = {"left": "finetuned" if side == "left" else "baseline",
               "right": "finetuned" if side == "right" else "baseline"}.get(choice, choice)
    unknown = {*failed_left, *failed_right} - set(_rubric_names(run))
    if unknown:
        raise HTTPException(400, f"rubric criteria {sorted(unknown)} are not in this run's task card")
    append_verdict(run.root, VerdictRecord(
        reviewer=reviewer, time=now(), row=row, baseline=baseline, verdict=verdict,  # type: ignore[arg-type]
        finetuned_side=side, failed_finetuned=failed_left if side == "left" else failed_right,
        failed_baseline=failed_right if side == "left" else failed_left, comment=comment.strip(),
    ))
    return RedirectResponse(f"/runs/{quote(name)}/review?reviewer={quote(reviewer)}", status_code=303)
