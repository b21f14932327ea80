"""The training loss, computed without wasted work: the token prefix every row of a batch shares
(system prompt, chat-template header) runs once instead of once per row, and vocabulary logits are
computed only where a label follows. Exactly the mean next-token loss over assistant tokens.

Packed batches (one row, per-example position ids) and methods that change the sequence the model
sees (prompt and prefix tuning add virtual tokens) take the same loss without the shared prefix."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import Trainer

from tunewright.chat import IGNORE_INDEX
from tunewright.train.batches import LengthGroupedOrder


def shared_prefix_loss(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       labels: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of every labelled token given the tokens before it; with `weights`
    (one per token), the weighted mean."""
    rows, length = input_ids.shape
    targets, predicts = _targets(labels)
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
    targets, predicts = _targets(labels)
    output = model(input_ids=input_ids, position_ids=position_ids, logits_to_keep=predicts, use_cache=False)
    return _weighted_mean(output.logits, targets, predicts, weights, 0)


def plain_loss(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """The same loss from one ordinary forward pass; virtual tokens a method puts in front of the
    input (prompt tuning) are dropped from the logits before the loss."""
    targets, predicts = _targets(labels)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    logits = logits[:, logits.shape[1] - input_ids.shape[1]:]
    return _weighted_mean(logits[predicts], targets, predicts, weights, 0)


def _targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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
    token_weights = _shifted(weights)
    losses = F.cross_entropy(logits.float(), targets[:, prefix:][kept], reduction="none")
    chosen = token_weights[:, prefix:][kept]
    return (losses * chosen).sum() / chosen.sum()


def _shifted(weights: torch.Tensor) -> torch.Tensor:
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


class PrefixSharingTrainer(Trainer):
    """Trainer with `batch_loss` and a reproducible length-grouped order. Subclassed because Trainer
    has no other hook that controls how the forward pass is run; everything else is Trainer as it is."""

    def __init__(self, *args: Any, share_prefix: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.share_prefix = share_prefix

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        # Trainer's length-grouped sampler groups by the per-process batch and draws from the global
        # RNG; this order depends only on the seed, epoch and global batch (see LengthGroupedOrder).
        dataset: Any = train_dataset if train_dataset is not None else self.train_dataset
        args = self.args
        return LengthGroupedOrder([len(row["input_ids"]) for row in dataset],
                                  args.train_batch_size * args.gradient_accumulation_steps * args.world_size,
                                  args.data_seed if args.data_seed is not None else args.seed)

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        loss = batch_loss(model, inputs, self.share_prefix)
        if model.training and torch.distributed.is_available() and torch.distributed.is_initialized():
            loss = _global_token_mean(loss, inputs)
        return (loss, {"loss": loss}) if return_outputs else loss


def _global_token_mean(loss: torch.Tensor, inputs: dict[str, Any]) -> torch.Tensor:
    """Rescale a process's token mean so that DDP's average of gradients over processes is the
    gradient of the mean over every token of the global batch, as in one process (ranks hold
    different numbers of answer tokens, so a plain mean of per-rank means would not be)."""
    _, predicts = _targets(inputs["labels"])
    weights = inputs.get("weights")
    local = predicts.sum().float() if weights is None else _shifted(weights)[predicts].sum()
    total = local.detach().clone()
    torch.distributed.all_reduce(total)
    return loss * local / total * torch.distributed.get_world_size()
