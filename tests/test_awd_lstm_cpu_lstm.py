"""AWD-LSTM's own recurrence for CPU training under bfloat16 autocast (hf_elmo/models/awd_lstm/cpu_lstm.py).

Its forward and backward are written out, so they are checked against torch's fused LSTM: in float32 the outputs, final
states and every gradient agree to float32 precision; under bf16 autocast a training step takes it (and only such a
step), and lands as close to the float32 result as the fused kernel's own bf16 run does.
"""

from __future__ import annotations

import pytest
import torch
from torch import _VF

from hf_elmo.models.awd_lstm import AWDLSTMConfig, AWDLSTMForLanguageModeling
from hf_elmo.models.awd_lstm.cpu_lstm import CpuLstm, cpu_lstm_applies
from hf_elmo.models.awd_lstm.modeling_awd_lstm import AWDLSTMLayer
from hf_elmo.models.awd_lstm.packed_linear import onednn_bf16_available

requires_bf16 = pytest.mark.skipif(not onednn_bf16_available(), reason="oneDNN has no bfloat16 kernels on this CPU")


def _fused(x, h0, c0, weights):
    out, h, c = _VF.lstm(x, (h0.unsqueeze(0), c0.unsqueeze(0)), weights, True, 1, 0.0, True, False, True)
    return out, h[0], c[0]


def _outputs_and_gradients(run, x, h0, c0, weights, upstream):
    """The layer's outputs and the gradients of every input for a loss reading the outputs and both final states."""
    leaves = [x, h0, c0, *weights]
    for leaf in leaves:
        leaf.grad = None
    out, h, c = run(x, h0, c0, weights)
    loss = sum((y.float() * g).sum() for y, g in zip((out, h, c), upstream))
    loss.backward()
    return [out.detach().float(), h.detach().float(), c.detach().float()] + [leaf.grad.clone() for leaf in leaves]


def _layer_inputs(batch=3, steps=7, inputs=5, hidden=6, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(batch, steps, inputs, requires_grad=True)
    h0, c0 = torch.randn(batch, hidden, requires_grad=True), torch.randn(batch, hidden, requires_grad=True)
    weights = [(torch.randn(4 * hidden, inputs) * 0.5).requires_grad_(),
               (torch.randn(4 * hidden, hidden) * 0.5).requires_grad_(),
               (torch.randn(4 * hidden) * 0.5).requires_grad_(), (torch.randn(4 * hidden) * 0.5).requires_grad_()]
    upstream = [torch.randn(batch, steps, hidden), torch.randn(batch, hidden), torch.randn(batch, hidden)]
    return x, h0, c0, weights, upstream


@pytest.mark.parametrize("shape", [(3, 7, 5, 6), (1, 1, 4, 3), (4, 12, 3, 8)])
def test_float32_forward_and_every_gradient_equal_the_fused_kernels(shape):
    x, h0, c0, weights, upstream = _layer_inputs(*shape)
    want = _outputs_and_gradients(_fused, x, h0, c0, weights, upstream)
    got = _outputs_and_gradients(lambda *a: CpuLstm.apply(a[0], a[1], a[2], *a[3]), x, h0, c0, weights, upstream)
    names = ["out", "h", "c", "x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"]
    for name, a, b in zip(names, want, got):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")
    assert got[-2] is not got[-1]  # each bias has a gradient of its own


def _tiny_lm(**overrides) -> AWDLSTMForLanguageModeling:
    torch.manual_seed(0)
    fields = dict(vocab_size=40, emb_size=16, hidden_size=24, num_layers=3, bptt=6)
    fields.update(overrides)
    return AWDLSTMForLanguageModeling(AWDLSTMConfig.for_language_model(**fields))


@requires_bf16
def test_only_a_cpu_training_step_under_bf16_autocast_takes_it():
    layer = AWDLSTMLayer(4, 5, bidirectional=False, weight_p=0.0)
    layer.reset_parameters()
    x = torch.randn(2, 3, 4, requires_grad=True)
    weights = layer.flat_weights()
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16)
    with bf16:
        assert cpu_lstm_applies(x, weights, bidirectional=False, packed=False)
        assert not cpu_lstm_applies(x, weights, bidirectional=True, packed=False)
        assert not cpu_lstm_applies(x, weights, bidirectional=False, packed=True)
        with torch.no_grad():
            assert not cpu_lstm_applies(x, weights, bidirectional=False, packed=False)
    with torch.autocast("cpu", dtype=torch.float16):
        assert not cpu_lstm_applies(x, weights, bidirectional=False, packed=False)
    assert not cpu_lstm_applies(x, weights, bidirectional=False, packed=False)  # float32: the fused kernel
    hx = (torch.zeros(1, 2, 5), torch.zeros(1, 2, 5))
    with bf16:
        out, h, c = layer(x, hx)
    assert type(out.grad_fn).__name__ == "CpuLstmBackward"
    assert out.dtype == h.dtype == c.dtype == torch.bfloat16 and h.shape == c.shape == (1, 2, 5)
    assert out.shape == (2, 3, 5)


@requires_bf16
def test_bf16_as_close_to_float32_as_the_fused_kernels_bf16():
    """Under bf16 autocast both recurrences round their products to bfloat16; this one keeps the cell in float32.
    Against the float32 result its outputs and gradients are within bf16's precision, no further off than the fused
    kernel's."""
    x, h0, c0, weights, upstream = _layer_inputs(batch=4, steps=20, inputs=16, hidden=24, seed=1)
    exact = _outputs_and_gradients(_fused, x, h0, c0, weights, upstream)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = _outputs_and_gradients(_fused, x, h0, c0, weights, upstream)
        ours = _outputs_and_gradients(lambda *a: CpuLstm.apply(a[0], a[1], a[2], *a[3]), x, h0, c0, weights,
                                      upstream)
    for k, (e, f, o) in enumerate(zip(exact, fused, ours)):
        scale = e.abs().max()
        ours_off, fused_off = float((o - e).abs().max() / scale), float((f - e).abs().max() / scale)
        assert ours_off < 0.03, (k, ours_off)
        assert ours_off < 2 * fused_off + 0.005, (k, ours_off, fused_off)


@requires_bf16
def test_language_model_trains_with_it_under_autocast_with_the_state_carried():
    """The stateful LM stream's step: state in, state out (bf16 under autocast, as the fused kernel gives it), every
    parameter reached, the loss close to the float32 step's."""
    model = _tiny_lm().train()
    ids = torch.randint(0, 40, (4, 13))
    state = model.awd_lstm.zero_state(4)
    torch.manual_seed(5)
    reference = model(input_ids=ids[:, :6], labels=ids[:, :7], state=state).loss
    torch.manual_seed(5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=ids[:, :6], labels=ids[:, :7], state=state, use_cache=True)
    out.loss.backward()
    assert abs(out.loss.item() - reference.item()) < 0.02 * reference.item()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    for h, c in out.state:
        assert h.dtype == c.dtype == torch.bfloat16
    carried = model.awd_lstm.detach_state(out.state)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        again = model(input_ids=ids[:, 6:12], labels=ids[:, 6:13], state=carried)
    again.loss.backward()
    assert torch.isfinite(again.loss)
