"""The Trainer the recipe runs: transformers' Trainer with tunewright's loss (`loss.batch_loss`, made a
global token mean under DDP) and a reproducible length-grouped order (`batches.LengthGroupedOrder`)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from tunewright.timing import stage
from tunewright.train.batches import LengthGroupedOrder
from tunewright.train.loss import batch_loss, shifted_weights, targets_of


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

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        with stage("validation"):  # the validation passes' share of the training time
            return super().evaluate(*args, **kwargs)

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
    _, predicts = targets_of(inputs["labels"])
    weights = inputs.get("weights")
    local = predicts.sum().float() if weights is None else shifted_weights(weights)[predicts].sum()
    total = local.detach().clone()
    torch.distributed.all_reduce(total)
    return loss * local / total * torch.distributed.get_world_size()
