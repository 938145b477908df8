"""ELMo's biLSTM recurrence, stated once: the cell, the packed layout of a batch's words, and the executors that run
the cell over that layout.

* `lstm_cell` is the one statement of the cell (TensorFlow's LSTMCell with projection and clipping, as bilm-tf runs
  it). It is written over a small table of tensor operations (`TorchOps` here; hf_elmo.onnx.elmo passes ONNX ones),
  so that the eager, differentiable, traced and exported paths all execute the same lines.
* `PackedLayout` is the one layout: rows sorted by falling length, each row's real words first (the backward
  direction reading them reversed), time-major, so that at step ``t`` the rows still running are a prefix of
  ``running[t]`` rows and no work is spent on padding. It is built with traceable ops only, so the exported graph
  holds the same layout as the eager path.
* The executors only run `lstm_cell` over that layout; ``ElmoBiLm.forward`` (modeling_elmo.py) chooses one per layer
  in one place:

  | executor | when | how |
  |---|---|---|
  | `run_inplace` | eager CPU inference | per direction, pre-packed oneDNN products (packed_linear.py), states written in place |
  | `run_batched` | eager with gradients, or not on CPU | both directions in one batched product per step |
  | `run_scan_running` | traced inference (ONNX export) | one ``scan``; each step is `lstm_cell_op` on the running rows |
  | `run_scan_masked` | traced with gradients (compiled training) | one ``scan`` over the dense layout, masked updates |

This file is a sibling of modeling_elmo.py and ships with it as remote code (torch only).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

if TYPE_CHECKING:  # run_inplace is handed the model's cache; this file itself needs torch only
    from .packed_linear import PackedLinearCache

# ELMo's recurrent state: h (n_layers, 2, batch, projection_dim) and c (n_layers, 2, batch, lstm_dim).
ElmoState = tuple[torch.Tensor, torch.Tensor]


# --------------------------------------------------------------------------------------------------------------------
# The cell
# --------------------------------------------------------------------------------------------------------------------
class TorchOps:
    """The tensor operations `lstm_cell` is written in, for torch tensors. hf_elmo.onnx.elmo has the same table for
    ONNX values, so that the exported graph executes the cell's lines rather than a second statement of them.

    Where nothing is traced and no gradient will be taken through a value (eager inference: `run_inplace`), an
    operation writes into its first argument, which in `lstm_cell` is always a value the cell computed itself (the
    gates' sum that the executor hands it, their slices, their products): no allocation per operation, and one
    ``sigmoid`` over the four gates. Elsewhere every operation returns a new tensor, as autograd needs."""

    @staticmethod
    def activate_gates(gates: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(σ(i), tanh(j), σ(f), σ(o)) from the gates' sum (..., 4H), in TensorFlow's order. tanh(j) is computed as
        2·σ(2j) − 1, so that in place one ``sigmoid`` covers all four (the sum is overwritten)."""
        if _writable(gates):
            hidden = gates.shape[-1] // 4
            j = gates[..., hidden : 2 * hidden]
            j.mul_(2)
            gates.sigmoid_()
            j.mul_(2).sub_(1)
            return gates.split(hidden, dim=-1)
        i, j, f, o = gates.chunk(4, dim=-1)
        return torch.sigmoid(i), TorchOps.tanh(j), torch.sigmoid(f), torch.sigmoid(o)

    @staticmethod
    def tanh(x: torch.Tensor) -> torch.Tensor:
        """tanh(x) = 2·σ(2x) − 1 (within ~1.2e-7 of ``torch.tanh`` in float32), a new tensor. On CPU torch's
        ``tanh`` goes through MKL's vector math, which takes a slow path on AMD CPUs: 247 µs against 77 µs for these
        four ops on a (32, 4096) float32 cell block on the 2-core Zen 4 (its ``sigmoid`` is torch's own kernel)."""
        s = torch.sigmoid(x * 2)
        return s * 2 - 1 if s.requires_grad else s.mul_(2).sub_(1)  # sigmoid's backward reads its output

    @staticmethod
    def mul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.mul_(y) if _writable(x) else torch.mul(x, y)

    @staticmethod
    def add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.add_(y) if _writable(x) else torch.add(x, y)

    @staticmethod
    def clip(x: torch.Tensor, bound: float | None) -> torch.Tensor:
        if not bound:
            return x
        return x.clamp_(-bound, bound) if _writable(x) else x.clamp(-bound, bound)


def _writable(x: torch.Tensor) -> bool:
    """``x`` may be written in place: nothing is traced, and no gradient will be taken through it."""
    return not (torch.is_grad_enabled() and x.requires_grad) and not _tracing()


def _tracing() -> bool:
    return bool(torch.jit.is_tracing() or torch.jit.is_scripting()
                or (hasattr(torch, "compiler") and torch.compiler.is_compiling())
                or (hasattr(torch, "onnx") and torch.onnx.is_in_onnx_export()))


def lstm_cell(gates: Any, c_prev: Any, project: Callable[[Any], Any], cell_clip: float | None,
              proj_clip: float | None, ops: Any = TorchOps) -> tuple[Any, Any]:
    """TensorFlow's LSTMCell with projection, as bilm-tf runs it::

        i, j, f, o = σ, tanh, σ, σ of the gates  (input and recurrent products plus the bias, TensorFlow's forget
                                                  bias included)
        c = clip(f·c_prev + i·j, cell_clip)
        h = clip(project(o·tanh(c)), proj_clip)

    Shapes: ``gates`` (..., 4H), ``c_prev`` (..., H) → ``c`` (..., H), ``h`` (..., P); ``project`` maps (..., H) to
    (..., P) (the projection matrix, however the caller multiplies: pre-packed, batched, ONNX ``MatMul``, casting a
    reduced-precision cell output to the weights' dtype first). A clip of 0 or None is none. ``gates`` is the
    caller's to give away (`TorchOps` may compute in it); ``c_prev`` is only read."""
    i, j, f, o = ops.activate_gates(gates)
    c = ops.clip(ops.add(ops.mul(f, c_prev), ops.mul(i, j)), cell_clip)
    h = ops.clip(project(ops.mul(o, ops.tanh(c))), proj_clip)
    return c, h


def cell_dtype(dtype: torch.dtype) -> torch.dtype:
    """The cell state and gate arithmetic stay in float32 when the weights are half or bfloat16."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


# --------------------------------------------------------------------------------------------------------------------
# The packed layout
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class PackedLayout:
    """Where each word of a (batch, width) batch goes in the packed, time-major layout the recurrence runs on.

    Rows are sorted by falling length (``order``); within a row the real words come first, in order for the forward
    direction and reversed for the backward one, so that step ``t`` of both directions runs on the first
    ``running[t]`` sorted rows. Attributes:

    * ``order`` (B,): the batch rows by falling length;
    * ``sources``: per direction, (N,) flat positions (``row · width + word``) of the N real words in packed order
      (step 0's running rows, then step 1's, ...);
    * ``running`` (T,), ``offsets`` (T,): how many rows run at step ``t`` (T = width) and where their words start
      in the packed order;
    * ``slots`` (N,): each packed word's place in the dense (T, B) time-major layout of the sorted rows.
    """

    order: torch.Tensor
    sources: tuple[torch.Tensor, torch.Tensor]
    running: torch.Tensor
    offsets: torch.Tensor
    slots: torch.Tensor
    batch: int
    width: int

    @classmethod
    def from_mask(cls, mask: torch.Tensor) -> "PackedLayout":
        """``mask`` (batch, width) bool, True at real words (any padding: left, right, holes). Traceable ops only."""
        batch, width = mask.shape
        lengths = mask.sum(dim=1)
        # by falling length, ties in batch order: distinct keys make the order deterministic (a stable sort would
        # too, but ONNX has none)
        order = torch.argsort(lengths * batch - torch.arange(batch, device=mask.device), descending=True)
        lens = lengths[order].unsqueeze(1)
        steps = torch.arange(width, device=mask.device)
        positions = torch.argsort(torch.where(mask, steps, steps + width), dim=1)[order]  # real words first
        reverse = torch.where(steps < lens, lens - 1 - steps, steps)  # each row's real words reversed
        rows = order.unsqueeze(1) * width
        real = steps.unsqueeze(1) < lens.t()  # (T, B): the slots holding a word
        slots = real.reshape(-1).nonzero().squeeze(1)
        running = real.sum(dim=1)
        offsets = torch.cumsum(running, 0) - running
        sources = ((rows + positions).t().reshape(-1)[slots],
                   (rows + positions.gather(1, reverse)).t().reshape(-1)[slots])
        return cls(order, sources, running, offsets, slots, batch, width)

    def steps(self) -> list[int]:
        """``running`` as Python ints, without the trailing steps where no row runs (the eager executors' loop)."""
        return [n for n in self.running.tolist() if n]

    def unpack(self, packed: list[torch.Tensor]) -> torch.Tensor:
        """Both directions' packed outputs, 2 × (N, P), back at their words: (batch, width, 2P), zeros at padding."""
        full = [packed[d].new_zeros(self.batch * self.width, packed[d].shape[-1]).index_copy(0, self.sources[d],
                                                                                             packed[d])
                for d in range(2)]
        return torch.cat(full, dim=-1).view(self.batch, self.width, sum(p.shape[-1] for p in packed))

    def to_dense(self, packed: torch.Tensor) -> torch.Tensor:
        """(N, F) packed rows → (T, B, F) dense time-major rows of the sorted batch, zeros where no word is."""
        dense = packed.new_zeros(self.width * self.batch, packed.shape[-1]).index_copy(0, self.slots, packed)
        return dense.view(self.width, self.batch, packed.shape[-1])

    def from_dense(self, dense: torch.Tensor) -> torch.Tensor:
        """(T, B, F) → (N, F): the inverse of `to_dense` at the words."""
        return dense.reshape(self.width * self.batch, -1)[self.slots]

    def dense_mask(self) -> torch.Tensor:
        """(T, B) bool: the dense slots that hold a word."""
        mask = torch.zeros(self.width * self.batch, dtype=torch.bool, device=self.slots.device)
        return mask.index_fill(0, self.slots, True).view(self.width, self.batch)

    def sort_rows(self, state: torch.Tensor) -> torch.Tensor:
        """A (..., 2, B, ·) state in batch order → sorted row order."""
        return state[..., self.order, :]

    def unsort_rows(self, state: torch.Tensor) -> torch.Tensor:
        """A (..., 2, B, ·) state in sorted row order → batch order."""
        return state[..., torch.argsort(self.order), :]


@dataclass
class GatheredRows:
    """Packed input products held as a table and, per packed position, its row in it: the first layer's, whose
    products are context-free and computed once per distinct word (``table`` (U, 4H), ``index`` (N,) long).

    `run_inplace` reads each step's rows straight from the table (a step's few rows stay in the CPU's cache), so
    that the (N, 4H) products of every word of the batch are never written out and read back (57 MB per direction
    for 870 words at the original size, ~5% of a batch); the other executors take them whole (`materialize`), with
    the same indexing, so that a traced graph holds the same ops as before."""

    table: torch.Tensor
    index: torch.Tensor

    @property
    def dtype(self) -> torch.dtype:
        return self.table.dtype

    @property
    def requires_grad(self) -> bool:
        return self.table.requires_grad

    def rows(self, start: int, n: int) -> torch.Tensor:
        """The products of packed positions ``start .. start + n``: (n, 4H)."""
        return self.table[self.index[start : start + n]]

    def materialize(self) -> torch.Tensor:
        """All of them: (N, 4H)."""
        return self.table[self.index]


def materialize(gates: list[Any]) -> list[torch.Tensor]:
    """Both directions' packed input products as (N, 4H) tensors, whichever form they came in."""
    return [g.materialize() if isinstance(g, GatheredRows) else g for g in gates]


def _step_rows(gates: Any, start: int, n: int) -> torch.Tensor:
    return gates.rows(start, n) if isinstance(gates, GatheredRows) else gates[start : start + n]


# --------------------------------------------------------------------------------------------------------------------
# The executors. Each runs one layer: packed input products ``gates`` (2 × (N, 4H), the bias included) and the
# initial states ``h0`` (2, B, P) / ``c0`` (2, B, H) in sorted row order → the packed outputs (2 × (N, P)) and the
# final states (a row that ended early keeps the state after its last word). ``w_hh`` (2, 4H, P) and ``w_proj``
# (2, P, H) are the layer's recurrent and projection weights, as nn.Linear holds them.
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class Clips:
    """The layer's clips (0 is none): the cell state's and the projection's."""

    cell: float
    proj: float


@torch.no_grad()
def run_inplace(cache: PackedLinearCache, w_hh: torch.Tensor, w_proj: torch.Tensor, gates: list[Any],
                layout: PackedLayout, h0: torch.Tensor, c0: torch.Tensor, clips: Clips
                ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """CPU inference: pre-packed oneDNN products on the rows still running, states written in place, one direction's
    steps after the other's: a step reads its direction's recurrent and projection weights only, which then stay in
    the CPU's last-level cache from step to step where they fit (bfloat16 at the original size: 21 MB of a 32 MB
    L3; +5% tokens/s on the 2-core Zen 4 against both directions in each step). ``gates`` may also be
    `GatheredRows`, read step by step."""
    dtype = gates[0].dtype
    h, c = h0.to(dtype).clone(), c0.to(cell_dtype(dtype)).clone()
    outputs: list[list[torch.Tensor]] = [[], []]
    steps = layout.steps()
    for d in range(2):
        offset = 0
        for n in steps:
            g = cache.linear(h[d, :n], w_hh[d]).to(c.dtype)
            g += _step_rows(gates[d], offset, n)
            c[d, :n], h_new = lstm_cell(g, c[d, :n], lambda m: cache.linear(m.to(dtype), w_proj[d]),
                                        clips.cell, clips.proj)
            h[d, :n] = h_new
            outputs[d].append(h_new)
            offset += n
    return [_cat_rows(o, h, w_proj.shape[1]) for o in outputs], h, c


def run_batched(w_hh: torch.Tensor, w_proj: torch.Tensor, gates: list[torch.Tensor], layout: PackedLayout,
                h0: torch.Tensor, c0: torch.Tensor, clips: Clips
                ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Differentiable and device-agnostic: both directions in one batched product per step, states updated out of
    place so that autograd can go back through every step."""
    gx = torch.stack(gates)
    w_hh_t, w_proj_t = w_hh.transpose(1, 2), w_proj.transpose(1, 2)
    h, c = h0.to(gx.dtype), c0.to(cell_dtype(gx.dtype))
    outputs, offset = [], 0
    for n in layout.steps():
        g = gx[:, offset : offset + n].to(c.dtype) + torch.bmm(h[:, :n], w_hh_t).to(c.dtype)
        offset += n
        c_new, h_new = lstm_cell(g, c[:, :n], lambda m: torch.bmm(m.to(gx.dtype), w_proj_t), clips.cell, clips.proj)
        c = torch.cat([c_new, c[:, n:]], dim=1)
        h = torch.cat([h_new, h[:, n:]], dim=1)
        outputs.append(h_new)
    out = torch.cat(outputs, dim=1) if outputs else gx.new_zeros(2, 0, w_proj.shape[1])
    return [out[0], out[1]], h, c


def _cat_rows(rows: list[torch.Tensor], like: torch.Tensor, width: int) -> torch.Tensor:
    return torch.cat(rows, dim=0) if rows else like.new_zeros(0, width)


def _scan(step: Any, init: Any, xs: Any) -> tuple[Any, torch.Tensor]:
    """torch's ``scan`` higher-order op (exported to ONNX as a ``Scan`` loop): ``step(carry, x_t) -> (carry, y_t)``
    over the leading axis of ``xs``; returns the final carry and the stacked ``y``."""
    from torch._higher_order_ops.scan import scan

    return scan(step, init, xs)


def _running_cell(h: torch.Tensor, c: torch.Tensor, gates: torch.Tensor, offset: torch.Tensor, running: torch.Tensor,
                  w_hh: torch.Tensor, w_proj: torch.Tensor, cell_clip: float, proj_clip: float
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of one direction on the rows still running (the body of `lstm_cell_op`): ``h`` (B, P), ``c`` (B, H)
    the states, rows sorted by falling length; ``gates`` (N, 4H) the packed input products, this step's ``running``
    rows at ``offset``; ``w_hh`` (P, 4H), ``w_proj`` (H, P). Returns the new states (rows from ``running`` on
    unchanged) and the step's output (B, P), zeros from row ``running`` on."""
    n, start = int(running), int(offset)
    c_new, h_new = lstm_cell(gates[start : start + n] + h[:n] @ w_hh, c[:n], lambda m: m.to(h.dtype) @ w_proj,
                             cell_clip, proj_clip)
    return (torch.cat([h_new, h[n:]]), torch.cat([c_new.to(c.dtype), c[n:]]),
            torch.cat([h_new, h.new_zeros(h.shape[0] - n, h.shape[1])]))


def _source_digest() -> str:
    """A digest of this file, so that two different versions of it in one process (the installed package and a
    Hub folder's remote code) register two different ops instead of silently sharing the first one's."""
    try:
        data = Path(__file__).read_bytes()
    except OSError:  # no readable source (e.g. a zip import): the op's own code stands for it
        data = _running_cell.__code__.co_code + lstm_cell.__code__.co_code
    return hashlib.sha256(data).hexdigest()[:12]


LSTM_CELL_OP_NAME = f"hf_elmo::elmo_lstm_cell_{_source_digest()}"


def _define_lstm_cell_op() -> Any:
    """``torch.ops.hf_elmo.elmo_lstm_cell_<digest>``: `_running_cell` as one opaque op, for the traceable inference
    path.

    An exported loop body has fixed shapes in torch, so "the first ``running`` rows" cannot be expressed with torch's
    own ops there (a data-dependent size inside ``scan`` is refused); as one opaque op it can, and its ONNX
    translation (hf_elmo.onnx.elmo, which runs `lstm_cell` with ONNX operations) slices those rows, so ONNX Runtime
    spends no work on finished or padded rows, as the eager path does. The op is process-global: its name carries
    this file's digest, so an identical copy of this file reuses it and a different one gets its own."""
    namespace, name = LSTM_CELL_OP_NAME.split("::")
    try:
        return getattr(getattr(torch.ops, namespace), name)
    except (AttributeError, RuntimeError):
        pass
    op = torch.library.custom_op(LSTM_CELL_OP_NAME, mutates_args=())(_running_cell)

    @op.register_fake
    def _(h, c, gates, offset, running, w_hh, w_proj, cell_clip, proj_clip):
        return torch.empty_like(h), torch.empty_like(c), torch.empty_like(h)

    return getattr(getattr(torch.ops, namespace), name)


lstm_cell_op = _define_lstm_cell_op()


def run_scan_running(w_hh: torch.Tensor, w_proj: torch.Tensor, gates: list[torch.Tensor], layout: PackedLayout,
                     h0: torch.Tensor, c0: torch.Tensor, clips: Clips
                     ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Traceable inference (what an ONNX export holds): one ``scan`` over the steps, both directions in the same
    loop, each direction's step `lstm_cell_op` on the running rows only. Not differentiable (the op has no
    backward)."""
    w_hh_t = [w_hh[d].t().contiguous() for d in range(2)]  # copies: a scan's captured tensors must not alias
    w_proj_t = [w_proj[d].t().contiguous() for d in range(2)]
    cell_clip, proj_clip = float(clips.cell or 0.0), float(clips.proj or 0.0)

    def step(carry: tuple[torch.Tensor, ...], inputs: tuple[torch.Tensor, torch.Tensor]):
        offset, running = inputs
        out_carry, ys = [], []
        for d in range(2):
            h, c, y = lstm_cell_op(carry[2 * d], carry[2 * d + 1], gates[d], offset, running, w_hh_t[d],
                                   w_proj_t[d], cell_clip, proj_clip)
            out_carry += [h, c]
            ys.append(y)
        return tuple(out_carry), tuple(ys)

    init = tuple(t.clone() for t in (h0[0], c0[0], h0[1], c0[1]))  # a scan's inputs: no views
    (h_f, c_f, h_b, c_b), ys = _scan(step, init, (layout.offsets, layout.running))
    p = w_proj.shape[1]
    outs = [y.reshape(-1, p)[layout.slots] for y in ys]
    return outs, torch.stack([h_f, h_b]), torch.stack([c_f, c_b])


def run_scan_masked(w_hh: torch.Tensor, w_proj: torch.Tensor, gates: list[torch.Tensor], layout: PackedLayout,
                    h0: torch.Tensor, c0: torch.Tensor, clips: Clips
                    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Traceable and differentiable (fixed shapes): one ``scan`` over the dense (T, B) form of the layout, both
    directions together; a slot without a word leaves its row's state unchanged and outputs zeros."""
    w_hh_t, w_proj_t = w_hh.transpose(1, 2), w_proj.transpose(1, 2)
    dense = torch.stack([layout.to_dense(gates[d]) for d in range(2)], dim=1)  # (T, 2, B, 4H)

    def step(carry: tuple[torch.Tensor, torch.Tensor], inputs: tuple[torch.Tensor, torch.Tensor]):
        h, c = carry
        g, keep = inputs
        c_new, h_new = lstm_cell(g + torch.bmm(h, w_hh_t), c, lambda m: torch.bmm(m.to(h.dtype), w_proj_t),
                                 clips.cell, clips.proj)
        keep = keep[None, :, None]
        return (torch.where(keep, h_new, h), torch.where(keep, c_new.to(c.dtype), c)), h_new * keep.to(h_new.dtype)

    (h, c), ys = _scan(step, (h0, c0), (dense, layout.dense_mask()))
    return [layout.from_dense(ys[:, d]) for d in range(2)], h, c
