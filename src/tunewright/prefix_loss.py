"""The training loss, computed without wasted work: the token prefix every row of a batch shares
(system prompt, chat-template header) runs once instead of once per row, and vocabulary logits are
computed only where a label follows. Exactly the mean next-token loss over assistant tokens."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer

from tunewright.chat import IGNORE_INDEX


def shared_prefix_loss(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of every labelled token given the tokens before it; with `weights`
    (one per token), the weighted mean."""
    rows, length = input_ids.shape
    targets = torch.full_like(labels, IGNORE_INDEX)
    targets[:, :-1] = labels[:, 1:]  # position i predicts token i + 1
    predicts = targets != IGNORE_INDEX
    prefix = _shared_prefix_length(input_ids, attention_mask, predicts)
    kwargs: dict[str, Any] = {}
    if prefix > 0:
        cached = model(input_ids=input_ids[:1, :prefix], use_cache=True, logits_to_keep=1)
        cache = cached.cache
        cache.batch_repeat_interleave(rows)  # differentiable: gradients flow back to the prefix
        positions = torch.arange(prefix, length, device=input_ids.device).expand(rows, -1)
        kwargs = {"cache": cache, "position_ids": positions, "use_cache": True}
    output = model(
        input_ids=input_ids[:, prefix:],
        attention_mask=attention_mask,
        logits_to_keep=predicts[:, prefix:],
        **kwargs,
    )
    logits = output.logits.reshape(-1, output.logits.shape[-1])
    kept = predicts[:, prefix:]
    if weights is None:
        weights = torch.ones(labels.shape, device=logits.device)
    token_weights = torch.zeros_like(weights)
    token_weights[:, :-1] = weights[:, 1:]  # the weight of the token each position predicts
    losses = F.cross_entropy(logits.float(), targets[:, prefix:][kept], reduction="none")
    chosen = token_weights[:, prefix:][kept]
    return (losses * chosen).sum() / chosen.sum()


def _shared_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor, predicts: torch.Tensor) -> int:
    """Leading positions where every row has the same real token and nothing needs a logit yet."""
    if input_ids.shape[0] < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(dim=0) & attention_mask.bool().all(dim=0) & ~predicts.any(dim=0)
    return int(same.int().cumprod(dim=0).sum())


class PrefixSharingTrainer(Trainer):
    """Trainer with `shared_prefix_loss`. Subclassed because Trainer has no other hook that controls
    how the forward pass is run; everything else is Trainer as it is."""

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        loss = shared_prefix_loss(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"],
                                  inputs.get("weights"))
        return (loss, {"loss": loss}) if return_outputs else loss
