"""The fused, blocked linear + cross-entropy of the LM heads (``fused_linear_cross_entropy``): the loss and every
gradient equal ``F.cross_entropy`` over the full logits (1e-6 relative, float32), for the function alone and inside
both language models (AWD-LSTM's tied decoder, ELMo's softmax), under bf16 autocast too; a training step with
labels takes it by default and evaluation reaches it with ``return_logits=False``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from awd_lstm_testing import no_dropout, one_thread
from awd_lstm_testing import tiny_model as tiny_awd
from conftest import randomize_, tiny_config
from hf_elmo import AWDLSTMForLanguageModeling, ElmoForLanguageModeling
from hf_elmo.models.awd_lstm.modeling_awd_lstm import fused_linear_cross_entropy


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def leaves(n: int = 50, dim: int = 12, vocab: int = 300, bias: bool = True, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, dim, generator=gen).requires_grad_()
    weight = torch.randn(vocab, dim, generator=gen).requires_grad_()
    b = torch.randn(vocab, generator=gen).requires_grad_() if bias else None
    targets = torch.randint(0, vocab, (n,), generator=gen)
    targets[::5] = -100
    return hidden, weight, b, targets


@pytest.mark.parametrize("block_rows", [1, 7, 50, 64])
@pytest.mark.parametrize("bias", [True, False])
def test_loss_and_gradients_equal_cross_entropys(block_rows, bias):
    hidden, weight, b, targets = leaves(bias=bias)
    params = [t for t in (hidden, weight, b) if t is not None]
    want = F.cross_entropy(F.linear(hidden, weight, b), targets)
    want_grads = torch.autograd.grad(want, params)
    got = fused_linear_cross_entropy(hidden, weight, b, targets, block_rows=block_rows)
    got_grads = torch.autograd.grad(got * 3.0, params)  # the upstream gradient is applied
    assert relative(got, want) <= 1e-6
    for g, w in zip(got_grads, want_grads):
        assert relative(g, 3.0 * w) <= 1e-6


def test_a_unit_upstream_gradient_returned_as_is_stays_right_through_accumulation_and_a_retained_graph():
    """With ``loss.backward()`` the saved gradients are handed to autograd unscaled: a tied weight (one tensor used
    as input and decoder) still gets both contributions, a retained graph gives the same gradients again, and a
    later scaled pass is scaled."""
    hidden, weight, b, targets = leaves(bias=True)
    rows = torch.randint(0, weight.shape[0], (hidden.shape[0],), generator=torch.Generator().manual_seed(1))

    def loss_of(fused: bool) -> torch.Tensor:
        tied_input = F.embedding(rows, weight) + hidden  # the weight read twice, as AWD-LSTM's tied decoder
        if fused:
            return fused_linear_cross_entropy(tied_input, weight, b, targets, block_rows=7)
        return F.cross_entropy(F.linear(tied_input, weight, b), targets)

    want = torch.autograd.grad(loss_of(False), [hidden, weight, b])
    loss = loss_of(True)
    loss.backward(retain_graph=True)
    first = [t.grad.clone() for t in (hidden, weight, b)]
    loss.backward(retain_graph=True)  # accumulates: twice the gradients, the saved ones untouched by the first
    second = [t.grad.clone() for t in (hidden, weight, b)]
    (loss * 0.5).backward()
    third = [t.grad for t in (hidden, weight, b)]
    for w, g1, g2, g3 in zip(want, first, second, third):
        assert relative(g1, w) <= 1e-6 and relative(g2, 2 * w) <= 1e-6 and relative(g3, 2.5 * w) <= 1e-6


def test_without_gradient_only_the_loss_and_the_same_one():
    hidden, weight, b, targets = leaves()
    with torch.no_grad():
        got = fused_linear_cross_entropy(hidden, weight, b, targets, block_rows=8)
        want = F.cross_entropy(F.linear(hidden, weight, b), targets)
    assert relative(got, want) <= 1e-6 and not got.requires_grad


def test_no_target_is_nan_as_cross_entropy_and_a_bad_one_is_named():
    hidden, weight, b, targets = leaves()
    assert torch.isnan(fused_linear_cross_entropy(hidden, weight, b, torch.full_like(targets, -100)))
    assert torch.isnan(F.cross_entropy(F.linear(hidden, weight, b), torch.full_like(targets, -100)))
    bad = targets.clone()
    bad[3] = 300
    with pytest.raises(ValueError, match="target 300 is not a token id: the vocabulary has 300 tokens"):
        fused_linear_cross_entropy(hidden, weight, b, bad)


def test_under_bf16_autocast_as_the_logits_path():
    hidden, weight, b, targets = leaves(n=64, dim=32, vocab=500)
    params = [hidden, weight, b]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = F.cross_entropy(F.linear(hidden, weight, b).float(), targets)
        got = fused_linear_cross_entropy(hidden, weight, b, targets, block_rows=16)
    assert got.dtype == torch.float32 and relative(got, want) < 1e-4
    for g, w, p in zip(torch.autograd.grad(got, params), torch.autograd.grad(want, params), params):
        assert g.dtype == p.dtype
        assert F.cosine_similarity(g.flatten(), w.flatten(), dim=0) > 0.999


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("window", ["time", "time + 1"])
def test_awd_lstm_training_step_takes_the_fused_path_with_the_same_gradients(window):
    model = tiny_awd(AWDLSTMForLanguageModeling, **no_dropout(ar_alpha=2.0, tar_beta=1.0)).train()
    assert model.decoder.weight is model.awd_lstm.embeddings.weight  # tied: both uses add up
    ids = torch.randint(0, 50, (3, 9), generator=torch.Generator().manual_seed(1))
    labels = ids if window == "time" else torch.cat([ids, ids[:, :1]], dim=1)
    fused = model(input_ids=ids, labels=labels)
    assert fused.logits is None
    fused.loss.backward()
    fused_grads = grads(model)
    model.zero_grad()
    full = model(input_ids=ids, labels=labels, return_logits=True)
    assert full.logits is not None
    full.loss.backward()
    assert relative(fused.loss, full.loss) <= 1e-6 and relative(fused.lm_loss, full.lm_loss) <= 1e-6
    full_grads = grads(model)
    assert fused_grads.keys() == full_grads.keys()
    for name in full_grads:
        assert relative(fused_grads[name], full_grads[name]) <= 1e-6, name


def test_awd_lstm_evaluation_loss_through_the_blocks():
    model = tiny_awd(AWDLSTMForLanguageModeling).eval()
    ids = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        with_logits = model(input_ids=ids, labels=ids)
        blocked = model(input_ids=ids, labels=ids, return_logits=False)
    assert with_logits.logits is not None and blocked.logits is None
    assert relative(blocked.loss, with_logits.loss) <= 1e-6
    with pytest.raises(ValueError, match="return_logits=False without labels"):
        model(input_ids=ids, return_logits=False)


def test_elmo_lm_training_step_takes_the_fused_path_with_the_same_gradients():
    torch.manual_seed(0)
    model = randomize_(ElmoForLanguageModeling(tiny_config(vocab_size=40)), seed=0).train()
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 200, (2, 6, 50), generator=gen)
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, 4:] = 0
    ids[1, 4:] = 0
    labels = torch.randint(0, 40, (2, 6), generator=gen).masked_fill(mask == 0, -100)
    fused = model(input_ids=ids, attention_mask=mask, labels=labels)
    assert fused.logits is None
    fused.loss.backward()
    fused_grads = grads(model)
    model.zero_grad()
    full = model(input_ids=ids, attention_mask=mask, labels=labels, return_logits=True)
    full.loss.backward()
    for name in ("loss", "forward_loss", "backward_loss"):
        assert relative(getattr(fused, name), getattr(full, name)) <= 1e-6, name
    full_grads = grads(model)
    assert fused_grads.keys() == full_grads.keys()
    for name in full_grads:
        assert relative(fused_grads[name], full_grads[name]) <= 1e-6, name
