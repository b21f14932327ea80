"""The baseline candidates, by name: each answers the test split without training, one reply per test
example. Adding one is a function taking `BaselineInputs` (here or in its own module), one line in
`BASELINES`, and its name in `config.BaselineName` (the config validates names without importing this)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tunewright.config import Config
from tunewright.evaluate.candidates import few_shot_chats, pick_shots, retrieved_few_shot_chats, zero_shot_chats
from tunewright.evaluate.generate import Chat
from tunewright.records import Example
from tunewright.runs import RunPaths, write_json


@dataclass(frozen=True)
class BaselineInputs:
    config: Config
    run: RunPaths  # where a baseline writes what it showed the model (eval/*.json)
    test: list[Example]
    train: list[Example]
    # the base model's replies to chats, decoded like every candidate's (labels constrained, same budget)
    generate: Callable[[list[Chat]], list[str]]


Baseline = Callable[[BaselineInputs], list[str]]


def zero_shot(inputs: BaselineInputs) -> list[str]:
    return inputs.generate(zero_shot_chats(inputs.test, inputs.config.task.system_prompt))


def few_shot(inputs: BaselineInputs) -> list[str]:
    config = inputs.config
    shots = pick_shots(inputs.train, config.eval.few_shot_k, config.training.seed)
    write_json(inputs.run.eval_dir / "few_shot_examples.json", [shot.id for shot in shots])
    return inputs.generate(few_shot_chats(inputs.test, shots, config.task.system_prompt))


def retrieved_few_shot(inputs: BaselineInputs) -> list[str]:
    from tunewright.retrieval import nearest, packaged_embedder

    config, test = inputs.config, inputs.test
    neighbours = nearest(packaged_embedder(), test, inputs.train, config.eval.few_shot_k)
    shown = {example.id: [shot.id for shot in shots] for example, shots in zip(test, neighbours, strict=True)}
    write_json(inputs.run.eval_dir / "retrieved_examples.json", shown)
    return inputs.generate(retrieved_few_shot_chats(test, neighbours, config.task.system_prompt))


BASELINES: dict[str, Baseline] = {
    "zero_shot": zero_shot,
    "few_shot": few_shot,
    "retrieved_few_shot": retrieved_few_shot,
}
