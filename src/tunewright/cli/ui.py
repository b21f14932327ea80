"""`ui`: the local web dashboard over a runs directory (see tunewright.ui)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from tunewright.cli.common import app, err
from tunewright.errors import TunewrightError


@app.command()
def ui(
    runs: Path = typer.Option(Path("runs"), "--runs", help="Runs directory to show."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on; off loopback TUNEWRIGHT_UI_KEY is required."),
    port: int = typer.Option(8765, help="Port to listen on."),
    serve_url: str | None = typer.Option(None, help="A running `tunewright serve` for the playground, "
                                         "e.g. http://127.0.0.1:8000 (its key: TUNEWRIGHT_API_KEYS)."),
    feedback_db: Path | None = typer.Option(None, help="The server's feedback store, for the feedback page."),
) -> None:
    """Web dashboard: runs, live loss curves, decisions with their plots, blind human review, playground."""
    import uvicorn

    from tunewright.ui import UISettings, create_app
    from tunewright.ui.app import LOOPBACK

    key = os.environ.get("TUNEWRIGHT_UI_KEY") or None
    if host not in LOOPBACK and key is None:
        raise TunewrightError(f"--host {host}: the dashboard shows your data and takes verdicts; set "
                              "TUNEWRIGHT_UI_KEY to a secret to listen beyond this machine")
    serve_key = next((k.strip() for k in os.environ.get("TUNEWRIGHT_API_KEYS", "").split(",") if k.strip()), None)
    settings = UISettings(runs_dir=runs, key=key, serve_url=serve_url, serve_key=serve_key, feedback_db=feedback_db)
    address = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    err.print(f"tunewright ui on {address}{'?key=<TUNEWRIGHT_UI_KEY>' if key else ''} (runs: {runs})",
              highlight=False, markup=False)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
