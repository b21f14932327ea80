"""A key/value cache layer that grows by writing into spare room instead of concatenating. transformers'
DynamicLayer copies a layer's whole cache (`torch.cat`) on every decode step; for a 32-row batch of the
packaged model that was about a quarter of each step. GrowingLayer keeps each tensor in a buffer with room
for SPARE more positions along the sequence axis, writes a step's states into it and hands attention a
view; it reallocates (one copy, like one concatenation) only when the room runs out. Anything that sets
`keys` / `values` directly (row selection, padding on a join, trimming padding) just replaces the
buffer, with no room until the next step makes some."""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicLayer

SPARE = 64  # positions of room added when a buffer is full: a reallocation every 64 steps of decoding


class _Grown:
    """One tensor [B, H, T, D] held in a buffer [B, H, T + room, D]."""

    __slots__ = ("buffer", "length")

    def __init__(self, tensor: torch.Tensor | None) -> None:
        self.buffer, self.length = tensor, 0 if tensor is None else tensor.shape[-2]

    def view(self) -> torch.Tensor | None:
        if self.buffer is None or self.length == self.buffer.shape[-2]:
            return self.buffer
        return self.buffer[..., :self.length, :]

    def append(self, states: torch.Tensor) -> torch.Tensor:
        if self.buffer is None or self.buffer.dim() != states.dim() or self.length == 0:  # nothing held yet
            self.buffer, self.length = states.new_empty((*states.shape[:2], 0, states.shape[-1])), 0
        added = states.shape[-2]
        if self.buffer.shape[-2] - self.length < added:
            shape = (*self.buffer.shape[:2], self.length + added + SPARE, self.buffer.shape[-1])
            grown = self.buffer.new_empty(shape)
            grown[..., :self.length, :] = self.buffer[..., :self.length, :]
            self.buffer = grown
        self.buffer[..., self.length:self.length + added, :] = states
        self.length += added
        return self.buffer[..., :self.length, :]


class GrowingLayer(DynamicLayer):
    """DynamicLayer's behaviour (every method reads and sets `keys` / `values`) with amortised growth."""

    def __init__(self, keys: torch.Tensor | None = None, values: torch.Tensor | None = None) -> None:
        super().__init__()
        self.keys, self.values = keys, values
        if keys is not None:
            self.device, self.is_initialized = keys.device, True

    @classmethod
    def of(cls, layer: DynamicLayer) -> GrowingLayer:
        return cls(layer.keys, layer.values) if layer.is_initialized else cls()

    @property  # a plain attribute in the base class
    def keys(self) -> Any:
        return self._keys.view()

    @keys.setter
    def keys(self, tensor: torch.Tensor | None) -> None:
        self._keys = _Grown(tensor)

    @property
    def values(self) -> Any:
        return self._values.view()

    @values.setter
    def values(self, tensor: torch.Tensor | None) -> None:
        self._values = _Grown(tensor)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.device, self.is_initialized = key_states.device, True
        return self._keys.append(key_states), self._values.append(value_states)


def growing(cache: Any) -> Any:
    """The cache with its plain dynamic layers made GrowingLayers (in place; the tensors are not copied).
    Sliding-window and other layer types are left as they are."""
    cache.layers = [GrowingLayer.of(layer) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def plain_dynamic(cache: Any) -> bool:
    """Every layer keeps the full history in plain tensors (can be padded, stacked and cut)."""
    return all(type(layer) in (DynamicLayer, GrowingLayer) for layer in cache.layers)
