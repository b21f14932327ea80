"""GrowingLayer keeps exactly what DynamicLayer's concatenation keeps, through row selection, trimming
and reallocation, and the model decodes the same with it."""

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from tunewright.serve.kv_cache import SPARE, GrowingLayer, growing, plain_dynamic


def _states(rows: int, tokens: int) -> torch.Tensor:
    return torch.randn(rows, 2, tokens, 4)


def test_appends_match_concatenation_across_reallocations() -> None:
    torch.manual_seed(0)
    plain, grown = DynamicLayer(), GrowingLayer()
    for step in range(3 * SPARE):
        keys, values = _states(3, 5 if step == 0 else 1), _states(3, 5 if step == 0 else 1)
        expected = plain.update(keys, values)
        got = grown.update(keys, values)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    assert grown.get_seq_length() == plain.get_seq_length() == 5 + 3 * SPARE - 1


def test_row_selection_trimming_and_earlier_views() -> None:
    torch.manual_seed(1)
    plain, grown = DynamicLayer(), GrowingLayer()
    first = _states(4, 6)
    plain.update(first, first)
    grown.update(first, first)
    held = grown.keys  # a view handed out earlier must not change when later steps write
    snapshot = held.clone()
    for layer in (plain, grown):
        layer.batch_select_indices(torch.tensor([0, 2, 3]))
        layer.keys, layer.values = layer.keys[..., 2:, :], layer.values[..., 2:, :]
    for _ in range(SPARE + 3):
        step = _states(3, 1)
        expected, got = plain.update(step, step), grown.update(step, step)
        assert torch.equal(got[0], expected[0])
    assert torch.equal(held, snapshot)


def test_growing_converts_plain_layers_in_place_without_copying() -> None:
    keys = _states(2, 3)
    cache = DynamicCache(ddp_cache_data=[(keys, keys), (keys, keys)])
    before = cache.layers[0].keys
    grown = growing(cache)
    assert grown is cache and all(type(layer) is GrowingLayer for layer in cache.layers)
    assert cache.layers[0].keys.data_ptr() == before.data_ptr() and plain_dynamic(cache)
    assert cache.get_seq_length() == 3
