"""oneDNN's pre-packed matrix products on CPU: whether they can run, a weight packed for them, the product itself, and
a cache of packed weights for inference: an identical copy of the ELMo folder's packed_linear.py (``# Copied from``,
kept so by tests/check_copies.py), since each model folder ships to the Hub as self-contained remote code.

A weight reordered ("pre-packed") into oneDNN's blocked layout lets its GEMM skip re-packing the matrix at every call,
which dominates at the small row counts of a recurrence; on AMD CPUs oneDNN's AVX-512 kernels also beat the MKL
products that ``torch.mm``/``F.linear`` run in float32. The AWD-LSTM language model reads its decoder through it in
evaluation (`PackedLinearCache`) and in the fused loss's blocks, and its CPU training recurrence (cpu_lstm.py) runs
its step products with packed weights.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

import torch
import torch.nn.functional as F


# Copied from hf_elmo.models.elmo.packed_linear.onednn_available
@functools.cache
def onednn_available() -> bool:
    """torch was built with oneDNN and has the pre-packed product's two ops."""
    return bool(
        torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    )


# Copied from hf_elmo.models.elmo.packed_linear.onednn_bf16_available
@functools.cache
def onednn_bf16_available() -> bool:
    """oneDNN's bfloat16 kernels need AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT: on an AVX2-only CPU its reorder
    raises, while an ordinary ``F.linear`` in bfloat16 still runs (slowly), so bfloat16 takes that path there."""
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return onednn_available() and probe is not None and bool(probe())


# Copied from hf_elmo.models.elmo.packed_linear.tracing
def tracing() -> bool:
    """True while tracing, compiling or exporting: only ordinary differentiable ops may be used then."""
    return bool(
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or (hasattr(torch, "compiler") and torch.compiler.is_compiling())
        or (hasattr(torch, "onnx") and torch.onnx.is_in_onnx_export())
    )


# Copied from hf_elmo.models.elmo.packed_linear.onednn_usable
def onednn_usable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """``x @ weight.T`` can run as oneDNN's product: both on the CPU in one dtype that it has kernels for here, no
    gradient to take through it (the ops have no backward) and nothing being traced."""
    return (
        onednn_available()
        and x.device.type == "cpu"
        and weight.device.type == "cpu"
        and x.dtype == weight.dtype
        and (x.dtype == torch.float32 or (x.dtype == torch.bfloat16 and onednn_bf16_available()))
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and not tracing()
    )


# Copied from hf_elmo.models.elmo.packed_linear.pack_weight
def pack_weight(weight: torch.Tensor, rows: int = 32) -> torch.Tensor:
    """``weight`` (out, in), as ``nn.Linear`` holds it, reordered for `packed_linear`; ``rows`` is the row count the
    layout is chosen for (the products' speed hardly depends on it)."""
    with torch.no_grad():
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), rows)


# Copied from hf_elmo.models.elmo.packed_linear.packed_linear
def packed_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  bucket: bool = True) -> torch.Tensor:
    """``x @ weight.T + bias`` by oneDNN, ``weight`` packed (`pack_weight`) or plain (any strides: a transposed view
    is read as it is); ``x`` (..., in) → (..., out). With ``bucket`` the product runs at `row_bucket`'s row counts
    (rows beyond ``CHUNK_ROWS`` in chunks of that many, the extra rows zero, the result cut back), so that a caller
    whose row counts vary compiles few kernels."""
    lead = x.shape[:-1]
    rows = x.reshape(-1, x.shape[-1])
    n = rows.shape[0]
    if not bucket:
        out = _onednn(rows.contiguous(), weight, bias)
    elif n <= CHUNK_ROWS:
        out = _onednn(_padded(rows, row_bucket(n)), weight, bias)[:n]
    else:  # chunks of CHUNK_ROWS, the last one's rows a multiple of 64 too (no small exact count from a remainder)
        out = torch.cat([_onednn(_padded(rows[start : start + CHUNK_ROWS], row_bucket(max(65, min(CHUNK_ROWS,
                                                                                             n - start)))),
                                 weight, bias)[: min(CHUNK_ROWS, n - start)]
                         for start in range(0, n, CHUNK_ROWS)])
    return out.reshape(*lead, out.shape[-1])


# Copied from hf_elmo.models.elmo.packed_linear._onednn
def _onednn(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(rows, weight, None if bias is None else bias.detach(), "none", [], "")


# Copied from hf_elmo.models.elmo.packed_linear._padded
def _padded(rows: torch.Tensor, size: int) -> torch.Tensor:
    """``rows`` (n, in), contiguous, followed by zero rows up to ``size``."""
    n = rows.shape[0]
    if size == n:
        return rows.contiguous()
    padded = rows.new_empty((size, rows.shape[1]))
    padded[:n] = rows
    padded[n:] = 0
    return padded


# the largest product `packed_linear` runs in one piece when it buckets (a larger one runs in chunks of this many rows)
CHUNK_ROWS = 1024


# Copied from hf_elmo.models.elmo.packed_linear.row_bucket
def row_bucket(n: int) -> int:
    """The row count a product of ``n`` rows (at most ``CHUNK_ROWS``) runs at on the bucketed path: ``n`` itself up
    to 64 (a recurrence's rows), above that ``n`` rounded up to a multiple of 64.

    oneDNN compiles and keeps a kernel for every matrix shape it meets, ~0.4-0.7 MB of resident memory each, up to
    1,024 of them: the character CNN's, highway's and input products' row counts change with every batch (the batch's
    words), so that over a long ``hf-elmo embed`` run exact row counts grew the process by ~1 GB. Bucketed and
    chunked, a weight meets at most 16 shapes above 64 rows, within the first batches, and memory stops growing
    early (a bucket of 64 rows costs no measurable time at the original size)."""
    if n <= 64:
        return n
    return -(-n // 64) * 64


# Copied from hf_elmo.models.elmo.packed_linear.PackedLinearCache
class PackedLinearCache:
    """Keeps oneDNN-reordered copies of weights for inference on CPU.

    The cache is only used in eval mode and is emptied at every switch between train and eval mode and on ``.to()``:
    a fused optimizer step (the Trainer's default) updates parameters without bumping their version counters, so the
    counters alone cannot be trusted across training. Within eval mode an entry is also rebuilt when the weight's
    version counter, storage or dtype changes (``load_state_dict``, in-place edits).
    """

    def __init__(self) -> None:
        self.enabled = True  # False in train mode (set by the model's ``train``)
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
        return self.enabled and onednn_usable(x, weight)

    def linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``x @ weight.T + bias`` (``weight`` is ``(out, in)`` as in ``nn.Linear``): with the weight packed once
        where `usable`, else ``F.linear``."""
        if not self.usable(x, weight):
            return F.linear(x, weight, bias)
        owner = weight._base if weight._base is not None else weight
        key = (weight.data_ptr(), tuple(weight.shape), tuple(weight.stride()), weight.dtype)
        version = -1 if weight.is_inference() else weight._version  # inference tensors keep no version counter
        entry = self._entries.get(key)
        if entry is None or entry[0]() is not owner or entry[1] != version:
            entry = (weakref.ref(owner), version, pack_weight(weight))
            self._entries[key] = entry
        return packed_linear(x, entry[2], bias)
