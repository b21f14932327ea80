"""The prompts each candidate answers: the fine-tuned model and the base model zero-shot both see the
task's system prompt and the input; few-shot also sees k training examples as earlier turns, random
(few_shot) or the k most similar to the input (retrieved_few_shot)."""

from __future__ import annotations

import random

from tunewright.chat import with_system_prompt
from tunewright.evaluate.generate import Chat
from tunewright.records import Example


def zero_shot_chats(test: list[Example], system_prompt: str) -> list[Chat]:
    return [with_system_prompt(example.prompt, system_prompt) for example in test]


def pick_shots(train: list[Example], k: int, seed: int) -> list[Example]:
    """k training examples, seeded, taking labels in turn so every label is shown when k allows."""
    rng = random.Random(seed)
    by_label: dict[str | None, list[Example]] = {}
    for example in sorted(train, key=lambda e: e.id):
        by_label.setdefault(example.label, []).append(example)
    pools = [rng.sample(rows, len(rows)) for _, rows in sorted(by_label.items(), key=lambda kv: str(kv[0]))]
    shots: list[Example] = []
    while len(shots) < k and any(pools):
        for pool in pools:
            if pool and len(shots) < k:
                shots.append(pool.pop())
    rng.shuffle(shots)
    return shots


def few_shot_chats(test: list[Example], shots: list[Example], system_prompt: str) -> list[Chat]:
    demonstrations = [message for shot in shots for message in shot.messages if message.role != "system"]
    chats = []
    for example in test:
        # An example's own system message stays first: chat templates expect the system turn there.
        system = example.prompt[:1] if example.prompt and example.prompt[0].role == "system" else ()
        turns = (*system, *demonstrations, *example.prompt[len(system):])
        chats.append(with_system_prompt(turns, system_prompt))
    return chats


def retrieved_few_shot_chats(test: list[Example], neighbours: list[list[Example]],
                             system_prompt: str) -> list[Chat]:
    """Like few-shot, but each test input sees its own k most similar training examples
    (retrieval.py), the closest one last."""
    chats = []
    for example, shots in zip(test, neighbours, strict=True):
        chats.extend(few_shot_chats([example], shots, system_prompt))
    return chats
