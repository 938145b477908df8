"""oneDNN's pre-packed products (hf_elmo/models/elmo/packed_linear.py, and the AWD-LSTM folder's identical copy):
the same numbers as ``F.linear`` whatever the row count, few distinct row counts for oneDNN to compile kernels for
(each costs ~0.5 MB for the rest of the process), and the cache that keeps packed weights only while they are valid.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hf_elmo.models.elmo import packed_linear as pl

requires_onednn = pytest.mark.skipif(not pl.onednn_available(), reason="this torch has no oneDNN")


@requires_onednn
@pytest.mark.parametrize("rows", [1, 7, 64, 65, 130, 1024, 1025, 1088, 2500])
@pytest.mark.parametrize("packed", [True, False])
def test_equals_linear_at_any_row_count(rows, packed):
    torch.manual_seed(rows)
    x, weight, bias = torch.randn(rows, 24), torch.randn(40, 24), torch.randn(40)
    w = pl.pack_weight(weight) if packed else weight
    for bucket in (True, False):
        got = pl.packed_linear(x, w, bias, bucket=bucket)
        assert got.shape == (rows, 40)
        torch.testing.assert_close(got, F.linear(x, weight, bias), rtol=1e-5, atol=1e-5)


@requires_onednn
def test_a_transposed_plain_weight_is_read_as_it_is():
    x, weight = torch.randn(9, 30), torch.randn(30, 12)
    torch.testing.assert_close(pl.packed_linear(x, weight.T, bucket=False), x @ weight, rtol=1e-5, atol=1e-5)


@requires_onednn
def test_few_row_counts_reach_onednn(monkeypatch):
    """Exact counts up to 64 rows (a recurrence's), above that multiples of 64 up to CHUNK_ROWS and chunks of
    CHUNK_ROWS: whatever the inputs, at most 16 row counts above 64 per weight, and none below 64 from a chunked
    product's remainder."""
    seen = set()
    real = pl._onednn

    def spy(rows, weight, bias):
        seen.add(rows.shape[0])
        return real(rows, weight, bias)

    monkeypatch.setattr(pl, "_onednn", spy)
    weight = pl.pack_weight(torch.randn(8, 4))
    for n in list(range(65, 3 * pl.CHUNK_ROWS + 3, 7)) + [pl.CHUNK_ROWS + 1, 2 * pl.CHUNK_ROWS + 3]:
        pl.packed_linear(torch.randn(n, 4), weight)
    assert all(r % 64 == 0 and 64 <= r <= pl.CHUNK_ROWS for r in seen), sorted(seen)
    assert len(seen) <= pl.CHUNK_ROWS // 64
    seen.clear()
    for n in range(1, 65):
        pl.packed_linear(torch.randn(n, 4), weight)
    assert seen == set(range(1, 65))


@requires_onednn
def test_the_cache_packs_once_and_again_when_the_weight_changes():
    cache = pl.PackedLinearCache()
    linear = torch.nn.Linear(6, 5)
    x = torch.randn(3, 6)
    with torch.no_grad():
        first = cache.linear(x, linear.weight, linear.bias)
        assert len(cache._entries) == 1
        packed = next(iter(cache._entries.values()))[2]
        cache.linear(x, linear.weight, linear.bias)
        assert next(iter(cache._entries.values()))[2] is packed  # kept
        linear.weight.mul_(2)  # an in-place edit bumps the version counter
        second = cache.linear(x, linear.weight, linear.bias)
    assert next(iter(cache._entries.values()))[2] is not packed
    torch.testing.assert_close(second, F.linear(x, linear.weight, linear.bias), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(first, second)
    cache.enabled = False  # training: torch's own product, a gradient through it
    out = cache.linear(x, linear.weight, linear.bias)
    assert out.requires_grad


@requires_onednn
def test_awd_lstm_lm_decodes_through_the_cache_in_eval_and_calls_a_hooked_decoder_as_a_module():
    from hf_elmo.models.awd_lstm import AWDLSTMConfig, AWDLSTMForLanguageModeling

    torch.manual_seed(0)
    model = AWDLSTMForLanguageModeling(AWDLSTMConfig.for_language_model(vocab_size=50, emb_size=8, hidden_size=12,
                                                                        num_layers=2)).eval()
    ids = torch.randint(0, 50, (2, 5))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
        assert len(model._packed_cache._entries) == 1
        raw = model(input_ids=ids).raw_output
        torch.testing.assert_close(logits, model.decoder(raw), rtol=1e-5, atol=1e-5)
        calls = []
        handle = model.decoder.register_forward_hook(lambda *a: calls.append(1))
        model(input_ids=ids)
        handle.remove()
    assert calls == [1]
    model.train()
    assert not model._packed_cache._entries and not model._packed_cache.enabled
