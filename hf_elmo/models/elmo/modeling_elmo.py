"""ELMo (Peters et al., 2018) as a transformers model: character CNN → highway → projection → biLSTM language model
with projections and clipping → learned scalar mix.

The computation is the original TensorFlow one (bilm-tf), so that converted checkpoints reproduce it to float32
precision. The implementation is organised for speed on CPU:

* the character CNN, highway and projection run once per *distinct* word of the batch, and so does the first
  layer's input-to-hidden product (the token representation does not depend on context);
* sequences are laid out "packed" (time-major, longest first, only real words), so no work is spent on padding:
  at step ``t`` only the rows still running take part, and their states are updated in place;
* all input-to-hidden products of a layer are one matrix product per direction; only the recurrent product, the
  cell and the projection run per step;
* the forward and backward directions advance in the same step (the backward direction reads each sentence reversed
  within its own length); on CPU in inference the recurrent weights are pre-packed once for oneDNN (its GEMM with a
  reordered weight runs 2-3x faster than an ordinary one at the small batch of a recurrence), elsewhere both
  directions go through one batched product;
* the traceable path (ONNX export, compilation, ``graph_mode``) lays the words out the same way, each layer one
  ``scan`` whose step (``hf_elmo::elmo_lstm_cell``) works on the running rows only; with gradients on, it runs
  masked steps over the padded time axis instead.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import ModelOutput

from .configuration_elmo import ElmoConfig

ElmoState = tuple[torch.Tensor, torch.Tensor]


# --------------------------------------------------------------------------------------------------------------------
# Fast inference matmul
# --------------------------------------------------------------------------------------------------------------------
def _mkldnn_usable() -> bool:
    return bool(
        torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    )


_MKLDNN = _mkldnn_usable()


def _plain_graph() -> bool:
    """True while tracing, compiling or exporting: only ordinary differentiable ops may be used then."""
    return bool(
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or (hasattr(torch, "compiler") and torch.compiler.is_compiling())
        or (hasattr(torch, "onnx") and torch.onnx.is_in_onnx_export())
    )


class PackedLinearCache:
    """Keeps oneDNN-reordered copies of weights for inference on CPU.

    A reordered ("pre-packed") weight lets oneDNN skip re-packing the matrix at every call, which dominates at the
    small row counts of a recurrence. The cache is only used in eval mode and is emptied at every switch between
    train and eval mode and on ``.to()``: a fused optimizer step (the Trainer's default) updates parameters without
    bumping their version counters, so the counters alone cannot be trusted across training. Within eval mode an
    entry is also rebuilt when the weight's version counter, storage or dtype changes (``load_state_dict``,
    in-place edits).
    """

    def __init__(self) -> None:
        self.enabled = True  # False in train mode (set by ElmoModel.train)
        # keyed by the weight's storage address, shape and dtype (a view such as ``param[d]`` gets a new Python
        # object at every indexing, its address does not); the weak reference and the version counter (shared by a
        # parameter and its views) tell whether the entry still describes the same, unchanged tensor.
        self._entries: dict[tuple, tuple[weakref.ref, int, torch.Tensor]] = {}

        self._derived: dict[str, tuple[tuple, Any]] = {}

    def clear(self) -> None:
        self._entries.clear()
        self._derived.clear()

    def derived(self, name: str, sources: list[torch.Tensor], build: Any) -> Any:
        """A value computed from ``sources`` by ``build()`` (e.g. a fused weight), kept until a source changes or the
        cache is cleared."""
        key = tuple((t.data_ptr(), -1 if t.is_inference() else t._version, t.dtype) for t in sources)
        entry = self._derived.get(name)
        if entry is None or entry[0] != key:
            with torch.no_grad():
                entry = (key, build())
            self._derived[name] = entry
        return entry[1]

    def usable(self, x: torch.Tensor, weight: torch.Tensor) -> bool:
        return (
            self.enabled
            and _MKLDNN
            and x.device.type == "cpu"
            and weight.device.type == "cpu"
            and x.dtype == weight.dtype
            and x.dtype in (torch.float32, torch.bfloat16)
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and not _plain_graph()
        )

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``x @ weight.T + bias`` (``weight`` is ``(out, in)`` as in ``nn.Linear``)."""
        if not self.usable(x, weight):
            return F.linear(x, weight, bias)
        owner = weight._base if weight._base is not None else weight
        key = (weight.data_ptr(), tuple(weight.shape), tuple(weight.stride()), weight.dtype)
        version = -1 if weight.is_inference() else weight._version  # inference tensors keep no version counter
        entry = self._entries.get(key)
        if entry is None or entry[0]() is not owner or entry[1] != version:
            with torch.no_grad():
                packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), 32)
            entry = (weakref.ref(owner), version, packed)
            self._entries[key] = entry
        lead = x.shape[:-1]
        out = torch.ops.mkldnn._linear_pointwise(
            x.reshape(-1, x.shape[-1]).contiguous(), entry[2], None if bias is None else bias.detach(), "none", [], ""
        )
        return out.reshape(*lead, out.shape[-1])


def _scan(step: Any, init: Any, xs: Any) -> tuple[Any, torch.Tensor]:
    """torch's ``scan`` higher-order op (exported to ONNX as a ``Scan`` loop): ``step(carry, x_t) -> (carry, y_t)``
    over the leading axis of ``xs``; returns the final carry and the stacked ``y``."""
    from torch._higher_order_ops.scan import scan

    return scan(step, init, xs)


def _tf_lstm_cell(gates: torch.Tensor, c_prev: torch.Tensor, cell_clip: float | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """TensorFlow's LSTMCell: gates [i, j, f, o] (forget bias already in the gates) → (c clipped to ±``cell_clip``
    when set, σ(o)·tanh(c))."""
    i, j, f, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(j)
    if cell_clip:
        c = c.clamp(-cell_clip, cell_clip)
    return c, torch.sigmoid(o) * torch.tanh(c)


def _define_lstm_cell_op() -> Any:
    """``torch.ops.hf_elmo.elmo_lstm_cell``: one step of one direction of an ELMo LSTM layer, on the rows still
    running, for the traceable inference path.

    An exported loop body has fixed shapes in torch, so "the first ``running`` rows" cannot be expressed with torch's
    own ops there (a data-dependent size inside ``scan`` is refused); as one opaque op it can, and its ONNX
    translation (hf_elmo.onnx.elmo) slices those rows, so ONNX Runtime spends no work on finished or padded rows,
    as the eager path does. Defined once per process: this file may be imported twice (installed package and Hub
    remote code), and both copies share the op."""
    try:
        return torch.ops.hf_elmo.elmo_lstm_cell
    except (AttributeError, RuntimeError):
        pass

    @torch.library.custom_op("hf_elmo::elmo_lstm_cell", mutates_args=())
    def elmo_lstm_cell(h: torch.Tensor, c: torch.Tensor, gates: torch.Tensor, offset: torch.Tensor,
                       running: torch.Tensor, w_hh: torch.Tensor, w_proj: torch.Tensor, cell_clip: float,
                       proj_clip: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``h`` (B, P), ``c`` (B, H): the states, rows sorted by falling length; ``gates`` (N, 4H): the packed input
        products of the whole sequence, this step's ``running`` rows at ``offset``; ``w_hh`` (P, 4H), ``w_proj``
        (H, P); a clip of 0 is none. Returns the new states (rows from ``running`` on unchanged) and this step's
        output (B, P), zeros from row ``running`` on."""
        n, start = int(running), int(offset)
        c_new, m = _tf_lstm_cell(gates[start : start + n] + h[:n] @ w_hh, c[:n], cell_clip)
        h_new = m.to(h.dtype) @ w_proj
        if proj_clip:
            h_new = h_new.clamp(-proj_clip, proj_clip)
        return (torch.cat([h_new, h[n:]]), torch.cat([c_new.to(c.dtype), c[n:]]),
                torch.cat([h_new, h.new_zeros(h.shape[0] - n, h.shape[1])]))

    @elmo_lstm_cell.register_fake
    def _(h, c, gates, offset, running, w_hh, w_proj, cell_clip, proj_clip):
        return torch.empty_like(h), torch.empty_like(c), torch.empty_like(h)

    return torch.ops.hf_elmo.elmo_lstm_cell


_ELMO_LSTM_CELL = _define_lstm_cell_op()


# --------------------------------------------------------------------------------------------------------------------
# Character encoder
# --------------------------------------------------------------------------------------------------------------------
class ElmoCharacterEncoder(nn.Module):
    """Character embedding → convolutions (max over positions, then the activation) → highway → projection.

    ``highways[k]`` holds the transform and carry matrices stacked as one ``nn.Linear(F, 2F)`` (transform rows first)
    so that each highway layer is one matrix product.
    """

    def __init__(self, config: ElmoConfig, cache: PackedLinearCache) -> None:
        super().__init__()
        self.config = config
        self._cache = cache
        self.char_embedding = nn.Embedding(config.n_characters, config.char_embedding_dim, padding_idx=0)
        self.convolutions = nn.ModuleList(
            nn.Conv1d(config.char_embedding_dim, n, width) for width, n in config.char_cnn_filters
        )
        n_filters = config.n_filters
        self.highways = nn.ModuleList(nn.Linear(n_filters, 2 * n_filters) for _ in range(config.n_highway))
        self.projection = nn.Linear(n_filters, config.projection_dim) if n_filters != config.projection_dim else None
        self.activation = torch.relu if config.activation == "relu" else torch.tanh


    # Words per chunk of the fused convolution: its (chunk · chars, 2048) output then stays in the CPU's cache.
    FUSED_CONV_CHUNK = 32

    def _fused_conv_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All filters as one matrix over windows of the widest filter: filter ``k`` of width ``w`` fills the first
        ``w`` character slots of its rows, zeros the rest. Rebuilt when any convolution parameter changes."""
        params = [p for conv in self.convolutions for p in (conv.weight, conv.bias)]

        def build() -> tuple[torch.Tensor, torch.Tensor]:
            widest = max(w for w, _ in self.config.char_cnn_filters)
            emb = self.config.char_embedding_dim
            rows = []
            for conv in self.convolutions:
                w = conv.weight.detach().permute(0, 2, 1)  # (n, width, emb)
                rows.append(F.pad(w, (0, 0, 0, widest - w.shape[1])))
            weight = torch.cat(rows).reshape(-1, widest * emb).contiguous()
            return weight, torch.cat([conv.bias.detach() for conv in self.convolutions])

        return self._cache.derived("fused_conv", params, build)

    def _pooled_fused(self, x: torch.Tensor) -> torch.Tensor:
        """Inference path: the convolutions as one pre-packed matrix product over character windows (2-3x faster
        than seven convolutions on CPU), max-pooled per filter over its own valid positions only."""
        weight, bias = self._fused_conv_weight()
        filters = self.config.char_cnn_filters
        widest = max(w for w, _ in filters)
        n_chars = x.shape[1]
        x = F.pad(x, (0, 0, 0, widest - 1))  # zero columns so that every position has a full window
        outputs = []
        for start in range(0, x.shape[0], self.FUSED_CONV_CHUNK):
            chunk = x[start : start + self.FUSED_CONV_CHUNK]
            windows = chunk.unfold(1, widest, 1).transpose(2, 3).reshape(-1, weight.shape[1])
            y = self._cache.linear(windows, weight, bias).view(chunk.shape[0], n_chars, -1)
            parts, offset = [], 0
            for width, n in filters:  # a filter of width w has n_chars - w + 1 real positions
                parts.append(y[:, : n_chars - width + 1, offset : offset + n].amax(dim=1))
                offset += n
            outputs.append(torch.cat(parts, dim=-1))
        return torch.cat(outputs)

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        """``char_ids`` (words, max_characters_per_token) → token representations (words, projection_dim)."""
        x = self.char_embedding(char_ids)  # (words, chars, emb)
        if self._cache.usable(x, self.convolutions[0].weight):
            pooled = [self._pooled_fused(x)]
        else:
            x = x.transpose(1, 2)  # (words, emb, chars)
            pooled = [conv(x).amax(dim=-1) for conv in self.convolutions]
        h = self.activation(torch.cat(pooled, dim=-1))
        n = h.shape[-1]
        for highway in self.highways:
            proj = self._cache.linear(h, highway.weight, highway.bias)
            transform, carry = proj[..., :n], proj[..., n:]
            gate = torch.sigmoid(carry)
            h = gate * torch.relu(transform) + (1 - gate) * h
        if self.projection is not None:
            h = self._cache.linear(h, self.projection.weight, self.projection.bias)
        return h


# --------------------------------------------------------------------------------------------------------------------
# The biLSTM language model
# --------------------------------------------------------------------------------------------------------------------
class ElmoLstmLayer(nn.Module):
    """One biLSTM layer with projection: both directions' weights stacked on a leading axis of size 2.

    Shapes (d = direction, 0 forward, 1 backward): ``weight_ih`` (2, 4H, P) and ``weight_hh`` (2, 4H, P) are the input
    and recurrent halves of TensorFlow's ``W_0`` (transposed), ``bias`` (2, 4H) is ``B`` (without TensorFlow's forget
    bias of 1, added at run time), ``weight_proj`` (2, P, H) is ``W_P_0`` transposed. Gate order: input, candidate
    (j), forget, output, as in TensorFlow.
    """

    FORGET_BIAS = 1.0

    def __init__(self, config: ElmoConfig) -> None:
        super().__init__()
        h, p = config.lstm_dim, config.projection_dim
        self.weight_ih = nn.Parameter(torch.empty(2, 4 * h, p))
        self.weight_hh = nn.Parameter(torch.empty(2, 4 * h, p))
        self.bias = nn.Parameter(torch.empty(2, 4 * h))
        self.weight_proj = nn.Parameter(torch.empty(2, p, h))

    def effective_bias(self) -> torch.Tensor:
        """``B`` with TensorFlow's forget bias folded into the forget gate's block."""
        h = self.bias.shape[-1] // 4
        offset = torch.zeros_like(self.bias)
        offset[:, 2 * h : 3 * h] = self.FORGET_BIAS
        return self.bias + offset


@dataclass
class _PackedLayout:
    """Where each packed (time-major, longest-first) position of each direction comes from.

    ``fwd_src``/``bwd_src`` index the real words of the batch in row-major order (0..n_real-1); ``batch_sizes[t]`` rows
    take part in step ``t``; ``order`` sorts the batch rows by falling length.
    """

    order: torch.Tensor
    batch_sizes: list[int]
    fwd_src: torch.Tensor
    bwd_src: torch.Tensor
    real_flat: torch.Tensor


def _packed_layout(mask: torch.Tensor) -> _PackedLayout:
    batch, width = mask.shape
    lengths = mask.sum(dim=1)
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_len = lengths[order]
    max_len = int(sorted_len[0]) if batch else 0
    real_flat = mask.reshape(-1).nonzero().squeeze(1)  # row-major positions of real words
    # rank[b, j]: index (into real_flat) of the j-th real word of row b
    starts = torch.cumsum(lengths, 0) - lengths
    steps = torch.arange(max_len, device=mask.device)
    valid = steps[:, None] < sorted_len[None, :]  # (time, sorted row)
    t_idx, r_idx = valid.nonzero(as_tuple=True)  # row-major = packed order
    rows = order[r_idx]
    fwd_src = starts[rows] + t_idx
    bwd_src = starts[rows] + (lengths[rows] - 1 - t_idx)
    batch_sizes = valid.sum(dim=1).tolist()
    return _PackedLayout(order, batch_sizes, fwd_src, bwd_src, real_flat)


class ElmoBiLm(nn.Module):
    """The stacked biLSTM over packed sequences; returns every layer's packed outputs and the final states."""

    def __init__(self, config: ElmoConfig, cache: PackedLinearCache) -> None:
        super().__init__()
        self.config = config
        self._cache = cache
        self.layers = nn.ModuleList(ElmoLstmLayer(config) for _ in range(config.n_layers))

    def _input_gates(self, layer: ElmoLstmLayer, x: list[torch.Tensor]) -> list[torch.Tensor]:
        """All timesteps' input-to-hidden products, one matrix product per direction: 2 × (N, P) → 2 × (N, 4H)."""
        bias = layer.effective_bias()
        return [self._cache.linear(x[d], layer.weight_ih[d], bias[d]) for d in range(2)]

    def run_layer(
        self,
        layer: ElmoLstmLayer,
        gates_x: list[torch.Tensor],
        batch_sizes: list[int],
        h0: torch.Tensor,
        c0: torch.Tensor,
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """The recurrence of one layer over packed input gates (2 × (N, 4H)), starting from (2, B, P)/(2, B, H)
        states in sorted row order. Returns the packed outputs (2 × (N, P)) and the final states (rows that ended
        early keep the state after their last word)."""
        if self._cache.usable(h0.to(gates_x[0].dtype), layer.weight_hh) and not gates_x[0].requires_grad:
            return self._run_layer_inference(layer, gates_x, batch_sizes, h0, c0)
        return self._run_layer_batched(layer, gates_x, batch_sizes, h0, c0)

    def _cell_update(self, gates: torch.Tensor, c_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """TensorFlow's LSTMCell with this model's cell clip (``_tf_lstm_cell``)."""
        return _tf_lstm_cell(gates, c_prev, self.config.cell_clip)

    def _run_layer_batched(self, layer, gates_x, batch_sizes, h0, c0):
        """Differentiable (and device-agnostic) path: both directions in one batched product per step, states
        updated out of place so that autograd can go back through every step."""
        cfg = self.config
        gx = torch.stack(gates_x)
        cell_dtype = torch.float32 if gx.dtype in (torch.float16, torch.bfloat16) else gx.dtype
        w_hh, w_proj = layer.weight_hh.transpose(1, 2), layer.weight_proj.transpose(1, 2)
        h, c = h0.to(gx.dtype), c0.to(cell_dtype)
        outputs, offset = [], 0
        for n in batch_sizes:
            gates = gx[:, offset : offset + n].to(cell_dtype) + torch.bmm(h[:, :n], w_hh).to(cell_dtype)
            offset += n
            c_new, m = self._cell_update(gates, c[:, :n])
            h_new = torch.bmm(m.to(gx.dtype), w_proj)
            if cfg.proj_clip:
                h_new = h_new.clamp(-cfg.proj_clip, cfg.proj_clip)
            c = torch.cat([c_new, c[:, n:]], dim=1)
            h = torch.cat([h_new, h[:, n:]], dim=1)
            outputs.append(h_new)
        out = torch.cat(outputs, dim=1) if outputs else gx.new_zeros(2, 0, cfg.projection_dim)
        return [out[0], out[1]], h, c

    @torch.no_grad()
    def _run_layer_inference(self, layer, gates_x, batch_sizes, h0, c0):
        """CPU inference path: per direction, pre-packed oneDNN products and in-place state updates on the rows
        still running (a prefix, as rows are sorted by falling length)."""
        cfg = self.config
        hid = cfg.lstm_dim
        dtype = gates_x[0].dtype
        cell_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
        h = h0.to(dtype).clone()
        c = c0.to(cell_dtype).clone()
        outputs: list[list[torch.Tensor]] = [[], []]
        offset = 0
        for n in batch_sizes:
            for d in range(2):
                g = self._cache.linear(h[d, :n], layer.weight_hh[d]).to(cell_dtype)
                g += gates_x[d][offset : offset + n]
                i, j, f, o = g[:, :hid], g[:, hid : 2 * hid], g[:, 2 * hid : 3 * hid], g[:, 3 * hid :]
                torch.sigmoid(i, out=i)
                torch.tanh(j, out=j)
                torch.sigmoid(f, out=f)
                torch.sigmoid(o, out=o)
                cd = c[d, :n]
                cd.mul_(f).addcmul_(i, j)
                if cfg.cell_clip:
                    cd.clamp_(-cfg.cell_clip, cfg.cell_clip)
                m = torch.tanh(cd).mul_(o).to(dtype)
                h_new = self._cache.linear(m, layer.weight_proj[d])
                if cfg.proj_clip:
                    h_new.clamp_(-cfg.proj_clip, cfg.proj_clip)
                h[d, :n] = h_new
                outputs[d].append(h_new)
            offset += n
        outs = [torch.cat(o, dim=0) if o else gates_x[0].new_zeros(0, cfg.projection_dim) for o in outputs]
        return outs, h, c

    def masked_step(self, layer: ElmoLstmLayer) -> Any:
        """The step function of the traceable recurrence: carry ``(h (2, B, P), c (2, B, H))``, input ``(gates
        (2, B, 4H), mask (2, B))``; rows whose mask is off keep their state and output zeros."""
        cfg = self.config
        w_hh, w_proj = layer.weight_hh.transpose(1, 2), layer.weight_proj.transpose(1, 2)

        def step(carry: tuple[torch.Tensor, torch.Tensor], inputs: tuple[torch.Tensor, torch.Tensor]):
            h, c = carry
            gates, keep = inputs
            gates = gates + torch.bmm(h, w_hh)
            c_new, m = self._cell_update(gates, c)
            h_new = torch.bmm(m.to(h.dtype), w_proj)
            if cfg.proj_clip:
                h_new = h_new.clamp(-cfg.proj_clip, cfg.proj_clip)
            keep = keep.unsqueeze(-1)
            h_next = torch.where(keep, h_new, h)
            c_next = torch.where(keep, c_new.to(c.dtype), c)
            return (h_next, c_next), h_new * keep.to(h_new.dtype)

        return step

    def packed_step(self, layer: ElmoLstmLayer, gates: list[torch.Tensor]) -> Any:
        """The step function of the traceable inference recurrence over packed input products ``gates`` (2 × (N,
        4H), time-major, rows sorted by falling length): carry ``(h_f, c_f, h_b, c_b)`` ((B, P) and (B, H) per
        direction), input ``(offset, running)`` of the step's rows in ``gates``; output ``(y_f, y_b)`` (B, P)."""
        cfg = self.config
        w_hh = [layer.weight_hh[d].t().contiguous() for d in range(2)]  # copies: captured tensors must not alias
        w_proj = [layer.weight_proj[d].t().contiguous() for d in range(2)]
        cell_clip, proj_clip = float(cfg.cell_clip or 0.0), float(cfg.proj_clip or 0.0)

        def step(carry: tuple[torch.Tensor, ...], inputs: tuple[torch.Tensor, torch.Tensor]):
            offset, running = inputs
            out_carry, ys = [], []
            for d in range(2):
                h, c, y = _ELMO_LSTM_CELL(carry[2 * d], carry[2 * d + 1], gates[d], offset, running, w_hh[d],
                                          w_proj[d], cell_clip, proj_clip)
                out_carry += [h, c]
                ys.append(y)
            return tuple(out_carry), tuple(ys)

        return step

    def forward(
        self,
        token_gates_0: list[torch.Tensor],
        token_inputs: list[torch.Tensor],
        batch_sizes: list[int],
        h0: torch.Tensor,
        c0: torch.Tensor,
    ) -> tuple[list[list[torch.Tensor]], torch.Tensor, torch.Tensor]:
        """``token_gates_0``: the first layer's input gates, 2 × (N, 4H); ``token_inputs``: the first layer's input,
        2 × (N, P) (for skip connections). ``h0``/``c0``: (n_layers, 2, B, ·) in sorted row order."""
        outputs, h_final, c_final = [], [], []
        x = token_inputs
        for k, layer in enumerate(self.layers):
            gates = token_gates_0 if k == 0 else self._input_gates(layer, x)
            out, h, c = self.run_layer(layer, gates, batch_sizes, h0[k], c0[k])
            if self.config.use_skip_connections and k > 0:
                out = [out[d] + x[d] for d in range(2)]
            outputs.append(out)
            h_final.append(h)
            c_final.append(c)
            x = out
        return outputs, torch.stack(h_final), torch.stack(c_final)


class ElmoScalarMix(nn.Module):
    """γ · Σ_j softmax(s)_j · h_j, optionally layer-normalising each h_j over the real tokens first."""

    def __init__(self, n_representations: int, do_layer_norm: bool, initial: list[float] | None = None,
                 trainable: bool = True) -> None:
        super().__init__()
        # the default dtype, so that from_pretrained(..., dtype=torch.bfloat16) casts these too (the mix weights are
        # soft-maxed in float32 in forward whatever their dtype)
        init = torch.tensor(initial if initial is not None else [0.0] * n_representations,
                            dtype=torch.get_default_dtype())
        self.scalar_parameters = nn.Parameter(init, requires_grad=trainable)
        self.gamma = nn.Parameter(torch.ones(1), requires_grad=trainable)
        self.do_layer_norm = do_layer_norm

    def forward(self, layers: tuple[torch.Tensor, ...], mask: torch.Tensor) -> torch.Tensor:
        if len(layers) != self.scalar_parameters.numel():
            raise ValueError(f"scalar mix expects {self.scalar_parameters.numel()} layers, got {len(layers)}")
        weights = torch.softmax(self.scalar_parameters.float(), dim=0).to(layers[0].dtype)
        gamma = self.gamma.to(layers[0].dtype)
        mixed = None
        if self.do_layer_norm:
            m = mask.unsqueeze(-1).to(layers[0].dtype)
            n = (m.sum() * layers[0].shape[-1]).clamp_min(1)
        for w, layer in zip(weights, layers):
            if self.do_layer_norm:
                mean = (layer * m).sum() / n
                var = (((layer - mean) * m) ** 2).sum() / n
                layer = (layer - mean) / torch.sqrt(var + 1e-12)
            mixed = w * layer if mixed is None else mixed + w * layer
        return gamma * mixed


# --------------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class ElmoModelOutput(ModelOutput):
    """Outputs of [`ElmoModel`].

    Args:
        last_hidden_state: the first learned scalar mix, (batch, words, 2·projection_dim).
        hidden_states: the n_layers + 1 biLM layers, each (batch, words, 2·projection_dim): layer 0 is the token
            representation repeated for both directions, layer l ≥ 1 is [forward; backward].
        elmo_representations: every scalar mix (``num_output_representations`` of them).
        state: with ``use_cache=True``, the recurrent state after each row's last word, ``(h, c)`` of shapes
            (n_layers, 2, batch, projection_dim) and (n_layers, 2, batch, lstm_dim); pass it back as ``state=``.
    """

    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    elmo_representations: tuple[torch.Tensor, ...] | None = None
    state: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass
class ElmoLanguageModelingOutput(ModelOutput):
    """Outputs of [`ElmoForLanguageModeling`]: ``loss`` is the mean of the forward and backward LM losses;
    ``logits`` (batch, words, 2, vocab): [..., 0, :] the forward LM's prediction of the next word, [..., 1, :] the
    backward LM's of the previous word (None in training with the sampled softmax)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    forward_loss: torch.Tensor | None = None
    backward_loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    state: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass
class ElmoClassifierOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


# --------------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------------
class ElmoPreTrainedModel(PreTrainedModel):
    config_class = ElmoConfig
    base_model_prefix = "elmo"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    _no_split_modules: list[str] = []
    # The heads return a mean loss; the Trainer then handles gradient accumulation itself.
    accepts_loss_kwargs = False
    # A pretrained LM checkpoint's softmax is not part of the biLM: loading one into ElmoModel or a task head drops it
    # silently (the task head itself is reported as newly initialised, as usual).
    _keys_to_ignore_on_load_unexpected = [r"softmax\.(weight|bias)$"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, ElmoLstmLayer):
            bound = 1.0 / math.sqrt(module.weight_hh.shape[-1])
            for p in (module.weight_ih, module.weight_hh, module.weight_proj):
                nn.init.uniform_(p, -bound, bound)
            nn.init.zeros_(module.bias)
        elif isinstance(module, ElmoScalarMix):
            n = module.scalar_parameters.numel()
            initial = self.config.scalar_mix_parameters or [0.0] * n
            module.scalar_parameters.copy_(torch.tensor(initial, dtype=module.scalar_parameters.dtype))
            nn.init.ones_(module.gamma)
        elif isinstance(module, (nn.Linear, nn.Conv1d)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()


def _check_char_ids(input_ids: Any, config: ElmoConfig) -> torch.Tensor:
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a torch.Tensor, got {type(input_ids).__name__}")
    if input_ids.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool):
        raise TypeError(f"input_ids must hold integer character ids, got dtype {input_ids.dtype}")
    if input_ids.dim() != 3 or input_ids.shape[-1] != config.max_characters_per_token:
        raise ValueError(
            "input_ids must have shape (batch, words, max_characters_per_token="
            f"{config.max_characters_per_token}) as ElmoTokenizer returns it, got {tuple(input_ids.shape)}"
        )
    if input_ids.numel() and not _plain_graph():  # a data-dependent check cannot be part of an exported graph
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= config.n_characters:
            raise ValueError(f"character ids must lie in [0, {config.n_characters}), got values in [{lo}, {hi}]")
    return input_ids.long()


def _word_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """(batch, words) bool mask of real words: the attention mask, or the words that are not all-zero."""
    return attention_mask.bool() if attention_mask is not None else (input_ids > 0).any(dim=-1)


class ElmoModel(ElmoPreTrainedModel):
    """The ELMo biLM: ``input_ids`` (batch, words, 50) character ids → every biLM layer and their scalar mix(es).

    Stateless by default: each call starts from zero states. ``use_cache=True`` returns the state after each row's
    last word (``output.state``) and ``state=`` starts from one, which reproduces the original stateful biLM.
    """

    def __init__(self, config: ElmoConfig) -> None:
        super().__init__(config)
        self._packed_cache = PackedLinearCache()
        self._packed_cache.enabled = not self.training
        # True: always take the traceable path (it is taken anyway while exporting or compiling)
        self.graph_mode = False
        self.char_encoder = ElmoCharacterEncoder(config, self._packed_cache)
        self.bilm = ElmoBiLm(config, self._packed_cache)
        self.scalar_mixes = nn.ModuleList(
            ElmoScalarMix(config.n_layers + 1, config.do_layer_norm, config.scalar_mix_parameters,
                          trainable=config.scalar_mix_parameters is None)
            for _ in range(config.num_output_representations)
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.char_encoder.char_embedding

    def train(self, mode: bool = True) -> "ElmoModel":
        # see PackedLinearCache: pre-packed weights are only trusted in eval mode
        self._packed_cache.clear()
        self._packed_cache.enabled = not mode
        return super().train(mode)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "ElmoModel":
        self._packed_cache.clear()
        return super()._apply(fn, *args, **kwargs)

    def zero_state(self, batch_size: int, device: torch.device | None = None,
                   dtype: torch.dtype | None = None) -> ElmoState:
        """All-zero recurrent state for ``batch_size`` rows."""
        cfg = self.config
        p = next(self.parameters())
        device, dtype = device or p.device, dtype or p.dtype
        h = torch.zeros(cfg.n_layers, 2, batch_size, cfg.projection_dim, device=device, dtype=dtype)
        c = torch.zeros(cfg.n_layers, 2, batch_size, cfg.lstm_dim, device=device, dtype=torch.float32
                        if dtype in (torch.float16, torch.bfloat16) else dtype)
        return h, c

    def _check_state(self, state: Any, batch: int) -> ElmoState:
        cfg = self.config
        if not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise TypeError("state must be the (h, c) pair that a call with use_cache=True returned")
        h, c = state
        if not (isinstance(h, torch.Tensor) and isinstance(c, torch.Tensor)):
            raise TypeError(
                "state must be the (h, c) pair that a call with use_cache=True returned: two tensors, got "
                f"({type(h).__name__}, {type(c).__name__})"
            )
        want_h = (cfg.n_layers, 2, batch, cfg.projection_dim)
        want_c = (cfg.n_layers, 2, batch, cfg.lstm_dim)
        if tuple(h.shape) != want_h or tuple(c.shape) != want_c:
            raise ValueError(
                f"state shapes {tuple(h.shape)}, {tuple(c.shape)} do not fit this batch: expected {want_h}, {want_c}"
            )
        return h, c

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        state: ElmoState | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> ElmoModelOutput | tuple:
        """
        Args:
            input_ids: (batch, words, max_characters_per_token) character ids from [`ElmoTokenizer`].
            attention_mask: (batch, words), 1 for real words; derived from ``input_ids`` (all-zero words are padding)
                when omitted. Left, right or any other padding is handled.
            state: recurrent state to start from (see ``use_cache``); zeros when omitted.
            use_cache: return ``output.state``, the state after each row's last word.
            output_hidden_states: return every biLM layer (default True: ELMo's layers are its product).
        """
        for ignored in ("token_ids", "token_type_ids", "num_items_in_batch"):
            kwargs.pop(ignored, None)
        if kwargs:
            raise TypeError(f"ElmoModel.forward got unexpected arguments: {sorted(kwargs)}")
        if input_ids is None:
            raise ValueError("ElmoModel needs input_ids (batch, words, max_characters_per_token)")
        cfg = self.config
        input_ids = _check_char_ids(input_ids, cfg)
        batch, width, _ = input_ids.shape
        if attention_mask is None:
            mask = (input_ids > 0).any(dim=-1)
        else:
            if tuple(attention_mask.shape) != (batch, width):
                raise ValueError(
                    f"attention_mask shape {tuple(attention_mask.shape)} does not match input_ids' (batch, words) = "
                    f"{(batch, width)}"
                )
            mask = attention_mask.bool()
        return_dict = return_dict if return_dict is not None else cfg.return_dict
        output_hidden_states = True if output_hidden_states is None else output_hidden_states

        param = self.bilm.layers[0].weight_hh
        dtype, device = param.dtype, param.device
        input_ids, mask = input_ids.to(device), mask.to(device)
        if state is None:
            h0, c0 = self.zero_state(batch, device, dtype)
        else:
            h0, c0 = self._check_state(state, batch)
            h0, c0 = h0.to(device), c0.to(device)
        if self.graph_mode or _plain_graph():
            layers_t, new_state = self._forward_graph(input_ids, mask, h0, c0)
        else:
            layers_t, new_state = self._forward_packed(input_ids, mask, h0, c0)
        mixes = tuple(mix(layers_t, mask) for mix in self.scalar_mixes)
        out = ElmoModelOutput(
            last_hidden_state=mixes[0],
            hidden_states=layers_t if output_hidden_states else None,
            elmo_representations=mixes,
            state=new_state if use_cache else None,
        )
        return out if return_dict else out.to_tuple()

    def _forward_packed(self, input_ids: torch.Tensor, mask: torch.Tensor, h0: torch.Tensor,
                        c0: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], ElmoState]:
        """The eager path: packed sequences, no work on padding, the char CNN once per distinct word."""
        cfg = self.config
        batch, width, _ = input_ids.shape
        device, dtype = h0.device, self.bilm.layers[0].weight_hh.dtype
        layout = _packed_layout(mask)
        n_real = layout.real_flat.numel()
        hidden = 2 * cfg.projection_dim
        h0s, c0s = h0[:, :, layout.order], c0[:, :, layout.order]

        # Token representations, once per distinct word; the first layer's input gates likewise.
        words = input_ids.reshape(-1, cfg.max_characters_per_token)[layout.real_flat]
        if n_real:
            unique_words, inverse = torch.unique(words, dim=0, return_inverse=True)
            token_unique = self.char_encoder(unique_words)
            gates_u = self.bilm._input_gates(self.bilm.layers[0], [token_unique, token_unique])
            fwd_w, bwd_w = inverse[layout.fwd_src], inverse[layout.bwd_src]
            token_inputs = [token_unique[fwd_w], token_unique[bwd_w]]
            gates0 = [gates_u[0][fwd_w], gates_u[1][bwd_w]]
            layer_outs, h_n, c_n = self.bilm(gates0, token_inputs, layout.batch_sizes, h0s, c0s)
            token_real = token_unique[inverse]
        else:
            token_real = torch.zeros(0, cfg.projection_dim, device=device, dtype=dtype)
            layer_outs, h_n, c_n = [], h0s, c0s

        # Back from the packed layout to (batch, words, 2P).
        def unpack(packed_fwd: torch.Tensor, packed_bwd: torch.Tensor) -> torch.Tensor:
            real = packed_fwd.new_zeros(n_real, hidden)
            real[layout.fwd_src, : cfg.projection_dim] = packed_fwd
            real[layout.bwd_src, cfg.projection_dim :] = packed_bwd
            full = packed_fwd.new_zeros(batch * width, hidden)
            full[layout.real_flat] = real
            return full.view(batch, width, hidden)

        token_full = token_real.new_zeros(batch * width, cfg.projection_dim)
        token_full[layout.real_flat] = token_real
        token_full = token_full.view(batch, width, cfg.projection_dim)
        layers = [torch.cat([token_full, token_full], dim=-1)]
        if n_real:
            layers += [unpack(out[0], out[1]) for out in layer_outs]
        else:
            layers += [token_real.new_zeros(batch, width, hidden) for _ in range(cfg.n_layers)]
        inv = torch.empty_like(layout.order)
        inv[layout.order] = torch.arange(batch, device=device)
        return tuple(layers), (h_n[:, :, inv], c_n[:, :, inv])

    def _forward_graph(self, input_ids: torch.Tensor, mask: torch.Tensor, h0: torch.Tensor,
                       c0: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], ElmoState]:
        """The traceable path (used while exporting or compiling, or with ``graph_mode = True``); differentiable
        when gradients are on and the character encoder's or the biLM's weights or the given state require them
        (``_forward_graph_masked``), else the inference form below, which is what an ONNX export holds.

        Inference form: the eager path's packed layout, built with traceable ops. Rows are sorted by falling length
        and each row's real words moved to its front, the backward direction reading them reversed, so that at step
        ``t`` the rows still running are the first ``running[t]``; the input products are computed for the real
        words only (the first layer's once per distinct word) and stored packed, time-major. Each layer's recurrence
        is one ``scan`` (an ONNX ``Scan``) whose step is ``hf_elmo::elmo_lstm_cell`` per direction, which works on
        the running rows only. The outputs go back to each word's place; padding gets zeros."""
        # hf_elmo::elmo_lstm_cell has no backward: the masked form whenever a gradient must pass through the steps
        if torch.is_grad_enabled() and (h0.requires_grad or c0.requires_grad or any(
                w.requires_grad for module in (self.char_encoder, self.bilm) for w in module.parameters())):
            return self._forward_graph_masked(input_ids, mask, h0, c0)
        cfg = self.config
        batch, width, n_chars = input_ids.shape
        p = cfg.projection_dim
        # the char CNN reads each distinct word once (padding is one all-zero "word")
        words, inverse = torch.unique(input_ids.reshape(batch * width, n_chars), dim=0, return_inverse=True)
        token_u = self.char_encoder(words)
        word_of = inverse.reshape(-1)
        tokens = token_u[word_of].view(batch, width, p) * mask.to(token_u.dtype).unsqueeze(-1)
        layers = [torch.cat([tokens, tokens], dim=-1)]

        lengths = mask.sum(dim=1)
        order = torch.argsort(lengths, descending=True)
        lens = lengths[order].unsqueeze(1)
        steps = torch.arange(width, device=input_ids.device)
        positions = torch.argsort(torch.where(mask, steps, steps + width), dim=1)[order]  # real words first
        reverse = torch.where(steps < lens, lens - 1 - steps, steps)  # each row's real words reversed
        rows = order.unsqueeze(1) * width
        real = steps.unsqueeze(1) < lens.t()  # (T, B): the slots holding a word
        slots = real.reshape(-1).nonzero().squeeze(1)  # packed, time-major: step t's running rows in turn
        running = real.sum(dim=1)
        offsets = torch.cumsum(running, 0) - running
        # the flat (batch · width) position of each packed word, per direction
        sources = [(rows + positions).t().reshape(-1)[slots],
                   (rows + positions.gather(1, reverse)).t().reshape(-1)[slots]]
        x = [token_u[word_of[src]] for src in sources]

        def unpack(packed: list[torch.Tensor]) -> torch.Tensor:
            full = [packed[d].new_zeros(batch * width, p).index_copy(0, sources[d], packed[d]) for d in range(2)]
            return torch.cat(full, dim=-1).view(batch, width, 2 * p)

        h0s, c0s = h0[:, :, order], c0[:, :, order]
        h_final, c_final = [], []
        for k, layer in enumerate(self.bilm.layers):
            bias = layer.effective_bias()
            if k == 0:  # once per distinct word
                gates = [F.linear(token_u, layer.weight_ih[d], bias[d])[word_of[sources[d]]] for d in range(2)]
            else:
                gates = [F.linear(x[d], layer.weight_ih[d], bias[d]) for d in range(2)]
            init = tuple(t.clone() for t in (h0s[k, 0], c0s[k, 0], h0s[k, 1], c0s[k, 1]))  # a scan's inputs: no views
            (h_f, c_f, h_b, c_b), ys = _scan(self.bilm.packed_step(layer, gates), init, (offsets, running))
            out = [y.reshape(-1, p)[slots] for y in ys]
            if cfg.use_skip_connections and k > 0:
                out = [out[d] + x[d] for d in range(2)]
            layers.append(unpack(out))
            h_final.append(torch.stack([h_f, h_b]))
            c_final.append(torch.stack([c_f, c_b]))
            x = out
        back = torch.argsort(order)
        return tuple(layers), (torch.stack(h_final)[:, :, back], torch.stack(c_final)[:, :, back])

    def _forward_graph_masked(self, input_ids: torch.Tensor, mask: torch.Tensor, h0: torch.Tensor,
                              c0: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], ElmoState]:
        """The differentiable traceable path: fixed shapes. Every word goes through the char CNN; each layer's
        recurrence is one ``scan`` over the padded time axis advancing both directions together, where a padded
        position leaves the state unchanged: the forward direction meets the real words in order and the backward
        direction (scanning the reversed time axis) in reverse order, whatever the padding side."""
        cfg = self.config
        batch, width, n_chars = input_ids.shape
        p = cfg.projection_dim
        m = mask.to(h0.dtype).unsqueeze(-1)
        # the char CNN reads each distinct word once (padding is one all-zero "word")
        words, inverse = torch.unique(input_ids.reshape(batch * width, n_chars), dim=0, return_inverse=True)
        tokens = self.char_encoder(words)[inverse].view(batch, width, p) * m
        layers = [torch.cat([tokens, tokens], dim=-1)]
        x_f, x_b = tokens, tokens
        time_mask = torch.stack([mask.transpose(0, 1), mask.flip(1).transpose(0, 1)], dim=1)  # (T, 2, B)
        real = mask.reshape(-1).nonzero().squeeze(1)  # the input products are computed at the real words only

        def input_gates(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            gates = F.linear(x.reshape(batch * width, -1).index_select(0, real), weight, bias)
            full = gates.new_zeros(batch * width, gates.shape[-1]).index_copy(0, real, gates)
            return full.view(batch, width, -1)  # zeros at padding, which the step function skips

        h_final, c_final = [], []
        for k, layer in enumerate(self.bilm.layers):
            bias = layer.effective_bias()
            gx_f = input_gates(x_f, layer.weight_ih[0], bias[0])
            gx_b = input_gates(x_b, layer.weight_ih[1], bias[1]).flip(1)
            gates = torch.stack([gx_f.transpose(0, 1), gx_b.transpose(0, 1)], dim=1)  # (T, 2, B, 4H)
            (h_n, c_n), ys = _scan(self.bilm.masked_step(layer), (h0[k], c0[k]), (gates, time_mask))
            out_f = ys[:, 0].transpose(0, 1)
            out_b = ys[:, 1].transpose(0, 1).flip(1)
            if cfg.use_skip_connections and k > 0:
                out_f, out_b = out_f + x_f, out_b + x_b
            layers.append(torch.cat([out_f, out_b], dim=-1))
            h_final.append(h_n)
            c_final.append(c_n)
            x_f, x_b = out_f, out_b
        return tuple(layers), (torch.stack(h_final), torch.stack(c_final))


class _ElmoHeadModel(ElmoPreTrainedModel):
    """Shared plumbing of the task heads: the biLM, dropout, and the mask from ``input_ids``."""

    def __init__(self, config: ElmoConfig) -> None:
        super().__init__(config)
        self.elmo = ElmoModel(config)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.dropout
        self.dropout = nn.Dropout(p)

    def freeze_bilm(self, freeze: bool = True) -> None:
        """Freezes (or unfreezes) the character encoder and the biLSTM; the scalar mixes and the head still train,
        as ELMo is used in the paper."""
        for module in (self.elmo.char_encoder, self.elmo.bilm):
            for p in module.parameters():
                p.requires_grad_(not freeze)



class ElmoForSequenceClassification(_ElmoHeadModel):
    """ELMo → scalar mix → dropout → mean over the real words → linear. ``labels`` → cross-entropy (or MSE for
    ``num_labels == 1``, BCE for ``problem_type="multi_label_classification"``)."""

    def __init__(self, config: ElmoConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> ElmoClassifierOutput | tuple:
        out = self.elmo(input_ids, attention_mask, output_hidden_states=output_hidden_states, **kwargs)
        mask = _word_mask(input_ids, attention_mask).to(out.last_hidden_state.device)
        x = self.dropout(out.last_hidden_state)
        m = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp_min(1)
        logits = self.classifier(pooled)
        loss = None
        if labels is not None:
            loss = _sequence_loss(self.config, logits, labels.to(logits.device))
        result = ElmoClassifierOutput(loss=loss, logits=logits,
                                      hidden_states=out.hidden_states if output_hidden_states else None)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return result if return_dict else result.to_tuple()


def _sequence_loss(config: ElmoConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "regression":
        return F.mse_loss(logits.squeeze(-1).float(), labels.float().view(-1))
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.float().view(-1, config.num_labels), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


class ElmoForTokenClassification(_ElmoHeadModel):
    """ELMo → scalar mix → dropout → linear per word. ``labels`` (batch, words), -100 ignored (boundaries, padding)."""

    def __init__(self, config: ElmoConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> ElmoClassifierOutput | tuple:
        out = self.elmo(input_ids, attention_mask, output_hidden_states=output_hidden_states, **kwargs)
        logits = self.classifier(self.dropout(out.last_hidden_state))
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            if labels.shape != logits.shape[:2]:
                raise ValueError(f"labels shape {tuple(labels.shape)} must be (batch, words) = {tuple(logits.shape[:2])}")
            loss = F.cross_entropy(logits.float().reshape(-1, self.num_labels), labels.reshape(-1), ignore_index=-100)
        result = ElmoClassifierOutput(loss=loss, logits=logits,
                                      hidden_states=out.hidden_states if output_hidden_states else None)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return result if return_dict else result.to_tuple()


class ElmoForLanguageModeling(ElmoPreTrainedModel):
    """The bidirectional LM that ELMo is trained as: the top layer's forward half predicts the next word, its
    backward half the previous word, through one softmax over the word vocabulary shared by both directions (as in
    bilm-tf). ``labels`` are word-vocabulary ids aligned with ``input_ids`` (``ElmoTokenizer(...,
    return_token_ids=True)["token_ids"]``), -100 at padding; the loss is the mean of both directions' losses.

    With ``config.sampled_softmax_num_samples > 0`` training uses a sampled softmax (log-uniform candidates, as the
    original, for vocabularies of hundreds of thousands of words; the vocabulary must be sorted by falling
    frequency); evaluation always uses the full softmax.
    """

    def __init__(self, config: ElmoConfig) -> None:
        super().__init__(config)
        if config.vocab_size <= 0:
            raise ValueError("ElmoForLanguageModeling needs config.vocab_size > 0 (the word vocabulary's size)")
        self.elmo = ElmoModel(config)
        self.softmax = nn.Linear(config.projection_dim, config.vocab_size)
        self.post_init()

    def get_output_embeddings(self) -> nn.Module:
        return self.softmax

    def _sampled_loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Sampled softmax cross-entropy (log-uniform proposal, accidental hits removed) over ``targets`` ≥ 0."""
        vocab, k = self.config.vocab_size, self.config.sampled_softmax_num_samples
        ranks = torch.arange(vocab, device=hidden.device, dtype=torch.float64)
        probs = (torch.log(ranks + 2) - torch.log(ranks + 1)) / math.log(vocab + 1)
        sampled = torch.multinomial(probs.float(), k, replacement=True)
        log_q_sampled = torch.log(k * probs[sampled]).to(hidden.dtype)
        log_q_true = torch.log(k * probs[targets]).to(hidden.dtype)
        w, b = self.softmax.weight, self.softmax.bias
        true_logits = (hidden * w[targets]).sum(-1) + b[targets] - log_q_true
        sampled_logits = hidden @ w[sampled].T + b[sampled] - log_q_sampled
        sampled_logits = sampled_logits.masked_fill(sampled[None, :] == targets[:, None], float("-inf"))
        logits = torch.cat([true_logits[:, None], sampled_logits], dim=1).float()
        return F.cross_entropy(logits, torch.zeros_like(targets))

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, state: ElmoState | None = None, use_cache: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                **kwargs: Any) -> ElmoLanguageModelingOutput | tuple:
        out = self.elmo(input_ids, attention_mask, state=state, use_cache=use_cache, output_hidden_states=True,
                        **kwargs)
        top = out.hidden_states[-1]
        p = self.config.projection_dim
        fwd_h, bwd_h = top[..., :p], top[..., p:]
        sampled = self.training and self.config.sampled_softmax_num_samples > 0
        logits = None
        if not sampled:
            logits = torch.stack([self.softmax(fwd_h), self.softmax(bwd_h)], dim=2)
        loss = fwd_loss = bwd_loss = None
        if labels is not None:
            labels = labels.to(top.device).long()
            if labels.shape != top.shape[:2]:
                raise ValueError(f"labels shape {tuple(labels.shape)} must be (batch, words) = {tuple(top.shape[:2])}")
            mask = _word_mask(input_ids, attention_mask).to(top.device)
            # forward: position t predicts t+1; backward: position t+1 predicts t (both must be real words)
            pair = mask[:, :-1] & mask[:, 1:]
            fwd_targets = labels[:, 1:].masked_fill(~pair, -100)
            bwd_targets = labels[:, :-1].masked_fill(~pair, -100)
            if sampled:
                sel_f, sel_b = fwd_targets >= 0, bwd_targets >= 0
                fwd_loss = self._sampled_loss(fwd_h[:, :-1][sel_f], fwd_targets[sel_f])
                bwd_loss = self._sampled_loss(bwd_h[:, 1:][sel_b], bwd_targets[sel_b])
            else:
                v = self.config.vocab_size
                fwd_loss = F.cross_entropy(logits[:, :-1, 0].float().reshape(-1, v), fwd_targets.reshape(-1))
                bwd_loss = F.cross_entropy(logits[:, 1:, 1].float().reshape(-1, v), bwd_targets.reshape(-1))
            loss = 0.5 * (fwd_loss + bwd_loss)
        result = ElmoLanguageModelingOutput(
            loss=loss, logits=logits, forward_loss=fwd_loss, backward_loss=bwd_loss,
            hidden_states=out.hidden_states if output_hidden_states else None, state=out.state,
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return result if return_dict else result.to_tuple()
