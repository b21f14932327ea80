"""The training loss, computed without wasted work: the token prefix every row of a batch shares
(system prompt, chat-template header) runs once instead of once per row, and vocabulary logits are
computed only where a label follows. Exactly the mean next-token loss over assistant tokens.

Packed batches (one row, per-example position ids) and methods that change the sequence the model
sees (prompt and prefix tuning add virtual tokens) take the same loss without the shared prefix."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tunewright.chat import IGNORE_INDEX


def shared_prefix_loss(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of every labelled token given the tokens before it; with `weights`
    (one per token), the weighted mean."""
    rows, length = input_ids.shape
    targets, predicts = targets_of(labels)
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
    return _weighted_mean(output.logits, targets, predicts, weights, prefix)


def packed_loss(model: Any, input_ids: torch.Tensor, position_ids: torch.Tensor, labels: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """The same loss for examples packed into one row. With no attention mask, transformers reads the
    example boundaries from the position ids (each example restarts at 0) and builds a block-diagonal
    causal mask, so no token attends across examples; logits only where labels follow."""
    targets, predicts = targets_of(labels)
    output = model(input_ids=input_ids, position_ids=position_ids, logits_to_keep=predicts, use_cache=False)
    return _weighted_mean(output.logits, targets, predicts, weights, 0)


def plain_loss(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """The same loss from one ordinary forward pass; virtual tokens a method puts in front of the
    input (prompt tuning) are dropped from the logits before the loss."""
    targets, predicts = targets_of(labels)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    logits = logits[:, logits.shape[1] - input_ids.shape[1]:]
    return _weighted_mean(logits[predicts], targets, predicts, weights, 0)


def targets_of(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    targets = torch.full_like(labels, IGNORE_INDEX)
    targets[:, :-1] = labels[:, 1:]  # position i predicts token i + 1
    return targets, targets != IGNORE_INDEX


def _weighted_mean(logits: torch.Tensor, targets: torch.Tensor, predicts: torch.Tensor,
                   weights: torch.Tensor | None, prefix: int) -> torch.Tensor:
    """Mean (or weighted mean) cross-entropy; `logits` holds one row per predicting position."""
    logits = logits.reshape(-1, logits.shape[-1])
    kept = predicts[:, prefix:]
    if weights is None:
        weights = torch.ones(targets.shape, device=logits.device)
    token_weights = shifted_weights(weights)
    losses = F.cross_entropy(logits.float(), targets[:, prefix:][kept], reduction="none")
    chosen = token_weights[:, prefix:][kept]
    return (losses * chosen).sum() / chosen.sum()


def shifted_weights(weights: torch.Tensor) -> torch.Tensor:
    """The weight of the token each position predicts."""
    shifted = torch.zeros_like(weights)
    shifted[:, :-1] = weights[:, 1:]
    return shifted


def _shared_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor, predicts: torch.Tensor) -> int:
    """Leading positions where every row has the same real token and nothing needs a logit yet."""
    if input_ids.shape[0] < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(dim=0) & attention_mask.bool().all(dim=0) & ~predicts.any(dim=0)
    return int(same.int().cumprod(dim=0).sum())


def batch_loss(model: Any, inputs: dict[str, Any], share_prefix: bool) -> torch.Tensor:
    """The loss of one collated batch: packed, shared-prefix, or plain."""
    weights = inputs.get("weights")
    if "position_ids" in inputs:
        return packed_loss(model, inputs["input_ids"], inputs["position_ids"], inputs["labels"], weights)
    loss = shared_prefix_loss if share_prefix else plain_loss
    return loss(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"], weights)
