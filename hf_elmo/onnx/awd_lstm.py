"""The ONNX exporter configuration of AWD-LSTM (``model_type="awd_lstm"``): the encoder, the language model and the
ULMFiT classifier, each LSTM layer as one ONNX ``LSTM`` op.

Inputs: ``input_ids`` (batch, tokens) int64 and ``attention_mask`` (batch, tokens) int64, both dynamic in batch and
tokens; padding may be on either side (or anywhere). Outputs by task:

| task | class | outputs |
|---|---|---|
| ``feature-extraction`` | ``AWDLSTMModel`` | ``last_hidden_state`` (batch, tokens, emb_size), zeros at padding |
| ``text-generation`` | ``AWDLSTMForLanguageModeling`` | ``logits`` (batch, tokens, vocab_size) |
| ``text-classification`` | ``AWDLSTMForSequenceClassification`` | ``logits`` (batch, num_labels) |

How the graph is built. torch's dynamo exporter would turn ``aten.lstm`` with a dynamic length into a generic loop
of matrix products; ONNX Runtime's fused ``LSTM`` kernel (pre-packed weights, one call per layer, ``sequence_lens``
for the padding; cuDNN on the CUDA provider) is much faster. So the exported module calls a custom op,
``hf_elmo_onnx::lstm``, in ONNX's own layout (time-major, gates ``i, o, f, c``, one ``(W, R, B)`` triple per layer with
the directions stacked), whose PyTorch implementation is torch's fused LSTM over packed sequences and whose ONNX
translation is the ``LSTM`` op. The weights are re-laid out once, at export, into constants.

* Padding: every row's real tokens are first moved to the front (in order), each layer runs with ``sequence_lens`` =
  the row's number of real tokens, and the outputs go back to the rows' positions: a row's outputs do not depend on
  its padding, as in the PyTorch model.
* The classifier reads each document in blocks of 24 tokens (of ``config.bptt`` when bidirectional), the LSTM
  states carried from one block to the next, as one ONNX ``Scan`` over the blocks (torch's ``scan``); the tokens of
  the ``config.bptt`` chunks starting within the last ``config.max_len`` tokens are pooled ([last, max, mean] over
  the real tokens), accumulated in the loop, so memory does not grow with the document's length. Rows are sorted
  by falling length, so that each block's LSTM ops run only the documents still going on (a prefix of the rows).
  This computes what ``AWDLSTMForSequenceClassification`` computes in eval mode (fastai's ``SentenceEncoder``).
* The graph is stateless (each call starts from zero LSTM states) and runs the model in eval mode (no dropout).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from optimum.utils.normalized_config import NormalizedConfig
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import PreTrainedModel
from transformers.modeling_outputs import ModelOutput

from ..models.awd_lstm.modeling_awd_lstm import (
    ConcatPool,
    longest_first,
    pooled_positions,
    pooled_window_start,
    real_tokens_first,
)
from .config import HfElmoOnnxConfig, PaddedDummyInputGenerator, check_id_range, checked_mask, register_onnx_config

AWD_LSTM_TASKS = ("feature-extraction", "text-generation", "text-classification")


# --------------------------------------------------------------------------------------------------------------------
# The LSTM op: torch's fused kernel in PyTorch, ONNX's LSTM op in the exported graph
# --------------------------------------------------------------------------------------------------------------------
def _torch_gates(t: Tensor) -> Tensor:
    """ONNX's gate order (input, output, forget, cell) → torch's (input, forget, cell, output), along dim 0."""
    i, o, f, c = t.chunk(4, 0)
    return torch.cat([i, f, c, o], 0)


def _onnx_gates(t: Tensor) -> Tensor:
    """torch's gate order (input, forget, cell, output) → ONNX's (input, output, forget, cell), along dim 0."""
    i, f, c, o = t.chunk(4, 0)
    return torch.cat([i, o, f, c], 0)


@torch.library.custom_op("hf_elmo_onnx::lstm", mutates_args=())
def onnx_lstm(x: Tensor, sequence_lens: Tensor, h0: Tensor, c0: Tensor, w: Tensor, r: Tensor, b: Tensor,
              bidirectional: bool) -> tuple[Tensor, Tensor, Tensor]:
    """One (bi)LSTM layer with ONNX ``LSTM``'s inputs: ``x`` (time, batch, input); ``sequence_lens`` (batch,) each
    row's length; ``h0``/``c0`` (directions, batch, hidden); ``w`` (directions, 4·hidden, input), ``r``
    (directions, 4·hidden, hidden) and ``b`` (directions, 8·hidden) in ONNX's gate order. Returns ``y`` (time, batch,
    directions·hidden), zeros past each row's length, and the final ``h``/``c`` (at each row's last step).

    Rows of length 0 are skipped (zeros in ``y``, their states returned unchanged) and must be the batch's last
    rows: ONNX Runtime's LSTM kernel runs every row it is given to the longest length, so the ONNX translation hands
    it only the leading rows of length ≥ 1 (the classifier, whose documents end at different chunks, sorts its rows
    by length for that, as the eager classifier does)."""
    directions, gates, _ = w.shape
    running = int((sequence_lens > 0).sum())
    if bool((sequence_lens[running:] > 0).any()):
        raise ValueError("hf_elmo_onnx::lstm: the rows of length 0 must be the batch's last rows")
    y = x.new_zeros(x.shape[0], x.shape[1], directions * r.shape[2])
    h_n, c_n = h0.clone(), c0.clone()
    if running == 0:
        return y, h_n, c_n
    weights = []
    for d in range(directions):
        weights += [_torch_gates(w[d]), _torch_gates(r[d]), _torch_gates(b[d, :gates]), _torch_gates(b[d, gates:])]
    packed = pack_padded_sequence(x[:, :running], sequence_lens[:running].cpu(), enforce_sorted=False)
    order = packed.sorted_indices
    out, h, c = torch._VF.lstm(packed.data, packed.batch_sizes, (h0[:, order], c0[:, order]), weights, True, 1, 0.0,
                               False, bidirectional)
    y[:, :running], _ = pad_packed_sequence(packed._replace(data=out), total_length=x.shape[0])
    back = packed.unsorted_indices
    h_n[:, :running], c_n[:, :running] = h[:, back], c[:, back]
    return y, h_n, c_n


@onnx_lstm.register_fake
def _(x, sequence_lens, h0, c0, w, r, b, bidirectional):
    hidden = r.shape[2]
    return x.new_empty(x.shape[0], x.shape[1], w.shape[0] * hidden), torch.empty_like(h0), torch.empty_like(c0)


def _lstm_to_onnx(x, sequence_lens, h0, c0, w, r, b, bidirectional: bool):
    """The ONNX translation of ``hf_elmo_onnx::lstm`` (an onnxscript trace-only function): the ``LSTM`` op over the
    leading rows of length ≥ 1 (``Slice``), its outputs padded back to the whole batch."""
    from onnxscript import opset18 as op

    from .running_rows import first_rows, rows_then_rest, rows_then_zeros

    hidden = r.shape[2]
    running = op.ReduceSum(op.Cast(op.Greater(sequence_lens, op.Constant(value_int=0)), to=7),  # 7: int64
                           keepdims=1)  # (1,): the number of rows of length >= 1
    y, y_h, y_c = op.LSTM(first_rows(x, running, 1), w, r, b,
                          op.Cast(first_rows(sequence_lens, running, 0), to=6),  # 6: int32
                          first_rows(h0, running, 1), first_rows(c0, running, 1), hidden_size=hidden,
                          direction="bidirectional" if bidirectional else "forward")
    # y: (time, directions, running, hidden) -> zeros for the skipped rows -> (time, batch, directions * hidden)
    y = op.Transpose(rows_then_zeros(y, op.Shape(x, start=1, end=2), running, 2), perm=[0, 2, 1, 3])
    y = op.Reshape(y, op.Concat(op.Shape(y, start=0, end=2), op.Constant(value_ints=[-1]), axis=0))
    return y, rows_then_rest(y_h, h0, running, 1), rows_then_rest(y_c, c0, running, 1)


CUSTOM_TRANSLATIONS = {torch.ops.hf_elmo_onnx.lstm.default: _lstm_to_onnx}


# --------------------------------------------------------------------------------------------------------------------
# The exported modules
# --------------------------------------------------------------------------------------------------------------------
class _GraphLayer(nn.Module):
    """One AWD-LSTM layer's weights in ONNX's layout (constants of the graph)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.bidirectional = bool(layer.bidirectional)
        self.hidden_size = int(layer.hidden_size)
        w, r, b = [], [], []
        with torch.no_grad():
            for suffix in layer.suffixes:
                w.append(_onnx_gates(getattr(layer, f"weight_ih_l0{suffix}").float()))
                r.append(_onnx_gates(getattr(layer, f"weight_hh_l0{suffix}").float()))  # eval: the raw weight
                b.append(torch.cat([_onnx_gates(getattr(layer, f"bias_ih_l0{suffix}").float()),
                                    _onnx_gates(getattr(layer, f"bias_hh_l0{suffix}").float())]))
        self.register_buffer("w", torch.stack(w).contiguous())
        self.register_buffer("r", torch.stack(r).contiguous())
        self.register_buffer("b", torch.stack(b).contiguous())

    def forward(self, x: Tensor, lengths: Tensor, h0: Tensor, c0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return torch.ops.hf_elmo_onnx.lstm(x, lengths, h0, c0, self.w, self.r, self.b, self.bidirectional)


class _GraphEncoder(nn.Module):
    """The AWD-LSTM encoder in export form: real tokens first, the LSTM op per layer, outputs back in place."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.embeddings = encoder.embeddings
        self.layers = nn.ModuleList(_GraphLayer(layer) for layer in encoder.layers)
        self.directions = 2 if encoder.config.bidirectional else 1

    @staticmethod
    def compact(input_ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Each row's real tokens moved to the front, in order: (ids in that layout, the positions they came from,
        the rows' lengths)."""
        positions = real_tokens_first(mask)
        return input_ids.gather(1, positions), positions, mask.sum(dim=1)

    def zero_state(self, batch: Tensor, like: Tensor) -> list[tuple[Tensor, Tensor]]:
        state = []
        for layer in self.layers:  # distinct tensors (a scan's carried values must not alias each other)
            shape = (self.directions, batch.shape[0], layer.hidden_size)
            state.append((like.new_zeros(shape), like.new_zeros(shape)))
        return state

    def run(self, x: Tensor, lengths: Tensor, state: list[tuple[Tensor, Tensor]]
            ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """``x`` (batch, time, emb) in the compact layout → the last layer's output and the new states. Rows of
        length 0 keep their states and must come last (see ``onnx_lstm``)."""
        h = x.transpose(0, 1)
        new_state = []
        for layer, (h0, c0) in zip(self.layers, state):
            h, h_n, c_n = layer(h, lengths, h0, c0)
            new_state.append((h_n, c_n))
        return h.transpose(0, 1), new_state

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        mask = attention_mask != 0
        ids, positions, lengths = self.compact(input_ids, mask)
        x = self.embeddings(ids)
        # rows without a real token are masked below; a length of 1 keeps them where they are (not last)
        out, _ = self.run(x, lengths.clamp_min(1), self.zero_state(lengths, x))
        back = torch.argsort(positions, dim=1)  # the inverse permutation
        out = out.gather(1, back.unsqueeze(-1).expand_as(out))
        return out * mask.unsqueeze(-1).to(out.dtype)


class AWDLSTMEncoderGraph(nn.Module):
    """``AWDLSTMModel`` in export form: (input_ids, attention_mask) → (last_hidden_state,)."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.encoder = _GraphEncoder(model)

    def forward(self, *inputs: Tensor) -> tuple[Tensor]:
        input_ids, attention_mask = inputs  # positional, as every exported module takes them
        return (self.encoder(input_ids, attention_mask),)


class AWDLSTMLanguageModelGraph(nn.Module):
    """``AWDLSTMForLanguageModeling`` in export form: (input_ids, attention_mask) → (logits,)."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.encoder = _GraphEncoder(model.awd_lstm)
        self.decoder = model.decoder

    def forward(self, *inputs: Tensor) -> tuple[Tensor]:
        input_ids, attention_mask = inputs
        hidden = self.encoder(input_ids, attention_mask)
        return (self.decoder(hidden),)


class AWDLSTMClassifierGraph(nn.Module):
    """``AWDLSTMForSequenceClassification`` in export form: (input_ids, attention_mask) → (logits,), the documents
    read in blocks of ``READ_BLOCK_TOKENS`` by one ``Scan`` whose carried values are the LSTM states and the pooling
    accumulators.

    In eval mode, how a document is cut does not change a forward LSTM's outputs (the states carry over; which
    positions are pooled follows from ``bptt`` and ``max_len``, per position), so the blocks are shorter than
    fastai's ``bptt`` chunks: ONNX Runtime's LSTM op runs every row it is given to the block's longest, and a
    document's last block is then short work (2.3-2.6% of the tokens' work wasted at 24 tokens, 7-8% at 72, in
    bench_onnx.py's batches). A bidirectional encoder's backward direction reads each ``bptt`` chunk from its end (as
    fastai's does), so its blocks are the ``bptt`` chunks."""

    READ_BLOCK_TOKENS = 24

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.encoder = _GraphEncoder(model.awd_lstm)
        self.classifier = model.classifier
        self.bptt = int(model.config.bptt)
        bidirectional = bool(model.config.bidirectional)
        self.block = self.bptt if bidirectional else min(self.bptt, self.READ_BLOCK_TOKENS)
        self.max_len = None if model.config.max_len is None else int(model.config.max_len)

    def forward(self, *inputs: Tensor) -> tuple[Tensor]:
        from torch._higher_order_ops.scan import scan

        input_ids, attention_mask = inputs
        bptt, block, encoder = self.bptt, self.block, self.encoder
        ids, _, lengths = encoder.compact(input_ids, attention_mask != 0)
        # rows by falling length: the documents still going on at a chunk are then the leading rows, the only ones
        # the chunk's LSTM ops run (as the eager classifier does); the logits go back to the input's order
        order = longest_first(lengths)
        ids, lengths = ids[order], lengths[order]
        batch, width = ids.shape
        n_blocks = (width + block - 1) // block
        ids = nn.functional.pad(ids, (0, n_blocks * block - width))
        blocks = ids.view(batch, n_blocks, block).transpose(0, 1)  # (blocks, batch, block)
        starts = torch.arange(n_blocks, device=ids.device) * block
        window = pooled_window_start(lengths, bptt, self.max_len)
        emb = self.encoder.embeddings.weight
        size = self.classifier.layers[0].batch_norm.num_features // 3
        n_states = 2 * len(encoder.layers)

        def step(carry: tuple[Tensor, ...], xs: tuple[Tensor, Tensor]) -> tuple[tuple[Tensor, ...], Tensor]:
            states, pool = carry[:n_states], ConcatPool(*carry[n_states:])
            chunk, start = xs
            remaining = lengths - start
            state = [(states[2 * l], states[2 * l + 1]) for l in range(len(encoder.layers))]
            out, new_state = encoder.run(encoder.embeddings(chunk), remaining.clamp(0, block), state)
            # finished rows (remaining <= 0) keep their states and pool nothing
            pool = pool.add(out, pooled_positions(remaining, start, block, window), remaining)
            flat = [t for h_c in new_state for t in h_c]
            return (*flat, *pool), pool.count.sum().unsqueeze(0)

        init: list[Tensor] = []
        for h0, c0 in encoder.zero_state(lengths, emb):
            init += [h0, c0]
        init += list(ConcatPool.start(batch, size, emb))
        final, _ = scan(step, tuple(init), (blocks, starts))
        pooled = ConcatPool(*final[n_states:]).pooled()
        return (self.classifier(pooled)[torch.argsort(order)],)


# --------------------------------------------------------------------------------------------------------------------
# Exporter configuration
# --------------------------------------------------------------------------------------------------------------------
class AWDLSTMNormalizedConfig(NormalizedConfig):
    """optimum's normalised view of an ``AWDLSTMConfig``."""

    HIDDEN_SIZE = "emb_size"
    NUM_LAYERS = "num_layers"
    VOCAB_SIZE = "vocab_size"
    NUM_LABELS = "num_labels"
    PAD_TOKEN_ID = "pad_token_id"


class AWDLSTMDummyInputGenerator(PaddedDummyInputGenerator):
    """Valid AWD-LSTM inputs: ``input_ids`` (batch, tokens) drawn from the vocabulary's ordinary tokens, the padding
    id at padded positions, and the matching ``attention_mask``. The first row is ``sequence_length`` tokens long,
    the others have random lengths (at least one token), padded on ``padding_side``. Drawn once, from ``seed``."""

    def make_ids(self, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
        vocab = int(self.normalized_config.vocab_size)
        pad = self.normalized_config.pad_token_id
        pad = 1 if pad is None else int(pad)
        low = min(8, vocab - 1)  # past fastai's special tokens when the vocabulary is large enough
        ids = rng.integers(low, vocab, size=mask.shape)
        ids[ids == pad] = low if low != pad else low + 1
        ids[mask == 0] = pad
        return ids.astype(np.int64)


@register_onnx_config("awd_lstm", *AWD_LSTM_TASKS)
class AWDLSTMOnnxConfig(HfElmoOnnxConfig):
    """ONNX export of AWD-LSTM: encoder, language model and ULMFiT classifier, each layer one ONNX ``LSTM`` op (the
    classifier's chunked reading one ``Scan`` over the chunks)."""

    MODEL_TYPE = "awd_lstm"
    NORMALIZED_CONFIG_CLASS = AWDLSTMNormalizedConfig
    DUMMY_INPUT_GENERATOR_CLASSES = (AWDLSTMDummyInputGenerator,)
    TASK_TO_MODEL_CLASS = {
        "feature-extraction": "hf_elmo.models.awd_lstm.modeling_awd_lstm:AWDLSTMModel",
        "text-generation": "hf_elmo.models.awd_lstm.modeling_awd_lstm:AWDLSTMForLanguageModeling",
        "text-classification": "hf_elmo.models.awd_lstm.modeling_awd_lstm:AWDLSTMForSequenceClassification",
    }
    PIPELINE_TAGS = {
        "feature-extraction": "feature-extraction",
        "text-generation": "text-generation",
        "text-classification": "text-classification",
    }
    SEQUENCE_AXIS = "tokens"
    # int8: the LSTM ops too (ONNX Runtime's DynamicQuantizeLSTM), besides the decoder's and the head's products
    INT8_OP_TYPES = ("MatMul", "Gemm", "LSTM")
    EXPORTER = "torch.onnx.export(dynamo=True), LSTM layers as the ONNX LSTM op"
    GRAPHS = {
        "feature-extraction": AWDLSTMEncoderGraph,
        "text-generation": AWDLSTMLanguageModelGraph,
        "text-classification": AWDLSTMClassifierGraph,
    }

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        if self.task == "text-classification":
            return {"logits": {0: self.BATCH_AXIS}}
        name = "last_hidden_state" if self.task == "feature-extraction" else "logits"
        return {name: {0: self.BATCH_AXIS, 1: self.SEQUENCE_AXIS}}

    def export_inputs(self, framework: str = "pt") -> dict[str, Any]:
        """The classifier is traced over several chunks: at one chunk, torch.export would specialise the number of
        chunks to 1 (and with it the length)."""
        shapes = dict(self.EXPORT_SHAPES)
        if self.task == "text-classification":
            shapes["sequence_length"] = max(shapes["sequence_length"], 2 * self._config.bptt + 1)
        return self.generate_dummy_inputs(framework=framework, **shapes)

    def validation_inputs(self, framework: str = "pt") -> dict[str, Any]:
        """Another shape than the export's, left-padded; for the classifier long enough to span several chunks and
        to pool only the last ``max_len`` tokens of the longest document."""
        shapes = dict(self.VALIDATION_SHAPES)
        if self.task == "text-classification":
            cfg = self._config
            window = cfg.max_len if cfg.max_len is not None else 2 * cfg.bptt
            shapes["sequence_length"] = max(shapes["sequence_length"], window + cfg.bptt + 3)
        return self.generate_dummy_inputs(framework=framework, seed=1, padding_side="left", **shapes)

    def graph_module(self, model: PreTrainedModel) -> torch.nn.Module:
        return self.GRAPHS[self.task](model)

    def custom_translation_table(self) -> dict[Any, Any]:
        return dict(CUSTOM_TRANSLATIONS)

    def output_class(self) -> type[ModelOutput]:
        from ..models.awd_lstm.modeling_awd_lstm import (
            AWDLSTMCausalLMOutput,
            AWDLSTMModelOutput,
            AWDLSTMSequenceClassifierOutput,
        )

        return {"feature-extraction": AWDLSTMModelOutput, "text-generation": AWDLSTMCausalLMOutput,
                "text-classification": AWDLSTMSequenceClassifierOutput}[self.task]

    def prepare_inputs(self, input_ids: np.ndarray, attention_mask: np.ndarray | None) -> dict[str, np.ndarray]:
        """As the PyTorch model checks them: integer token ids (batch, tokens) in [0, vocab_size); the mask (batch,
        tokens), or, when there is none, every token for the encoder and the LM and the non-padding tokens for the
        classifier."""
        cfg = self._config
        if input_ids.dtype == np.bool_ or not np.issubdtype(input_ids.dtype, np.integer):
            raise TypeError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must have shape (batch, tokens) as AWDLSTMTokenizer returns it, got "
                             f"{tuple(input_ids.shape)}")
        if attention_mask is None:
            if self.task == "text-classification" and cfg.pad_token_id is not None:
                mask = input_ids != cfg.pad_token_id
            else:
                mask = np.ones(input_ids.shape, dtype=bool)
        else:
            mask = checked_mask(attention_mask, input_ids.shape, "(batch, tokens)")
        check_id_range(input_ids, cfg.vocab_size, "token ids (the vocabulary's)")
        if self.task == "text-classification" and mask.size:
            empty = np.flatnonzero(~mask.any(axis=1)).tolist()
            if empty:
                raise ValueError(f"rows {empty} of the batch hold no real token (attention_mask all 0 / only "
                                 "padding)")
        return {"input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
                "attention_mask": np.ascontiguousarray(mask, dtype=np.int64)}

    def default_tokenizer(self) -> Any:
        raise ValueError("an AWD-LSTM export needs its tokenizer (its vocabulary): export from a saved folder that "
                         "holds one, or pass tokenizer=AWDLSTMTokenizer(...)")
