"""`merge`, `export`, `serve`, `adapters add|list|remove` and `feedback export`: from a trained run to
a merged model, a GGUF file or vLLM launch line, an OpenAI-compatible server, and the next dataset."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from tunewright.cli.common import app, console, err
from tunewright.config import TaskConfig, load_config
from tunewright.errors import EXIT_PROBLEMS, TunewrightError
from tunewright.runs import RunPaths, existing_run

if TYPE_CHECKING:
    from tunewright.feedback.store import FeedbackStore
    from tunewright.library import AdapterEntry

adapters_app = typer.Typer(help="Manage an adapter library: the adapters a server hosts.", no_args_is_help=True)
feedback_app = typer.Typer(help="The feedback store: exchanges and ratings logged by the server.",
                           no_args_is_help=True)
app.add_typer(adapters_app, name="adapters")
app.add_typer(feedback_app, name="feedback")
LibraryOption = typer.Option(Path("adapters"), "--library", help="Adapter library directory.")


VerifyOption = typer.Option(False, "--verify", help="Load the artifact in its own runtime, send the first test "
                            "prompts as a client would, and fail unless the answers are tunewright's.")
VerifyCountOption = typer.Option(20, "--verify-prompts", help="--verify: how many test prompts to send.")


@app.command()
def merge(
    run_dir: Path,
    out: Path | None = typer.Option(None, "-o", "--out", help="Merged model directory."),
    verify: bool = VerifyOption,
    verify_prompts: int = VerifyCountOption,
) -> None:
    """Merge a run's adapter (LoRA, DoRA, IA3, QLoRA) into its base model: safetensors, tokenizer, a chat
    template whose default system prompt is the task's, and a model card (README.md)."""
    from tunewright.merge import merge_adapter

    run_paths = existing_run(run_dir)
    config = load_config(run_paths.config)
    result = merge_adapter(config, run_paths, out or run_paths.root / "merged")
    console.print(f"merged model: {result.path}  (max |logit diff| vs adapter: {result.max_abs_diff:.2e})")
    if verify:
        from tunewright.export import verify as check

        reference = check.reference_answers(config, run_paths, verify_prompts)
        runtime, answers = check.merged_answers(result.path, reference.chats, config.eval.max_new_tokens)
        _report_parity(check.compare("merged", runtime, "f32", reference, answers))


@app.command()
def export(
    source: Path = typer.Argument(..., help="A run directory (gguf) or an adapter library (vllm)."),
    format: str = typer.Option(..., "--format", help="gguf (llama.cpp / Ollama) or vllm (launch line + JSON)."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Output file (default: beside the source)."),
    base: str | None = typer.Option(None, help="vllm: the base model path or Hub id vLLM should load."),
    f32: bool = typer.Option(False, "--f32", help="gguf: keep matrices in f32 (default f16)."),
    gguf_pre: str | None = typer.Option(None, "--gguf-pre", help="gguf: llama.cpp's pre-tokenizer name, for a "
                                        "tokenizer llama.cpp's converter does not recognise."),
    verify: bool = VerifyOption,
    verify_prompts: int = VerifyCountOption,
    runtime_python: Path | None = typer.Option(None, "--runtime-python", help="--verify: the python of the runtime's "
                                               "own environment: llama-cpp-python's for gguf (or TUNEWRIGHT_"
                                               "LLAMA_CPP_PYTHON), vLLM's for vllm (or TUNEWRIGHT_VLLM_PYTHON)."),
    verify_run: Path | None = typer.Option(None, "--verify-run", help="--verify for vllm: the run whose adapter is "
                                           "in the library; vLLM's answers are compared with that run's."),
) -> None:
    """Export a run as GGUF (with an Ollama Modelfile and a model card), or an adapter library as a vLLM
    launch line, script, JSON and client card."""
    from tunewright import export as exporter

    if format == "gguf":
        run_paths = existing_run(source)
        config = load_config(run_paths.config)
        python = None
        if verify:
            from tunewright.export import verify as check

            python = check.runtime_python(check.LLAMA_CPP_PYTHON, runtime_python)
        result = exporter.export_gguf(config, run_paths, out or run_paths.root / "model.gguf", half=not f32,
                                      pre=gguf_pre)
        for warning in result.warnings:
            err.print(f"[yellow]warning:[/] {warning}", highlight=False)
        console.print(f"gguf: {result.path}  card: {result.card}" + (f"  ollama: {result.modelfile}"
                                                                     if result.modelfile else ""))
        if python is not None:
            reference = check.reference_answers(config, run_paths, verify_prompts)
            runtime, answers = check.llama_cpp_answers(result.path, reference.chats, config.eval.max_new_tokens,
                                                       python)
            _report_parity(check.compare("gguf", runtime, "f16" if not f32 else "f32", reference, answers))
    elif format == "vllm":
        _export_vllm(source, out or source / "vllm.json", base, verify, verify_run, verify_prompts, runtime_python)
    else:
        raise TunewrightError(f"--format {format!r}: use gguf or vllm")


def _export_vllm(library: Path, out: Path, base: str | None, verify: bool, verify_run: Path | None,
                 verify_prompts: int, runtime_python: Path | None) -> None:
    """The launch line, script, JSON and client card; with --verify, vLLM started from that line and
    asked as the client card says, compared with the run whose adapter is in the library."""
    from tunewright.export import export_vllm

    if verify != (verify_run is not None):
        raise TunewrightError("--verify for vllm compares with a run's own answers: pass both --verify and "
                              "--verify-run RUN (a run whose adapter is in the library)")
    checked = _vllm_check(library, verify_run, runtime_python) if verify_run is not None else None
    plan = export_vllm(library, out, base)
    for warning in plan.warnings:
        err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(plan.command, markup=False, highlight=False)
    console.print(f"json: {plan.path}  script: {plan.path.with_suffix('.sh')}  "
                  f"client card: {plan.path.with_suffix('.md')}")
    if checked is not None:
        from tunewright.export import verify as check
        from tunewright.export.vllm_runtime import vllm_answers

        run_paths, entry, python = checked
        config = load_config(run_paths.config)
        # compared with what the client card sends: the entry's system prompt, not the run config's
        reference = check.reference_answers(config, run_paths, verify_prompts, entry.system_prompt)
        runtime, answers = vllm_answers(plan.path, entry.name, reference.chats, config.eval.max_new_tokens, python)
        _report_parity(check.compare("vllm", runtime, "f32", reference, answers))


def _vllm_check(library: Path, verify_run: Path, runtime_python: Path | None) -> tuple[RunPaths, AdapterEntry, Path]:
    """What --verify needs, checked before anything is written: vLLM's python, the run, its library entry."""
    from tunewright.export import verify as check

    python = check.runtime_python(check.VLLM_PYTHON, runtime_python)
    run_paths = existing_run(verify_run)
    return run_paths, check.library_entry(library, run_paths), python


def _report_parity(parity: Any) -> None:
    """Print identical/total; exit 1 (problems found) when the export does not answer as tunewright."""
    console.print(f"verify: {parity.artifact} in {parity.runtime}: {parity.identical}/{parity.total} answers "
                  f"identical to tunewright's ({parity.required} needed at {parity.precision}); "
                  f"{parity.same_as_base}/{parity.total} equal to the base model's", markup=False)
    for difference in parity.differences:
        err.print(f"  differs on {difference['prompt'][:60]!r}: tunewright {difference['tunewright'][:60]!r} / "
                  f"runtime {difference['runtime'][:60]!r}", markup=False, highlight=False)
    if not parity.ok:
        for problem in parity.problems():
            err.print(f"[red]verify failed:[/] {problem}", highlight=False)
        raise typer.Exit(EXIT_PROBLEMS)


@app.command()
def serve(
    base: str = typer.Option("smollm2-135m-instruct", help="Base model name or local model directory."),
    adapters: Path = typer.Option(Path("adapters"), help="Adapter library directory (see `adapters add`)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    feedback_db: Path = typer.Option(Path("feedback.db"), help="SQLite feedback store every exchange goes to."),
    redact_pii: bool = typer.Option(True, help="Redact emails, phones and card numbers before logging."),
    max_loaded: int = typer.Option(8, help="Adapters kept in memory at once (least recently used leave)."),
    max_tokens: int = typer.Option(512, help="Largest max_tokens a request may ask for."),
    max_prompt_tokens: int = typer.Option(2048, help="Longest prompt, in tokens, a request may send."),
    max_batch: int = typer.Option(32, help="Most requests generated together in one batch."),
    max_queue: int = typer.Option(256, help="Requests waiting or running before new ones get 429."),
) -> None:
    """Serve the base model and every adapter in the library through an OpenAI-compatible API.
    Keys: TUNEWRIGHT_API_KEYS (comma-separated) for clients, TUNEWRIGHT_ADMIN_KEYS for /v1/admin."""
    import uvicorn

    from tunewright.feedback.store import FeedbackStore
    from tunewright.library import AdapterLibrary
    from tunewright.modeling import resolve_base_model
    from tunewright.serve.app import create_app
    from tunewright.serve.completions import Limits
    from tunewright.serve.engine import Engine

    api_keys = _keys("TUNEWRIGHT_API_KEYS")
    if not api_keys:
        api_keys = {secrets.token_urlsafe(24)}
        err.print(f"TUNEWRIGHT_API_KEYS is not set; this run's key is: {next(iter(api_keys))}")
    base_name = base if not Path(base).exists() else Path(base).resolve().name
    engine = Engine(base_name, resolve_base_model(base), AdapterLibrary(adapters), max_loaded)
    limits = Limits(max_tokens=max_tokens, max_prompt_tokens=max_prompt_tokens, max_batch=max_batch,
                    max_queue=max_queue)
    store = FeedbackStore(feedback_db, redact_pii)
    app_ = create_app(engine, api_keys, limits, store, _keys("TUNEWRIGHT_ADMIN_KEYS"))
    err.print(f"serving {', '.join(engine.model_names())} on http://{host}:{port}/v1; feedback: {feedback_db}")
    uvicorn.run(app_, host=host, port=port, log_level="warning")


@adapters_app.command("add")
def adapters_add(
    run_dir: Path = typer.Argument(..., help="A run directory (or an adapter directory) to register."),
    name: str = typer.Option(..., "--name", help="Model name clients will use."),
    library: Path = LibraryOption,
    base: str | None = typer.Option(None, help="Base model it was trained on (default: from its manifest)."),
) -> None:
    """Copy a trained adapter into the library, with its base-model fingerprint and eval summary."""
    from tunewright.library import AdapterLibrary, base_fingerprint, read_adapter_dir
    from tunewright.modeling import resolve_base_model

    entry = read_adapter_dir(run_dir, name)
    base_model = base or entry.base_model
    if not base_model:
        raise TunewrightError(f"{run_dir}: the adapter names no base model; pass --base")
    added = AdapterLibrary(library).add(run_dir, name, base_fingerprint(resolve_base_model(base_model)))
    console.print(f"added {added.name} ({added.method}, base {added.base_fingerprint}) to {library}")


@adapters_app.command("list")
def adapters_list(library: Path = LibraryOption) -> None:
    """The adapters in a library with their method, task, base fingerprint and eval decision."""
    from tunewright.library import AdapterLibrary

    table = Table(title=f"adapters in {library}")
    for column in ("name", "method", "task", "rank", "base fingerprint", "decision"):
        table.add_column(column)
    for entry in AdapterLibrary(library).entries():
        table.add_row(entry.name, entry.method, entry.task, str(entry.rank or "—"), entry.base_fingerprint or "—",
                      str(entry.eval_summary.get("decision") or "—"))
    console.print(table)
    for problem in AdapterLibrary(library).problems():
        err.print(f"not servable: {problem}", style="yellow", highlight=False, markup=False)


@adapters_app.command("remove")
def adapters_remove(name: str, library: Path = LibraryOption) -> None:
    """Delete an adapter from the library (a running server stops offering it at once)."""
    from tunewright.library import AdapterLibrary

    AdapterLibrary(library).remove(name)
    console.print(f"removed {name} from {library}")


@feedback_app.command("export")
def feedback_export(
    db: Path = typer.Option(..., "--db", help="The server's feedback store (SQLite)."),
    out: Path = typer.Option(..., "-o", "--out", help="JSONL file to write."),
    export_format: str = typer.Option("chat", "--format", help="chat: corrections (and well-rated answers) as "
                                      "examples; preference: corrections as pairs (served answer rejected, correction "
                                      "chosen) and rated answers without one as KTO rows."),
    min_rating: int | None = typer.Option(None, help="chat: also export answers rated at least this (no correction)."),
    pairs_only: bool = typer.Option(False, "--pairs-only", help="preference: pairs only, no KTO rows (for dpo, orpo)."),
    dedupe_against: Path | None = typer.Option(None, help="Existing dataset; rows whose input it has are dropped."),
    config: Path | None = typer.Option(None, help="Project config; its task card drives label checks."),
) -> None:
    """Turn corrections (and well-rated answers) into new dataset rows, checked by `data check`."""
    from tunewright.feedback.export import export_feedback
    from tunewright.feedback.store import FeedbackStore

    if export_format not in ("chat", "preference"):
        raise TunewrightError(f"--format {export_format!r}: use chat or preference")
    if not db.is_file():
        raise TunewrightError(f"--db {db}: no such feedback store; `tunewright serve --feedback-db` writes it")
    task = load_config(config).task if config else TaskConfig(name="feedback", system_prompt="")
    if export_format == "preference":
        _export_preferences(FeedbackStore(db), out, task, pairs_only, dedupe_against)
        return
    result = export_feedback(FeedbackStore(db), out, task, min_rating, dedupe_against)
    for warning in result.warnings:
        err.print(warning, style="yellow", highlight=False, markup=False)
    console.print(f"wrote {result.written} rows to {out}: {result.corrections} corrections, "
                  f"{result.rated_answers} rated answers; {result.duplicates} already in the dataset")


def _export_preferences(store: FeedbackStore, out: Path, task: TaskConfig, pairs_only: bool,
                        dedupe_against: Path | None) -> None:
    from tunewright.feedback.preference_export import export_preferences

    result = export_preferences(store, out, task, pairs_only, dedupe_against)
    for warning in result.warnings:
        err.print(warning, style="yellow", highlight=False, markup=False)
    console.print(f"wrote {result.written} preference rows to {out}: {result.pairs} pairs (correction chosen, served "
                  f"answer rejected), {result.unpaired} KTO rows; {result.duplicates} already in the dataset")


def _keys(variable: str) -> set[str]:
    return {key.strip() for key in os.environ.get(variable, "").split(",") if key.strip()}
