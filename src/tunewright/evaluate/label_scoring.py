"""Label scoring: instead of decoding the label greedily, the model's log-likelihood of each candidate
label's full spelling (before + label + after, then the end of turn for bare-label answers) after the
prompt, all candidates of a batch of prompts in one pass. Softmax over a row's candidates gives a
probability per label that sums to 1. Each prompt runs once; its key/value cache is copied to every
candidate label, so a label costs only its own few tokens."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from tunewright.chat import prompt_ids
from tunewright.evaluate.constrained import LabelFormat
from tunewright.evaluate.generate import Chat

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tunewright.modeling import CausalLM


def label_spelling(tokenizer: PreTrainedTokenizerBase, label: str, fmt: LabelFormat, stop_id: int) -> list[int]:
    """The tokens the answer starts with when its label is `label` (as the label trie spells them)."""
    ids = list(tokenizer.encode(fmt.before + label + fmt.after, add_special_tokens=False))
    return [*ids, stop_id] if fmt.label_only else ids


@torch.inference_mode()
def score_labels(model: CausalLM, tokenizer: PreTrainedTokenizerBase, chats: list[Chat],
                 shortlists: Sequence[Sequence[str]], fmt: LabelFormat, stop_id: int, batch_size: int,
                 on_batch: Callable[[int], None] | None = None) -> list[dict[str, float]]:
    """For each chat, {label: probability} over its shortlist (softmax of the labels' summed
    log-likelihoods), in input order."""
    spellings: dict[str, list[int]] = {}
    for shortlist in shortlists:
        for label in shortlist:
            if label not in spellings:
                spellings[label] = label_spelling(tokenizer, label, fmt, stop_id)
    encoded = [prompt_ids(tokenizer, chat) for chat in chats]
    order = sorted(range(len(chats)), key=lambda i: len(encoded[i]))
    result: list[dict[str, float]] = [{} for _ in chats]
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        pairs = [(row, label) for row, index in enumerate(batch) for label in shortlists[index]]
        totals = _batch_log_likelihoods(model, [encoded[i] for i in batch],
                                        [(row, spellings[label]) for row, label in pairs], stop_id)
        for row, index in enumerate(batch):
            chosen = [k for k, (r, _) in enumerate(pairs) if r == row]
            probabilities = torch.softmax(totals[chosen], dim=0).tolist()
            result[index] = {pairs[k][1]: p for k, p in zip(chosen, probabilities, strict=True)}
        if on_batch is not None:
            on_batch(len(batch))
    return result


def _batch_log_likelihoods(model: CausalLM, prompts: list[list[int]],
                           continuations: list[tuple[int, list[int]]], pad_id: int) -> torch.Tensor:
    """log P(continuation | prompt[row]) for each (row, continuation token ids)."""
    device = model.device
    width = max(len(ids) for ids in prompts)
    prompt_input = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros_like(prompt_input)
    for row, ids in enumerate(prompts):  # left padding: every prompt ends at the last column
        prompt_input[row, width - len(ids):] = torch.tensor(ids)
        prompt_mask[row, width - len(ids):] = 1
    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=prompt_input.to(device), attention_mask=prompt_mask.to(device),
                position_ids=positions.to(device), use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # next-token log-probs after each prompt
    rows = torch.tensor([row for row, _ in continuations])
    cache = out.cache
    cache.batch_select_indices(rows.to(device))  # one copy of the prompt's cache per candidate label
    longest = max(len(ids) for _, ids in continuations)
    label_input = torch.full((len(continuations), longest), pad_id, dtype=torch.long)
    label_mask = torch.zeros_like(label_input)
    for k, (_, ids) in enumerate(continuations):
        label_input[k, :len(ids)] = torch.tensor(ids)
        label_mask[k, :len(ids)] = 1
    lengths = prompt_mask.sum(-1)[rows]
    label_positions = lengths.unsqueeze(1) + torch.arange(longest).unsqueeze(0)
    mask = torch.cat([prompt_mask[rows], label_mask], dim=1)
    logits = model(input_ids=label_input.to(device), attention_mask=mask.to(device),
                   position_ids=label_positions.to(device), cache=cache, use_cache=True).logits.float()
    totals = first[rows.to(device), label_input[:, 0].to(device)]
    if longest > 1:
        # log-softmax at the label's own tokens only: gather minus logsumexp, no vocabulary-wide copy
        predicting = logits[:, :-1]
        following = predicting.gather(-1, label_input[:, 1:].unsqueeze(-1).to(device)).squeeze(-1)
        following = following - predicting.logsumexp(-1)
        totals = totals + (following * label_mask[:, 1:].to(device)).sum(-1)
    return totals.cpu()
