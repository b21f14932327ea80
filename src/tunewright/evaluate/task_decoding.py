"""How every candidate decodes for this task: the fine-tuned model's prompts (task.neighbours), the label
trie and its per-input shortlists, the output schema's processors (one per input with copied fields),
the trained artifact loaded, and the answers generated under them, shared by the test evaluation and
the sweep's validation passes."""

from __future__ import annotations

from typing import Any

from tunewright.chat import answer_stop_id, stop_token_ids
from tunewright.config import Config
from tunewright.copy_spans import copy_source
from tunewright.evaluate.constrained import LabelFormat, LabelTrie, build_trie, label_format
from tunewright.evaluate.generate import Chat, generate_replies
from tunewright.evaluate.label_answers import Prompted
from tunewright.grammar import ProcessorFactory, copy_span_factories, schema_processor_factory
from tunewright.modeling import load_tokenizer, resolve_base_model
from tunewright.progress import progress_bar
from tunewright.records import Example
from tunewright.runs import RunPaths


def finetuned_prompts(config: Config, train: list[Example]) -> Prompted:
    """How the fine-tuned model's inputs become its prompts: as they are, or (task.neighbours) showing their
    nearest training examples, exactly as in training (train/recipe.prompted_splits)."""
    if not config.task.neighbours:
        return list
    from tunewright.retrieval import Neighbours, packaged_embedder

    return Neighbours(train, config.task.neighbours, packaged_embedder()).show


def label_constraint(config: Config, tokenizer: Any, train: list[Example]) -> LabelTrie | None:
    """The label trie every candidate decodes with, when the task has labels and its training answers
    agree on where the label sits; None (free generation) otherwise."""
    found = _label_decoding(config, tokenizer, train)
    return None if found is None else build_trie(tokenizer, config.task.labels, *found)


def _label_decoding(config: Config, tokenizer: Any, train: list[Example]) -> tuple[LabelFormat, int] | None:
    """Where the label sits in the answers and the stop token after them, when labels are decoded
    constrained; None otherwise."""
    task = config.task
    if not (config.eval.constrain_labels and task.labels and task.label_regex and train) or task.output_schema:
        return None  # with an output schema the schema constrains the whole answer, labels included
    fmt = label_format([example.reference for example in train], task.label_regex)
    return None if fmt is None else (fmt, answer_stop_id(tokenizer))


def schema_constraints(config: Config, model: Any, tokenizer: Any, chats: list[Chat]) -> list[ProcessorFactory] | None:
    """The output-schema processors every candidate decodes with (eval.constrain_schema), one factory per
    chat: the schema, or with constrained copies the schema with each copied field restricted to spans
    of that chat's input (copy_spans.copy_source); None when answers decode free."""
    schema = config.task.output_schema
    if schema is None or not config.eval.constrain_schema:
        return None
    stops, width = stop_token_ids(tokenizer), model.config.vocab_size
    if copied := constrained_copies(config):
        sources = [copy_source((turn["role"], turn["content"]) for turn in chat) for chat in chats]
        return copy_span_factories(tokenizer, schema, copied, sources, stops, width)
    return [schema_processor_factory(tokenizer, schema, stops, width)] * len(chats)


def constrained_copies(config: Config) -> list[str]:
    """The task.copied_fields patterns decoded as spans of the input (eval.constrain_copies, under the
    output schema); empty when copied values decode free."""
    task, settings = config.task, config.eval
    constrained = task.output_schema is not None and settings.constrain_schema and settings.constrain_copies
    return list(task.copied_fields) if constrained else []


def narrowed_constraints(config: Config, tokenizer: Any, test: list[Example],
                         train: list[Example]) -> list[LabelTrie] | None:
    """With eval.retrieval_candidates = N: one trie per test input over the labels of its N most similar
    training examples (the retrieval shortlist), so the model picks among likely labels only."""
    task = config.task
    count = config.eval.retrieval_candidates
    found = _label_decoding(config, tokenizer, train) if count else None
    if found is None:
        return None
    from tunewright.retrieval import nearest, packaged_embedder

    fmt, stop = found
    tries = {}
    result = []
    for shots in nearest(packaged_embedder(), test, train, count):
        shortlist = tuple(sorted({shot.label for shot in shots if shot.label in task.labels}))
        if shortlist not in tries:
            tries[shortlist] = build_trie(tokenizer, list(shortlist) or task.labels, fmt, stop)
        result.append(tries[shortlist])
    return result


def load_finetuned(config: Config, run: RunPaths) -> tuple[Any, Any]:
    from tunewright.methods import METHODS, artifact_dir, load_trained

    artifact = artifact_dir(config, run)
    # The artifact's own tokenizer carries the chat template it was trained with.
    tokenizer = load_tokenizer(artifact)
    model = load_trained(resolve_base_model(config.model.base), artifact, config.method.name)
    if METHODS[config.method.name].facts.merges_exactly:
        # Merged in memory only to generate faster; the saved adapter is what is evaluated.
        model = model.merge_and_unload()
    return model, tokenizer


def generate_answers(config: Config, model: Any, tokenizer: Any, chats: list[Chat], name: str,
              show_progress: bool, constraint: LabelTrie | None = None,
              row_constraints: list[LabelTrie] | None = None) -> list[str]:
    progress = progress_bar(f"eval {name}", disable=not show_progress)
    with progress:
        task_id = progress.add_task(name, total=len(chats))
        replies = generate_replies(
            model, tokenizer, chats, config.eval.max_new_tokens, config.eval.batch_size,
            on_batch=lambda done: progress.advance(task_id, done), constraint=constraint,
            row_constraints=row_constraints, row_schemas=schema_constraints(config, model, tokenizer, chats),
        )
    return [reply.text for reply in replies]
