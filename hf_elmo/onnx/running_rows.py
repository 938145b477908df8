"""onnxscript pieces shared by the ONNX translations of the custom ops that work on a batch's first rows only, the
rows still running (``hf_elmo_onnx::lstm`` for AWD-LSTM, ``bilstm_elmo.lstm_cell_op`` for ELMo): take those rows, and
give the results back the whole batch's rows (the other rows' states unchanged, their outputs zero). ``n`` is the
number of running rows, a (1,) int64 value; ``axis`` the batch axis. Imported by those translations only (at
export), as onnxscript is."""

from __future__ import annotations

from typing import Any

from onnxscript import opset18 as op


def first_rows(x: Any, n: Any, axis: int) -> Any:
    """``x``'s first ``n`` rows along ``axis``."""
    return op.Slice(x, op.Constant(value_ints=[0]), n, op.Constant(value_ints=[axis]))


def rows_then_rest(new: Any, old: Any, n: Any, axis: int) -> Any:
    """``new`` (``n`` rows along ``axis``) followed by ``old``'s rows from ``n`` on."""
    end = op.Shape(old, start=axis, end=axis + 1)
    rest = op.Slice(old, n, end, op.Constant(value_ints=[axis]))
    return op.Concat(new, rest, axis=axis)


def rows_then_zeros(new: Any, total: Any, n: Any, axis: int) -> Any:
    """``new`` (``n`` rows along ``axis``) followed by zero rows up to ``total`` ((1,) int64) rows."""
    pads = op.Concat(op.Constant(value_ints=[0]), op.Sub(total, n), axis=0)
    return op.Pad(new, pads, None, op.Constant(value_ints=[axis]))
