"""AWD-LSTM's recurrence for CPU training under bfloat16 autocast: one LSTM layer's forward and backward written out,
its per-step products pre-packed for oneDNN.

Why: torch's fused LSTM (oneDNN's RNN primitive on CPU) runs its forward at bfloat16 speed, but its backward no faster
than in float32 (at ULMFiT's size on the 2-core Zen 4: 0.88 s of a 2.6 s bfloat16 training step, ~200 GFLOP/s against
the CPU's ~410). Here the backward's sequential part is one small product and five elementwise operations a step, and
everything else (the input products, the weight gradients, the input gradient, the gates' derivatives) runs as
products and elementwise operations over all steps at once: the layers' forward and backward take ~20% less time.
Everywhere else (float32, evaluation, packed or bidirectional input, GPUs) the fused kernel runs
(``AWDLSTMLayer.forward`` chooses, `cpu_lstm_applies`).

The cell (PyTorch's, gate order i, f, g, o; ``W_ih`` (4H, I), ``W_hh`` (4H, H), ``b = b_ih + b_hh``)::

    z_t = x_t · W_ihᵀ + h_{t-1} · W_hhᵀ + b
    i, f, o = σ(z_i), σ(z_f), σ(z_o);  g = tanh(z_g)
    c_t = f ⊙ c_{t-1} + i ⊙ g;         h_t = o ⊙ tanh(c_t)

and its derivative, with ``dh_t`` the output's gradient plus the next step's recurrent one::

    dc_t = dc_{t+1} ⊙ f_{t+1} + dh_t ⊙ o ⊙ (1 − tanh²(c_t))
    dz_i = dc_t ⊙ g ⊙ i(1 − i)      dz_f = dc_t ⊙ c_{t-1} ⊙ f(1 − f)
    dz_g = dc_t ⊙ i ⊙ (1 − g²)       dz_o = dh_t ⊙ tanh(c_t) ⊙ o(1 − o)
    dh_{t-1} (recurrent part) = dz_t · W_hh;  dW_hh = Σ_t dz_tᵀ h_{t-1};  dW_ih = Σ_t dz_tᵀ x_t;  dx_t = dz_t · W_ih

Both tanh are computed as ``2σ(2z) − 1`` (torch's CPU ``tanh`` is MKL's, slow on AMD): the g rows of the weights and
bias are doubled for the forward (exact), so that one ``sigmoid`` gives all four gates. The products run in the
autocast dtype, the cell state and the gates' arithmetic in float32; outputs and final states come back in the
autocast dtype, as the fused kernel returns them under autocast.

This file is a sibling of modeling_awd_lstm.py and ships with it as remote code (torch only).
"""

from __future__ import annotations

from typing import Any

import torch

from .packed_linear import onednn_bf16_available, pack_weight, packed_linear, tracing


def cpu_lstm_applies(x: torch.Tensor, weights: list[torch.Tensor], bidirectional: bool,
                     packed: bool) -> bool:
    """Whether a layer's call is a CPU training step under bfloat16 autocast on dense, one-directional input: the
    case `CpuLstm` is for."""
    return (
        x.device.type == "cpu"
        and not packed
        and not bidirectional
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
        and torch.is_grad_enabled()
        and (x.requires_grad or any(w.requires_grad for w in weights))
        and onednn_bf16_available()
        and not tracing()
    )


class CpuLstm(torch.autograd.Function):
    """One LSTM layer over batch-first input, forward and backward as in the module docstring.

    ``forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh)``: ``x`` (B, T, I), ``h0``/``c0`` (B, H), the weights as
    ``nn.LSTM`` holds them → the outputs (B, T, H) and the final ``h``, ``c`` (B, H). The products run in the autocast
    dtype when autocast is on (else in ``x``'s dtype, which the tests use to check the derivative in float32)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w_ih: torch.Tensor,
                w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        low = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        with torch.autocast("cpu", enabled=False):
            batch, steps, _ = x.shape
            hidden = w_hh.shape[1]
            # the g rows doubled: tanh(z_g) = 2σ(2·z_g) − 1, so that one sigmoid gives the four gates
            double = torch.ones(4 * hidden, 1, dtype=torch.float32, device=x.device)
            double[2 * hidden : 3 * hidden] = 2.0
            bias = ((b_ih.float() + b_hh.float()) * double[:, 0]).to(low)
            inputs = x.to(low).transpose(0, 1).reshape(steps * batch, -1)  # time-major rows
            w_ih_low, w_hh_low = w_ih.to(low), w_hh.to(low)
            z_in = packed_linear(inputs, pack_weight((w_ih.float() * double).to(low), inputs.shape[0]), bias,
                                 bucket=False).view(steps, batch, 4 * hidden)
            recurrent = pack_weight((w_hh.float() * double).to(low), batch)
            gates = torch.empty(steps, batch, 4 * hidden, dtype=torch.float32, device=x.device)
            cells = torch.empty(steps + 1, batch, hidden, dtype=torch.float32, device=x.device)
            cells[0] = c0
            tanh_cell = torch.empty(batch, hidden, dtype=torch.float32, device=x.device)  # recomputed backward
            out = torch.empty(steps, batch, hidden, dtype=low, device=x.device)
            h = h0.to(low)
            for t in range(steps):
                s = torch.add(z_in[t], packed_linear(h, recurrent, bucket=False), out=gates[t]).sigmoid_()
                i, f, g2, o = s.split(hidden, dim=1)  # g2 = σ(2·z_g)
                c = torch.mul(f, cells[t], out=cells[t + 1]).addcmul_(i, g2, value=2.0).sub_(i)  # f·c + i·g
                tc = torch.sigmoid(c * 2, out=tanh_cell).mul_(2).sub_(1)
                h = torch.mul(o, tc, out=out[t])
        ctx.save_for_backward(inputs, h0, w_ih_low, w_hh_low, gates, cells, out)
        ctx.dtypes = (x.dtype, h0.dtype, c0.dtype, w_ih.dtype, w_hh.dtype, b_ih.dtype)
        return out.transpose(0, 1), (out[-1].clone() if steps else h0.to(low)), cells[-1].to(low)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor | None, grad_h: torch.Tensor | None,
                 grad_c: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        inputs, h0, w_ih, w_hh, gates, cells, out = ctx.saved_tensors
        x_dtype, h_dtype, c_dtype, w_ih_dtype, w_hh_dtype, b_dtype = ctx.dtypes
        low = w_ih.dtype
        steps, batch, four = gates.shape
        hidden = four // 4
        device = gates.device
        with torch.autocast("cpu", enabled=False):
            i, f, g2, o = gates.split(hidden, dim=2)
            g = g2 * 2 - 1
            tanh_cells = torch.sigmoid(cells[1:] * 2).mul_(2).sub_(1)  # as the forward computed them
            # the gates' derivatives over all steps at once: dz = [dc, dc, dc, dh] ⊙ factors
            factors = torch.empty(steps, batch, four, dtype=torch.float32, device=device)
            torch.mul(g * i, 1 - i, out=factors[..., :hidden])
            torch.mul(cells[:-1] * f, 1 - f, out=factors[..., hidden : 2 * hidden])
            torch.mul(i, 1 - g * g, out=factors[..., 2 * hidden : 3 * hidden])
            torch.mul(tanh_cells * o, 1 - o, out=factors[..., 3 * hidden :])
            through_cell = o * (1 - tanh_cells * tanh_cells)  # dh → dc
            del g
            grad_steps = (grad_out.transpose(0, 1).float() if grad_out is not None
                          else torch.zeros(steps, batch, hidden, device=device))
            recurrent_t = pack_weight(w_hh.t(), batch)  # dz · W_hh
            dz = torch.empty(steps, batch, four, dtype=low, device=device)
            dh = (torch.zeros(batch, hidden, device=device) if grad_h is None else grad_h.float().clone())
            dc = (torch.zeros(batch, hidden, device=device) if grad_c is None else grad_c.float().clone())
            spread = torch.empty(batch, 4, hidden, dtype=torch.float32, device=device)
            for t in range(steps - 1, -1, -1):
                dh += grad_steps[t]
                dc.addcmul_(dh, through_cell[t])
                spread[:, :3] = dc.unsqueeze(1)
                spread[:, 3] = dh
                torch.mul(spread.view(batch, four), factors[t], out=dz[t])
                dc.mul_(f[t])
                dh = packed_linear(dz[t], recurrent_t, bucket=False).float()
            dz = dz.view(steps * batch, four)
            wants = ctx.needs_input_grad
            grad_x = grad_w_ih = grad_w_hh = grad_b = None
            if wants[0]:
                grad_x = torch.mm(dz, w_ih).view(steps, batch, -1).transpose(0, 1).to(x_dtype)
            if wants[3]:
                grad_w_ih = torch.mm(dz.t(), inputs).to(w_ih_dtype)
            if wants[4]:
                previous = torch.cat([h0.to(low).unsqueeze(0), out[:-1]]).view(steps * batch, hidden)
                grad_w_hh = torch.mm(dz.t(), previous).to(w_hh_dtype)
            if wants[5] or wants[6]:
                grad_b = dz.sum(0, dtype=torch.float32).to(b_dtype)
        # the two biases get one gradient each (one tensor for both would be one .grad shared by two parameters)
        return (grad_x, dh.to(h_dtype) if wants[1] else None, dc.to(c_dtype) if wants[2] else None, grad_w_ih,
                grad_w_hh, grad_b if wants[5] else None, grad_b.clone() if wants[6] else None)


def cpu_lstm(x: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor], weights: list[torch.Tensor],
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`CpuLstm` called as ``torch._VF.lstm`` is for one batch-first, one-directional layer: ``hx`` (h0, c0) each
    (1, B, H), ``weights`` [w_ih, w_hh, b_ih, b_hh] → (out (B, T, H), h (1, B, H), c (1, B, H))."""
    out, h, c = CpuLstm.apply(x, hx[0][0], hx[1][0], *weights)
    return out, h.unsqueeze(0), c.unsqueeze(0)
