"""Choosing one row's next token: OpenAI's penalties and logit bias, the row's own constraints
(transformers `LogitsProcessor`s called on that row alone: ids [1, t], scores [1, V]), log probabilities,
then greedy or seeded sampling with temperature, top-k and top-p (transformers' own warpers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper


@dataclass(frozen=True)
class Sampling:
    """How one row picks its tokens; the default is greedy decoding."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0  # seeds the row's own generator, so a request repeats whatever batch it shares
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()
    top_logprobs: int | None = None  # None: no log probabilities; else how many alternatives with each token

    @property
    def plain_greedy(self) -> bool:
        """Nothing to do beyond an argmax over the raw logits (the batched fast path)."""
        return (self.temperature == 0 and self.presence_penalty == 0 and self.frequency_penalty == 0
                and not self.logit_bias and self.top_logprobs is None)


GREEDY = Sampling()


@dataclass(frozen=True)
class Token:
    id: int
    logprob: float | None = None  # log probability after penalties and constraints, before temperature
    top: tuple[tuple[int, float], ...] = ()  # the likeliest tokens there with theirs


def choose(logits: torch.Tensor, sampling: Sampling, processors: Sequence[LogitsProcessor], context: list[int],
           prompt_width: int, generator: torch.Generator | None) -> Token:
    """The next token of one row from its last logits [V]; `context` is the row's prompt and the tokens
    generated so far (the first `prompt_width` are the prompt)."""
    ids = torch.tensor([context], dtype=torch.long, device=logits.device)
    scores = _adjusted(logits.float()[None, :].clone(), sampling, processors, ids, context[prompt_width:])
    if sampling.temperature == 0:
        token = int(scores[0].argmax())
    else:
        warped = TemperatureLogitsWarper(sampling.temperature)(ids, scores.clone())
        if sampling.top_k:
            warped = TopKLogitsWarper(sampling.top_k)(ids, warped)
        if sampling.top_p < 1:
            warped = TopPLogitsWarper(sampling.top_p)(ids, warped)
        token = int(torch.multinomial(torch.softmax(warped[0], dim=-1).cpu(), 1, generator=generator))
    if sampling.top_logprobs is None:
        return Token(token)
    logprobs = torch.log_softmax(scores[0], dim=-1)
    values, indices = logprobs.topk(min(sampling.top_logprobs, logprobs.shape[-1]))
    top = tuple((int(i), float(v)) for i, v in zip(indices, values, strict=True) if v > float("-inf"))
    return Token(token, float(logprobs[token]), top)


def _adjusted(scores: torch.Tensor, sampling: Sampling, processors: Sequence[LogitsProcessor], ids: torch.Tensor,
              generated: list[int]) -> torch.Tensor:
    """Scores [1, V] after OpenAI's penalties (on the tokens generated so far), the logit bias and the
    row's constraints."""
    if generated and (sampling.presence_penalty or sampling.frequency_penalty):
        counts = torch.bincount(torch.tensor(generated), minlength=scores.shape[-1])[: scores.shape[-1]]
        counts = counts.to(scores.device, scores.dtype)[None, :]
        scores -= sampling.frequency_penalty * counts + sampling.presence_penalty * (counts > 0).to(scores.dtype)
    for token_id, bias in sampling.logit_bias:
        if 0 <= token_id < scores.shape[-1]:
            scores[0, token_id] += bias
    for processor in processors:
        scores = processor(ids, scores)
    return scores


def generator_for(sampling: Sampling) -> torch.Generator | None:
    """A CPU generator seeded for this row (sampling draws on the CPU so seeds repeat on any device)."""
    return torch.Generator().manual_seed(sampling.seed) if sampling.temperature > 0 else None
