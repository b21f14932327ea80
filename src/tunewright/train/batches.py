"""Turning encoded examples into batches: right-padded rows (dynamic padding to the longest row of
the batch) or one packed row per batch with per-example position ids and no padding at all."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from tunewright.chat import IGNORE_INDEX

Row = dict[str, list[int]]  # input_ids, labels and label_span of one encoded example


class PadCollator:
    """Right-pads a batch to its longest row: pad id for inputs, IGNORE_INDEX for labels; with a
    label weight, also a per-token loss weight that is `label_weight` on each row's label span."""

    def __init__(self, pad_token_id: int, label_weight: float = 1.0) -> None:
        self.pad_token_id = pad_token_id
        self.label_weight = label_weight

    def __call__(self, rows: list[Row]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            length = len(row["input_ids"])
            input_ids[index, :length] = torch.tensor(row["input_ids"])
            labels[index, :length] = torch.tensor(row["labels"])
            attention_mask[index, :length] = 1
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
        if self.label_weight != 1.0:
            weights = torch.ones((len(rows), width))
            for index, row in enumerate(rows):
                if span := row.get("label_span"):
                    weights[index, span[0]:span[1]] = self.label_weight
            batch["weights"] = weights
        return batch


class PackCollator:
    """Concatenates a batch's examples into one row. Position ids restart at 0 for each example, which
    is how the model finds the boundaries (see loss.packed_loss); each example's first label is
    masked so no token is predicted across a boundary."""

    def __init__(self, label_weight: float = 1.0) -> None:
        self.label_weight = label_weight

    def __call__(self, rows: list[Row]) -> dict[str, torch.Tensor]:
        input_ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        weights: list[float] = []
        for row in rows:
            length = len(row["input_ids"])
            input_ids += row["input_ids"]
            labels += [IGNORE_INDEX, *row["labels"][1:]]
            positions += range(length)
            row_weights = [1.0] * length
            if span := row.get("label_span"):
                row_weights[span[0]:span[1]] = [self.label_weight] * (span[1] - span[0])
            weights += row_weights
        batch = {"input_ids": torch.tensor([input_ids]), "labels": torch.tensor([labels]),
                 "position_ids": torch.tensor([positions])}
        if self.label_weight != 1.0:
            batch["weights"] = torch.tensor([weights])
        return batch


class LengthGroupedOrder(torch.utils.data.Sampler[int]):
    """The order examples are drawn in: each epoch a seeded shuffle, cut into groups of 50 global
    batches, each group sorted longest first (so a batch holds similar lengths and little padding),
    then the group's batches shuffled. It depends only on the seed, the epoch and the global batch, so
    one process and N processes (each taking every N-th per-process batch) see the same examples per
    step, and a resumed run sees the same order as an uninterrupted one."""

    def __init__(self, lengths: list[int], global_batch: int, seed: int) -> None:
        self.lengths = lengths
        self.global_batch = global_batch
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        group = 50 * self.global_batch
        result: list[int] = []
        for start in range(0, len(order), group):
            ranked = sorted(order[start:start + group], key=lambda index: -self.lengths[index])
            batches = [ranked[i:i + self.global_batch] for i in range(0, len(ranked), self.global_batch)]
            for position in torch.randperm(len(batches), generator=generator).tolist():
                result += batches[position]
        return iter(result)
