"""The playground (one prompt to the base model and to an adapter of a running `tunewright serve`, answers
side by side) and the feedback queue (answers rated low, with a form to write the correction that
`tunewright feedback export` turns into a dataset row)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from tunewright.feedback.store import FeedbackStore
from tunewright.ui.app import UISettings, page, settings_of

router = APIRouter()
LOW_RATING = 0  # ratings run -1 .. 5 with 0 neutral: at or below it an answer waits for a correction


class PlaygroundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    prompt: str = Field(min_length=1, max_length=20_000)
    max_tokens: int = Field(128, gt=0, le=2048)


def _serve(settings: UISettings, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One call to the configured server, with its key added here so the browser never sees it."""
    if settings.serve_url is None:
        raise HTTPException(409, "no server configured: start `tunewright ui --serve-url http://127.0.0.1:8000`")
    headers = {"Content-Type": "application/json"}
    if settings.serve_key:
        headers["Authorization"] = f"Bearer {settings.serve_key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(settings.serve_url.rstrip("/") + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            loaded: dict[str, Any] = json.loads(response.read())
            return loaded
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise HTTPException(502, f"the server answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise HTTPException(502, f"cannot reach {settings.serve_url}: {exc}") from None


@router.get("/playground")
def playground(request: Request) -> Response:
    settings = settings_of(request)
    models: list[str] = []
    problem = ""
    try:
        models = [card["id"] for card in _serve(settings, "/v1/models")["data"]]
    except HTTPException as exc:
        problem = str(exc.detail)
    return page(request, "playground.html", models=models, problem=problem, serve_url=settings.serve_url or "")


@router.post("/playground/chat")
def playground_chat(request: Request, body: PlaygroundRequest) -> JSONResponse:
    reply = _serve(settings_of(request), "/v1/chat/completions", {
        "model": body.model, "max_tokens": body.max_tokens, "temperature": 0,
        "messages": [{"role": "user", "content": body.prompt}],
    })
    choice = reply["choices"][0]
    return JSONResponse({"id": reply.get("id"), "content": choice["message"]["content"],
                         "finish_reason": choice.get("finish_reason"), "usage": reply.get("usage")})


def _store(settings: UISettings) -> FeedbackStore:
    if settings.feedback_db is None or not settings.feedback_db.is_file():
        raise HTTPException(409, "no feedback store: start `tunewright ui --feedback-db feedback.db` "
                                 "(the file `tunewright serve --feedback-db` writes)")
    return FeedbackStore(settings.feedback_db)


@router.get("/feedback")
def feedback_page(request: Request) -> Response:
    settings = settings_of(request)
    if settings.feedback_db is None or not settings.feedback_db.is_file():
        return page(request, "feedback.html", queue=[], done=[], db="", low=LOW_RATING)
    store = _store(settings)
    try:
        rated = [item for item in store.rated() if item.rating <= LOW_RATING]
    finally:
        store.close()
    return page(request, "feedback.html", queue=[r for r in rated if not r.correction],
                done=[r for r in rated if r.correction], db=str(settings.feedback_db), low=LOW_RATING)


@router.post("/feedback/{response_id}")
def correct(request: Request, response_id: str, correction: str = Form(..., min_length=1),
            rating: int = Form(..., ge=-1, le=5)) -> Response:
    store = _store(settings_of(request))
    try:
        if not store.add_feedback(response_id, rating, correction.strip()):
            raise HTTPException(404, f"no served exchange with id {response_id!r}")
    finally:
        store.close()
    return RedirectResponse("/feedback", status_code=303)
