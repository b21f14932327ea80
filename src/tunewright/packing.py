"""Turning encoded examples into batches: right-padded rows (dynamic padding to the longest row of
the batch) or one packed row per batch with per-example position ids and no padding at all."""

from __future__ import annotations

import torch

from tunewright.chat import IGNORE_INDEX

Row = dict[str, list[int]]


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
    is how the model finds the boundaries (see prefix_loss.packed_loss); each example's first label is
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
