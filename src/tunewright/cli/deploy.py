"""`merge` and `serve`: from a trained run to a model and an OpenAI-compatible server."""

from __future__ import annotations

import secrets
from pathlib import Path

import typer

from tunewright.cli.common import app, console, err
from tunewright.config import load_config
from tunewright.runs import RunPaths, existing_run


@app.command()
def merge(run_dir: Path, out: Path | None = typer.Option(None, "-o", "--out", help="Merged model directory.")) -> None:
    """Merge a run's LoRA adapter into its base model (safetensors + tokenizer + chat template)."""
    from tunewright.merge import merge_adapter

    run_paths = existing_run(run_dir)
    result = merge_adapter(load_config(run_paths.config), run_paths, out or run_paths.root / "merged")
    console.print(f"merged model: {result.path}  (max |logit diff| vs adapter: {result.max_abs_diff:.2e})")


@app.command()
def serve(
    base: str = typer.Option("smollm2-135m-instruct", help="Base model name or local model directory."),
    adapter: Path | None = typer.Option(None, help="A run directory or adapter directory to serve."),
    name: str | None = typer.Option(None, help="Model name clients use for the adapter (default: task)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    api_key: str | None = typer.Option(None, envvar="TUNEWRIGHT_API_KEY", help="Bearer key clients send."),
    max_tokens: int = typer.Option(512, help="Largest max_tokens a request may ask for."),
) -> None:
    """Serve the base model and an adapter through an OpenAI-compatible API."""
    import uvicorn

    from tunewright.modeling import resolve_base_model
    from tunewright.serve.app import create_app
    from tunewright.serve.engine import Engine, read_adapter

    adapters = [read_adapter(name or _adapter_default_name(adapter), adapter)] if adapter else []
    engine = Engine(base, resolve_base_model(base), adapters)
    if api_key is None:
        api_key = secrets.token_urlsafe(24)
        err.print(f"no --api-key or TUNEWRIGHT_API_KEY given; this run's key is: {api_key}")
    err.print(f"serving {', '.join(engine.model_names)} on http://{host}:{port}/v1")
    uvicorn.run(create_app(engine, {api_key}, max_tokens), host=host, port=port, log_level="warning")


def _adapter_default_name(path: Path) -> str:
    config_file = RunPaths(path).config
    return load_config(config_file).task.name if config_file.is_file() else path.resolve().name
