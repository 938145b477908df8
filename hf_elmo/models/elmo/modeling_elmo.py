"""ELMo (Peters et al., 2018) as a transformers model: character CNN → highway → projection → biLSTM language model
with projections and clipping → learned scalar mix.

The computation is the original TensorFlow one (bilm-tf), so that converted checkpoints reproduce it to float32
precision. This file holds the modules (their weights, inputs and outputs); the biLSTM's recurrence, its cell, the
packed layout of the words and the executors that run it, is stated once in the sibling bilstm_elmo.py, and
``ElmoBiLm.forward`` is its only entry. The implementation is organised for speed on CPU:

* the character CNN, highway and projection run once per *distinct* word of the batch, and so does the first
  layer's input-to-hidden product (the token representation does not depend on context);
* the recurrence runs on the packed layout (rows by falling length, each row's words first, time-major), so no work
  is spent on padding: at step ``t`` only the rows still running take part;
* all input-to-hidden products of a layer are one matrix product per direction; only the recurrent product, the
  cell and the projection run per step, both directions in the same step;
* on CPU in inference the weights are pre-packed once for oneDNN (``PackedLinearCache``: its GEMM with a reordered
  weight runs 2-3x faster than an ordinary one at the small batch of a recurrence);
* the traceable path (ONNX export, compilation, ``graph_mode``) runs the same layout and cell, each layer one
  ``scan``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ModelOutput
from transformers.utils import logging

from .bilstm_elmo import (
    Clips,
    ElmoState,
    GatheredRows,
    PackedLayout,
    run_batched,
    run_inplace,
    run_scan_masked,
    run_scan_running,
    materialize,
)
from .configuration_elmo import ElmoConfig
from .packed_linear import CHUNK_ROWS, PackedLinearCache, onednn_usable, packed_linear, tracing
from .tokenization_elmo import CUSTOM_PIPELINES

logger = logging.get_logger(__name__)


# --------------------------------------------------------------------------------------------------------------------
# Character encoder
# --------------------------------------------------------------------------------------------------------------------
class ElmoCharacterEncoder(nn.Module):
    """Character embedding → convolutions (max over positions, then the activation) → highway → projection.

    ``highways[k]`` holds the transform and carry matrices stacked as one ``nn.Linear(F, 2F)`` (transform rows first)
    so that each highway layer is one matrix product. With ``config.word_embedding_dim`` (ELMoForManyLangs) a word
    embedding of the word ids is concatenated before the highway output, ``[word; characters]``, and the projection
    reads both.
    """

    def __init__(self, config: ElmoConfig, cache: PackedLinearCache) -> None:
        super().__init__()
        self.config = config
        self._cache = cache
        self.char_embedding = nn.Embedding(config.n_characters, config.char_embedding_dim,
                                           padding_idx=config.char_padding_id)
        self.word_embedding = (nn.Embedding(config.word_vocab_size, config.word_embedding_dim,
                                            padding_idx=config.word_padding_id)
                               if config.word_embedding_dim else None)
        self.convolutions = nn.ModuleList(
            nn.Conv1d(config.char_embedding_dim, n, width) for width, n in config.char_cnn_filters
        )
        n_filters = config.n_filters
        self.highways = nn.ModuleList(nn.Linear(n_filters, 2 * n_filters) for _ in range(config.n_highway))
        self.projection = (nn.Linear(config.token_input_dim, config.projection_dim) if config.has_token_projection
                           else None)
        self.activation = torch.relu if config.activation == "relu" else torch.tanh


    # Character windows per chunk of the fused convolution (a whole number of words): its (rows, 2048) output then
    # stays in the CPU's cache, and the chunk is one product of packed_linear's (CHUNK_ROWS).
    FUSED_CONV_ROWS = CHUNK_ROWS

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
        """Eager CPU inference: the convolutions as one pre-packed matrix product over the windows of the widest
        filter (2-3x faster than seven convolutions on CPU), a chunk of words at a time, max-pooled per filter over
        its own valid positions only."""
        weight, bias = self._fused_conv_weight()
        filters = self.config.char_cnn_filters
        widest = max(w for w, _ in filters)
        n_chars = x.shape[1]
        x = F.pad(x, (0, 0, 0, widest - 1))  # zero columns so that every position has a full window
        outputs = []
        words = max(1, self.FUSED_CONV_ROWS // n_chars)
        for start in range(0, x.shape[0], words):
            chunk = x[start : start + words]
            windows = char_windows(chunk, widest, n_chars).reshape(-1, weight.shape[1])
            y = self._cache.linear(windows, weight, bias).view(chunk.shape[0], n_chars, -1)
            parts, offset = [], 0
            for width, n in filters:  # a filter of width w has n_chars - w + 1 real positions
                parts.append(y[:, : n_chars - width + 1, offset : offset + n].amax(dim=1))
                offset += n
            outputs.append(torch.cat(parts, dim=-1))
        return torch.cat(outputs) if outputs else x.new_zeros(0, weight.shape[0])

    def _pooled_windows(self, x: torch.Tensor) -> torch.Tensor:
        """Traced inference (an ONNX export): each filter as one matrix product over its windows, max-pooled over
        its positions. The same numbers as the convolution (a ``MatMul``, which ONNX Runtime's int8 quantisation
        turns into ``MatMulInteger``: ~3x faster there than its float ``Conv``, which stays unquantised), and no
        larger intermediate than the convolution's own output."""
        emb, n_chars = x.shape[-1], x.shape[1]
        parts = []
        for conv, (width, n) in zip(self.convolutions, self.config.char_cnn_filters):
            weight = conv.weight.permute(0, 2, 1).reshape(n, width * emb)  # (n, width · emb), as the windows
            parts.append(F.linear(char_windows(x, width, n_chars - width + 1), weight, conv.bias).amax(dim=1))
        return torch.cat(parts, dim=-1)

    def forward(self, char_ids: torch.Tensor, word_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``char_ids`` (words, max_characters_per_token) and, with a word embedding, ``word_ids`` (words,) → token
        representations (words, projection_dim)."""
        x = self.char_embedding(char_ids)  # (words, chars, emb)
        first = self.convolutions[0].weight
        # the convolutions, run three ways (chosen here): pre-packed product over the widest windows in eager CPU
        # inference, a product over each filter's windows when traced without gradient, the convolutions otherwise
        if self._cache.usable(x, first):
            pooled = [self._pooled_fused(x)]
        elif tracing() and not (torch.is_grad_enabled() and (x.requires_grad or first.requires_grad)):
            pooled = [self._pooled_windows(x)]
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
        if self.word_embedding is not None:
            h = torch.cat([self.word_embedding(word_ids), h], dim=-1)
        if self.projection is not None:
            h = self._cache.linear(h, self.projection.weight, self.projection.bias)
        return h


def char_windows(x: torch.Tensor, width: int, positions: int) -> torch.Tensor:
    """(words, chars, emb) → (words, positions, width · emb): at each position the ``width`` characters from there on,
    one after the other (``x`` holds at least ``positions + width − 1`` characters), which is what a convolution of
    that width multiplies by its weight (``(n, emb, width)`` read as ``(n, width · emb)``)."""
    return torch.cat([x[:, k : k + positions] for k in range(width)], dim=-1)


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


class ElmoBiLm(nn.Module):
    """The stacked biLSTM language model: token representations → every layer's outputs and the final states.

    The recurrence itself (cell, packed layout, executors) is stated in bilstm_elmo.py; this module holds the
    weights and is the only entry to it: ``forward`` lays the words out once and chooses, per layer and in one place
    (``_executor``), the executor that runs the cell.
    """

    def __init__(self, config: ElmoConfig, cache: PackedLinearCache) -> None:
        super().__init__()
        self.config = config
        self._cache = cache
        self.layers = nn.ModuleList(ElmoLstmLayer(config) for _ in range(config.n_layers))
        self.clips = Clips(float(config.cell_clip or 0.0), float(config.proj_clip or 0.0))

    def _executor(self, layer: ElmoLstmLayer, gates: list[Any], h0: torch.Tensor, c0: torch.Tensor,
                  traceable: bool) -> tuple[Any, list[Any]]:
        """The one place where a path is chosen: traced (export, compilation, ``graph_mode``) or eager, and whether a
        gradient must pass through the steps (the traced running-rows op has no backward; the in-place executor
        writes its states). Returns the executor and the packed input products in the form it reads (only the
        in-place one reads `GatheredRows` step by step)."""
        needs_grad = torch.is_grad_enabled() and (
            gates[0].requires_grad or h0.requires_grad or c0.requires_grad
            or any(w.requires_grad for w in (layer.weight_hh, layer.weight_proj)))
        if traceable or tracing():
            return (run_scan_masked if needs_grad else run_scan_running), materialize(gates)
        if not needs_grad and self._cache.usable(h0.to(gates[0].dtype), layer.weight_hh):
            return partial(run_inplace, self._cache), gates
        return run_batched, materialize(gates)

    def first_layer_inputs(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, P) token representations → the first layer's input products (with its bias), (U, 4H) per direction:
        context-free, so computed once per distinct word (and cacheable, ``TokenEmbeddingCache``)."""
        layer = self.layers[0]
        bias = layer.effective_bias()
        forward, backward = (self._cache.linear(tokens, layer.weight_ih[d], bias[d]) for d in range(2))
        return forward, backward

    def forward(self, tokens: torch.Tensor, word_of: torch.Tensor, mask: torch.Tensor, h0: torch.Tensor,
                c0: torch.Tensor, traceable: bool = False,
                first_inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
                ) -> tuple[tuple[torch.Tensor, ...], ElmoState]:
        """
        Args:
            tokens: (U, P) the token representations of the batch's distinct words.
            word_of: (B · W,) long: which distinct word each (row, position) holds, row-major.
            mask: (B, W) bool: the real words.
            h0, c0: (n_layers, 2, B, P) and (n_layers, 2, B, H): the states to start from, in batch order.
            traceable: take the traced executors even outside tracing (``ElmoModel.graph_mode``).
            first_inputs: ``first_layer_inputs(tokens)`` when already known (the token cache).

        Returns every layer's outputs, each (B, W, 2P) = [forward; backward] with zeros at padding, and the final
        states in batch order (a row keeps the state after its last word).
        """
        layout = PackedLayout.from_mask(mask)
        h0s, c0s = layout.sort_rows(h0), layout.sort_rows(c0)
        words = [word_of[src] for src in layout.sources]  # the distinct word at each packed position
        x = [tokens[w] for w in words]
        layers, h_final, c_final = [], [], []
        for k, layer in enumerate(self.layers):
            bias = layer.effective_bias()
            if k == 0:  # the first layer's input products once per distinct word
                first = self.first_layer_inputs(tokens) if first_inputs is None else first_inputs
                gates = [GatheredRows(first[d], words[d]) for d in range(2)]
            else:
                gates = [self._cache.linear(x[d], layer.weight_ih[d], bias[d]) for d in range(2)]
            run, gates = self._executor(layer, gates, h0s[k], c0s[k], traceable)
            out, h, c = run(layer.weight_hh, layer.weight_proj, gates, layout, h0s[k], c0s[k], self.clips)
            if self.config.use_skip_connections and k > 0:
                out = [out[d] + x[d] for d in range(2)]
            layers.append(layout.unpack(out))
            h_final.append(h)
            c_final.append(c)
            x = out
        return tuple(layers), (layout.unsort_rows(torch.stack(h_final)), layout.unsort_rows(torch.stack(c_final)))

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
    backward LM's of the previous word (None when not computed: see ``return_logits``)."""

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
# The token-embedding cache
# --------------------------------------------------------------------------------------------------------------------
class TokenEmbeddingCache:
    """Precomputed token representations (character CNN → highway → projection) of a vocabulary, and optionally the
    first biLSTM layer's input products of each, as AllenNLP's ``vocab_to_cache`` and bilm-tf's
    ``dump_token_embeddings`` offer: a word of the vocabulary skips the character encoder, any other word still goes
    through it. The representation does not depend on context, so the outputs are the same with or without it.

    Words are matched by their character ids (a row of ``max_characters_per_token`` ids, as the tokenizer writes
    it), through a sorted 64-bit key per row and a comparison of the whole row. The cache keeps the rows themselves
    and recomputes its values whenever the encoder's weights, dtype or device change, so it never serves stale
    representations. Used in eval mode only (training must reach the character encoder's weights).

    The input products take ``2 · 4 · lstm_dim`` floats per word (128 KB at the original size, against 2 KB for the
    representation alone): worth it for a vocabulary of thousands of words, not of millions.
    """

    def __init__(self, char_ids: torch.Tensor, input_products: bool) -> None:
        keys = self.row_keys(char_ids)
        self.order = torch.argsort(keys, stable=True)
        self.char_ids = char_ids[self.order].contiguous()
        self.keys = keys[self.order].contiguous()
        self.input_products = input_products
        self.tokens: torch.Tensor | None = None
        self.gates: tuple[torch.Tensor, torch.Tensor] | None = None  # the first layer's, per direction
        self._built_for: tuple | None = None

    def adopt(self, model: "ElmoModel", tokens: torch.Tensor, gates: tuple[torch.Tensor, torch.Tensor] | None,
              sample: int = 64, tolerance: float = 1e-5) -> bool:
        """Takes values computed earlier (a saved cache, in the order of the rows given to ``__init__``) when a
        sample of them, recomputed now, agrees within ``tolerance``; otherwise recomputes them all. Returns whether
        they were taken."""
        param = model.char_encoder.char_embedding.weight
        tokens = tokens[self.order].to(device=param.device, dtype=param.dtype)
        gates = None if gates is None else tuple(g[self.order].to(tokens) for g in gates)
        picked = torch.linspace(0, max(len(self) - 1, 0), min(sample, len(self))).long()
        with torch.no_grad():
            fresh = model.char_encoder(self.char_ids[picked])
            agrees = bool(torch.allclose(fresh, tokens[picked], atol=tolerance, rtol=tolerance))
            if agrees and gates is not None:
                now = model.bilm.first_layer_inputs(fresh)
                agrees = all(torch.allclose(n, g[picked], atol=tolerance, rtol=tolerance) for n, g in zip(now, gates))
        if not agrees:
            self.refresh(model)
            return False
        self.tokens, self.gates, self._built_for = tokens, gates if self.input_products else None, self._state(model)
        return True

    def __len__(self) -> int:
        return self.char_ids.shape[0]

    @staticmethod
    def row_keys(rows: torch.Tensor) -> torch.Tensor:
        """One int64 key per row of character ids (a polynomial in the ids, wrapping around; equal rows, equal
        keys, and the rows are compared in full after the keys match)."""
        powers = torch.full((rows.shape[-1],), 1_000_003, dtype=torch.int64, device=rows.device)
        powers = torch.cumprod(powers, 0)  # wraps around in int64, deterministically
        return (rows.long() * powers).sum(-1)

    @staticmethod
    def _state(model: "ElmoModel") -> tuple:
        params = list(model.char_encoder.parameters())
        first = model.bilm.layers[0]
        params += [first.weight_ih, first.bias]
        return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)

    def refresh(self, model: "ElmoModel", batch_size: int = 1024) -> None:
        """(Re)computes the values when the weights they come from changed since they were computed."""
        state = self._state(model)
        if state == self._built_for:
            return
        device = model.char_encoder.char_embedding.weight.device
        self.char_ids, self.keys = self.char_ids.to(device), self.keys.to(device)
        tokens = []
        with torch.no_grad():
            for start in range(0, len(self), batch_size):
                tokens.append(model.char_encoder(self.char_ids[start:start + batch_size]))
            width = model.config.projection_dim
            self.tokens = (torch.cat(tokens) if tokens
                           else model.char_encoder.char_embedding.weight.new_zeros(0, width))
            self.gates = model.bilm.first_layer_inputs(self.tokens) if self.input_products else None
        self._built_for = state

    def lookup(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For each row of character ids: whether the cache holds it, and where (valid where it does)."""
        keys = self.row_keys(rows)
        where = torch.searchsorted(self.keys, keys).clamp_max(max(len(self) - 1, 0))
        if len(self) == 0:
            return torch.zeros_like(keys, dtype=torch.bool), where
        hit = (self.keys[where] == keys) & (self.char_ids[where] == rows).all(-1)
        return hit, where


# --------------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------------
def _saved_token_cache(name_or_path: str, kwargs: dict[str, Any]) -> str | None:
    """The path of the token cache saved with a model (a local folder's file, or the Hub repository's through the
    Hub cache), or None when it has none."""
    subfolder = kwargs.get("subfolder") or ""
    folder = Path(name_or_path) / subfolder
    if folder.is_dir():
        path = folder / ElmoModel.TOKEN_CACHE_FILE
        return str(path) if path.is_file() else None
    if Path(name_or_path).exists():  # a file, not a folder: no cache beside it
        return None
    from transformers.utils import cached_file

    hub = {key: kwargs[key] for key in ("cache_dir", "force_download", "proxies", "token", "revision",
                                        "local_files_only") if kwargs.get(key) is not None}
    return cached_file(name_or_path, ElmoModel.TOKEN_CACHE_FILE, subfolder=subfolder,
                       _raise_exceptions_for_missing_entries=False,
                       _raise_exceptions_for_connection_errors=False, **hub)


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

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any) -> Any:
        """``PreTrainedModel.from_pretrained``; the token cache saved with the model (``token_embeddings.safetensors``,
        ``ElmoModel.save_token_embeddings``) is loaded too, from a local folder or from the Hub repository (through
        the Hub cache, with the same ``revision``, ``cache_dir``, ``local_files_only``, ``token`` and ``subfolder``;
        a repository without one has none)."""
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        elmo = model if isinstance(model, ElmoModel) else getattr(model, "elmo", None)
        if isinstance(elmo, ElmoModel) and pretrained_model_name_or_path is not None:
            path = _saved_token_cache(str(pretrained_model_name_or_path), kwargs)
            if path is not None:
                elmo.load_token_embeddings(path)
        return loaded

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, save_token_cache: bool = False,
                        **kwargs: Any) -> None:
        """``PreTrainedModel.save_pretrained``; ``save_token_cache=True`` also writes the token cache
        (``token_embeddings.safetensors``), which ``from_pretrained`` of the folder loads."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if save_token_cache:
            elmo = self if isinstance(self, ElmoModel) else getattr(self, "elmo")
            elmo.save_token_embeddings(save_directory)

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
    if input_ids.numel() and not tracing():  # a data-dependent check cannot be part of an exported graph
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= config.n_characters:
            raise ValueError(f"character ids must lie in [0, {config.n_characters}), got values in [{lo}, {hi}]")
    return input_ids.long()


def _word_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, padding_id: int = 0) -> torch.Tensor:
    """(batch, words) bool mask of real words: the attention mask, or the words whose row is not all
    ``padding_id`` (``config.char_padding_id``: the all-zero row of bilm-tf's ids; a lexicon's all-``<pad>`` row,
    which no word has, since a word's first slot is a boundary marker)."""
    return attention_mask.bool() if attention_mask is not None else (input_ids != padding_id).any(dim=-1)


def _check_word_ids(token_ids: Any, input_ids: torch.Tensor, config: ElmoConfig) -> torch.Tensor:
    """The word ids a model with a word embedding reads beside the characters: (batch, words) in
    [0, word_vocab_size)."""
    if token_ids is None:
        raise ValueError(f"this ELMo (ELMoForManyLangs) reads word ids beside the characters: pass token_ids "
                         f"(batch, words), as its tokenizer returns them, besides input_ids")
    if not isinstance(token_ids, torch.Tensor) or token_ids.dtype.is_floating_point or token_ids.dtype == torch.bool:
        raise TypeError(f"token_ids must be a tensor of integer word ids, got "
                        f"{getattr(token_ids, 'dtype', type(token_ids).__name__)}")
    if tuple(token_ids.shape) != tuple(input_ids.shape[:2]):
        raise ValueError(f"token_ids shape {tuple(token_ids.shape)} does not match input_ids' (batch, words) = "
                         f"{tuple(input_ids.shape[:2])}")
    if token_ids.numel() and not tracing():
        lo, hi = int(token_ids.min()), int(token_ids.max())
        if lo < 0 or hi >= config.word_vocab_size:
            raise ValueError(f"word ids (token_ids) must lie in [0, {config.word_vocab_size}), got values in "
                             f"[{lo}, {hi}]")
    return token_ids.long()


class ElmoModel(ElmoPreTrainedModel):
    """The ELMo biLM: ``input_ids`` (batch, words, 50) character ids → every biLM layer and their scalar mix(es).

    Stateless by default: each call starts from zero states. ``use_cache=True`` returns the state after each row's
    last word (``output.state``) and ``state=`` starts from one, which reproduces the original stateful biLM.
    """

    def __init__(self, config: ElmoConfig) -> None:
        super().__init__(config)
        self._packed_cache = PackedLinearCache()
        self._packed_cache.enabled = not self.training
        self._token_cache: TokenEmbeddingCache | None = None
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

    # ---- the token-embedding cache ----------------------------------------------------------------------------
    TOKEN_CACHE_FILE = "token_embeddings.safetensors"

    def cache_token_embeddings(self, words: Any, input_products: bool = False) -> int:
        """Precomputes the token representations of ``words`` (an iterable of words, or a (K, 50) tensor of
        character ids), and with ``input_products`` the first layer's input products too (``TokenEmbeddingCache``:
        128 KB a word at the original size), so that in eval mode those words skip the character encoder; the
        sentence boundaries ``<S>``/``</S>`` are always included. Outputs are the same with and without the cache.
        Replaces any previous cache; returns the number of words cached. Not for a model with a word embedding
        (ELMoForManyLangs), whose token representation depends on the word id too."""
        self._check_token_cache_supported()
        if isinstance(words, torch.Tensor):
            rows = _check_char_ids(words.unsqueeze(0) if words.dim() == 2 else words, self.config)[0]
        else:
            from .tokenization_elmo import ElmoTokenizer, word_to_char_ids

            if isinstance(words, str):
                raise TypeError("cache_token_embeddings needs an iterable of words, got one str")
            n = self.config.max_characters_per_token
            vocabulary = dict.fromkeys([ElmoTokenizer.BOS_WORD, ElmoTokenizer.EOS_WORD, *words])
            rows = torch.tensor([word_to_char_ids(w, n) for w in vocabulary], dtype=torch.long)
        rows = torch.unique(rows, dim=0)
        rows = rows[(rows > 0).any(-1)]  # the all-zero padding row is no word
        cache = TokenEmbeddingCache(rows.to(self.char_encoder.char_embedding.weight.device), input_products)
        cache.refresh(self)
        self._token_cache = cache
        return len(cache)

    def _check_token_cache_supported(self) -> None:
        if self.config.word_embedding_dim:
            raise ValueError("the token-embedding cache keys words by their characters; this model's token "
                             "representation also reads a word embedding (ELMoForManyLangs): not supported")

    def clear_token_cache(self) -> None:
        """Forgets the cached token representations (every word goes through the character encoder again)."""
        self._token_cache = None

    @property
    def token_cache(self) -> TokenEmbeddingCache | None:
        return self._token_cache

    def save_token_embeddings(self, folder: str | os.PathLike) -> Path:
        """Writes the cache into ``folder`` (``token_embeddings.safetensors``: the words' character ids, their
        representations and, when cached, the input products), which ``from_pretrained`` then loads."""
        from safetensors.torch import save_file

        cache = self._token_cache
        if cache is None:
            raise ValueError("no token cache to save: call cache_token_embeddings(words) first")
        cache.refresh(self)
        tensors = {"char_ids": cache.char_ids, "tokens": cache.tokens}
        if cache.gates is not None:
            tensors.update(input_products_forward=cache.gates[0], input_products_backward=cache.gates[1])
        path = Path(folder) / self.TOKEN_CACHE_FILE
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path),
                  metadata={"format": "pt", "what": "hf-elmo token-embedding cache"})
        return path

    def load_token_embeddings(self, path: str | os.PathLike) -> int:
        """Reads a cache written by ``save_token_embeddings`` (a file, or the folder holding it). Its values are taken
        when a sample of them, recomputed, agrees with these weights, and recomputed all otherwise, so a cache never
        changes the outputs. Returns the number of words cached."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        self._check_token_cache_supported()
        path = Path(path)
        if path.is_dir():
            path = path / self.TOKEN_CACHE_FILE
        try:
            tensors = load_file(str(path))
        except (OSError, SafetensorError) as error:
            raise ValueError(f"{path}: not a readable token cache ({error})") from None
        rows, tokens = tensors.get("char_ids"), tensors.get("tokens")
        n = self.config.max_characters_per_token
        if rows is None or tokens is None or rows.dim() != 2 or rows.shape[1] != n \
                or tuple(tokens.shape) != (rows.shape[0], self.config.projection_dim):
            raise ValueError(f"{path}: a token cache needs 'char_ids' (words, {n}) and 'tokens' (words, "
                             f"{self.config.projection_dim})")
        gates = None
        if "input_products_forward" in tensors:
            gates = (tensors["input_products_forward"], tensors["input_products_backward"])
            if any(tuple(g.shape) != (rows.shape[0], 4 * self.config.lstm_dim) for g in gates):
                raise ValueError(f"{path}: the input products must be (words, {4 * self.config.lstm_dim})")
        _check_char_ids(rows.unsqueeze(0), self.config)
        param = self.char_encoder.char_embedding.weight
        cache = TokenEmbeddingCache(rows.long().to(param.device), input_products=gates is not None)
        if not cache.adopt(self, tokens, gates):
            logger.warning("%s: the cached token representations do not come from these weights: recomputed", path)
        self._token_cache = cache
        return len(cache)

    def _token_representations(self, words: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """The distinct words' representations (U, P) and, from the cache, their first-layer input products (or
        None): cached words from the cache, the others through the character encoder."""
        cache = self._token_cache
        if cache is None or self.training or self.graph_mode or tracing():
            return self.char_encoder(words), None
        cache.refresh(self)
        hit, where = cache.lookup(words)
        # the all-zero row (padding positions) is read by nothing downstream: zeros, not the encoder
        miss = ~hit & (words > 0).any(-1)
        tokens = cache.tokens.new_zeros(words.shape[0], cache.tokens.shape[1])
        tokens[hit] = cache.tokens[where[hit]]
        computed = None
        if bool(miss.any()):
            tokens[miss] = self.char_encoder(words[miss])
            computed = None if cache.gates is None else self.bilm.first_layer_inputs(tokens[miss])
        if cache.gates is None:
            return tokens, None
        gates = []
        for d in range(2):
            g = cache.gates[d].new_zeros(words.shape[0], cache.gates[d].shape[1])
            g[hit] = cache.gates[d][where[hit]]
            if computed is not None:
                g[miss] = computed[d]
            gates.append(g)
        return tokens, tuple(gates)

    def clear_weight_cache(self) -> None:
        """Drops the pre-packed copies of the weights (``PackedLinearCache``). They are rebuilt when a weight's
        version counter changes (``load_state_dict``, ``copy_``), on ``.train()``/``.eval()`` and on ``.to()``;
        call this after changing weights in eval mode by a route that bypasses the counters (a fused optimizer step,
        writes through ``.data``)."""
        self._packed_cache.clear()

    def train(self, mode: bool = True) -> "ElmoModel":
        # see PackedLinearCache: pre-packed weights are only trusted in eval mode
        self.clear_weight_cache()
        self._packed_cache.enabled = not mode
        return super().train(mode)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "ElmoModel":
        self.clear_weight_cache()
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
        token_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> ElmoModelOutput | tuple:
        """
        Args:
            input_ids: (batch, words, max_characters_per_token) character ids from [`ElmoTokenizer`].
            token_ids: (batch, words) word ids, read by a model with a word embedding (``config.word_embedding_dim``,
                ELMoForManyLangs; its tokenizer returns them); ignored otherwise (``ElmoTokenizer``'s
                ``return_token_ids`` gives the LM head's labels under that name).
            attention_mask: (batch, words), 1 for real words; derived from ``input_ids`` (all-zero words are padding)
                when omitted. Left, right or any other padding is handled.
            state: recurrent state to start from (see ``use_cache``); zeros when omitted.
            use_cache: return ``output.state``, the state after each row's last word.
            output_hidden_states: return every biLM layer (default True: ELMo's layers are its product).
        """
        for ignored in ("token_type_ids", "num_items_in_batch"):
            kwargs.pop(ignored, None)
        if kwargs:
            raise TypeError(f"ElmoModel.forward got unexpected arguments: {sorted(kwargs)}")
        if input_ids is None:
            raise ValueError("ElmoModel needs input_ids (batch, words, max_characters_per_token)")
        cfg = self.config
        input_ids = _check_char_ids(input_ids, cfg)
        batch, width, _ = input_ids.shape
        word_ids = _check_word_ids(token_ids, input_ids, cfg) if cfg.word_embedding_dim else None
        if attention_mask is None:
            mask = _word_mask(input_ids, None, cfg.char_padding_id)
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
        # the character encoder reads each distinct word once (padding is one all-zero "word"); with a word
        # embedding a word is its characters and its word id (the last column)
        n_chars = input_ids.shape[-1]
        keys = input_ids.reshape(batch * width, n_chars)
        if word_ids is not None:
            keys = torch.cat([keys, word_ids.to(device).reshape(-1, 1)], dim=1)
        words, word_of = torch.unique(keys, dim=0, return_inverse=True)
        if word_ids is None:
            tokens, first_inputs = self._token_representations(words)
        else:
            tokens, first_inputs = self.char_encoder(words[:, :n_chars], words[:, n_chars]), None
        token_layer = tokens[word_of].view(batch, width, cfg.projection_dim) * mask.unsqueeze(-1).to(tokens.dtype)
        bilm_layers, new_state = self.bilm(tokens, word_of.reshape(-1), mask, h0, c0, traceable=self.graph_mode,
                                           first_inputs=first_inputs)
        layers_t = (torch.cat([token_layer, token_layer], dim=-1), *bilm_layers)
        mixes = tuple(mix(layers_t, mask) for mix in self.scalar_mixes)
        out = ElmoModelOutput(
            last_hidden_state=mixes[0],
            hidden_states=layers_t if output_hidden_states else None,
            elmo_representations=mixes,
            state=new_state if use_cache else None,
        )
        return out if return_dict else out.to_tuple()

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
    """ELMo → scalar mix → dropout → mean over the real words → linear. ``labels`` → the loss of transformers'
    sequence classifiers (``sequence_classification_loss``: MSE, cross-entropy or BCE by ``problem_type``)."""

    def __init__(self, config: ElmoConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> ElmoClassifierOutput | tuple:
        out = self.elmo(input_ids, attention_mask, output_hidden_states=output_hidden_states, return_dict=True,
                        **kwargs)
        mask = _word_mask(input_ids, attention_mask, self.config.char_padding_id).to(out.last_hidden_state.device)
        x = self.dropout(out.last_hidden_state)
        m = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp_min(1)
        logits = self.classifier(pooled)
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(self.config, logits, labels.to(logits.device))
        result = ElmoClassifierOutput(loss=loss, logits=logits,
                                      hidden_states=out.hidden_states if output_hidden_states else None)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return result if return_dict else result.to_tuple()


# Copied from hf_elmo.models.awd_lstm.modeling_awd_lstm.FusedLinearCrossEntropy
class FusedLinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``hidden @ weight.T + bias`` against ``targets`` (``ignore_index`` rows left out),
    computed over blocks of rows so that the (rows × vocab) logits are never held whole (2,240 × 60,000 floats,
    537 MB, per ULMFiT batch): each block's logits, log-sum-exp, loss and gradient (``softmax − one_hot``, scaled)
    are computed in one buffer (one pass of ``exp`` for both), and the gradients of ``hidden``, ``weight`` and
    ``bias`` are accumulated there and then, in the forward pass (as Liger-Kernel's fused linear cross-entropy does), so that the
    backward pass only scales them: the decoder's three products and no recomputation. Without a gradient to take
    (evaluation) only the loss is computed, by the same blocks.

    Under autocast the products run in the autocast dtype (``hidden`` and ``weight`` cast once), the log-softmax,
    the loss and the weight's gradient in float32, as on the logits path (``logits.float()``). In float32 on CPU the
    logits and ``hidden``'s gradient are oneDNN's products (packed_linear.py; ~9% less time for the decoder, loss and
    gradients at ULMFiT's size on the 2-core Zen 4, where torch's own float32 products are MKL's generic path).
    Shapes: ``hidden`` (rows, dim), ``weight`` (vocab, dim), ``bias`` (vocab,) or None, ``targets`` (rows,).
    """

    # rows per block by default: a block's float32 logits take about this many bytes (64 MB: 280 rows at a
    # 60,000-word vocabulary), twice that under autocast, whose per-block weight gradient is cast and added in
    # float32. Measured at ULMFiT's size on the 2-core Zen 4 (decoder, loss and gradients of 2,240 rows): 2.8 s in
    # float32 (3.7 s with 16 MB blocks, 3.9 s on the logits path), 2.2 s under bf16 autocast (2.4 s at 64 MB,
    # 4.0 s at 16 MB, 3.0 s on the logits path)
    block_bytes = 64 << 20

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                targets: torch.Tensor, ignore_index: int, block_rows: int) -> torch.Tensor:
        device = hidden.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
        want_h, want_w, want_b = ctx.needs_input_grad[:3]
        ctx.dtypes = (hidden.dtype, weight.dtype, None if bias is None else bias.dtype)
        with torch.autocast(device, enabled=False):
            h, w = hidden.to(dtype), weight.to(dtype)
            b = None if bias is None else bias.to(dtype)
            valid = targets != ignore_index
            count = valid.sum()
            inverse = 1.0 / count.clamp_min(1).to(torch.float32)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            grad_h = torch.empty(hidden.shape, dtype=dtype, device=hidden.device) if want_h else None
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_w else None
            grad_b = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if want_b else None
            # oneDNN's float32 products where it runs them (their results are fresh tensors); else every block in
            # the same buffers (float32 logits, and the product's dtype under autocast): a fresh 64 MB tensor per
            # block is fresh pages from the kernel, whose faults on first touch cost ~25% of the block's decoder
            # product with torch's own product (measured on CPU at ULMFiT's size)
            onednn = dtype == torch.float32 and onednn_usable(h, w)
            shape = (min(block_rows, hidden.shape[0]), weight.shape[0])
            buffer = None if onednn else torch.empty(shape, dtype=torch.float32, device=hidden.device)
            low = None if dtype == torch.float32 else torch.empty(shape, dtype=dtype, device=hidden.device)
            if low is not None and grad_w is not None:  # a block's weight gradient, in the product's dtype, widened
                low_w, wide_w = torch.empty_like(weight, dtype=dtype), torch.empty_like(grad_w)
            for start in range(0, hidden.shape[0], block_rows):
                rows = slice(start, start + block_rows)
                if onednn:
                    logits = product = packed_linear(h[rows], w, b, bucket=False)
                else:
                    logits = buffer[: h[rows].shape[0]]
                    product = logits if low is None else low[: logits.shape[0]]
                    if b is None:
                        torch.mm(h[rows], w.T, out=product)
                    else:
                        torch.addmm(b, h[rows], w.T, out=product)
                    if low is not None:
                        logits.copy_(product)
                keep = valid[rows]
                safe = targets[rows].masked_fill(~keep, 0).unsqueeze(1)
                picked = logits.gather(1, safe).squeeze(1)
                # log-sum-exp and softmax from one pass of exp, in the logits' buffer: e = exp(logits − max)
                top = logits.amax(dim=1, keepdim=True)
                exp = logits.sub_(top).exp_()
                norm = exp.sum(dim=1, keepdim=True)
                lse = (top + norm.log()).squeeze(1)
                total = total + torch.where(keep, lse - picked, 0.0).sum()
                if not (want_h or want_w or want_b):
                    continue
                scale = (keep.to(torch.float32) * inverse).unsqueeze(1)
                grad = exp.mul_(scale / norm)  # softmax, scaled
                grad.scatter_add_(1, safe, -scale)  # − one-hot, scaled
                if grad_b is not None:
                    grad_b += grad.sum(0)
                if low is not None:  # (an in-place product and a copy: torch's mixed-dtype product is 3x slower)
                    grad = product.copy_(grad)
                if grad_h is not None:
                    if onednn:
                        grad_h[rows] = packed_linear(grad, w.T, bucket=False)
                    else:
                        torch.mm(grad, w, out=grad_h[rows])
                if grad_w is not None:
                    if dtype == torch.float32:
                        grad_w.addmm_(grad.T, h[rows])
                    else:  # widened in a buffer, then added: twice as fast as a mixed-dtype add
                        grad_w += wide_w.copy_(torch.mm(grad.T, h[rows], out=low_w))
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        return torch.where(count > 0, total * inverse, torch.nan)  # nan without a target, as F.cross_entropy

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        # The gradients were taken for a loss gradient of 1, which ``loss.backward()`` gives: on CPU they are then
        # returned as they are, not copied by a multiplication (a fresh (vocab × dim) tensor, 96 MB at ULMFiT's
        # size, and its page faults: ~5% of a training step), and autograd adds into them or keeps them. On a GPU
        # the multiplication is cheap and the test would wait for the device.
        unscaled = grad_output.device.type == "cpu" and bool(grad_output == 1)
        grads = []
        for saved, dtype in zip(ctx.saved_tensors, ctx.dtypes):
            grads.append(None if saved is None else (saved if unscaled else saved * grad_output).to(dtype))
        return (*grads, None, None, None)


# Copied from hf_elmo.models.awd_lstm.modeling_awd_lstm.fused_linear_cross_entropy
def fused_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                               targets: torch.Tensor, ignore_index: int = -100,
                               block_rows: int | None = None) -> torch.Tensor:
    """``F.cross_entropy(F.linear(hidden, weight, bias).float(), targets, ignore_index=ignore_index)`` without the
    (rows × vocab) logits (:class:`FusedLinearCrossEntropy`); ``block_rows`` defaults to blocks of about
    ``FusedLinearCrossEntropy.block_bytes`` of float32 logits (twice that under autocast). A target outside the
    vocabulary is refused by value."""
    vocab = weight.shape[0]
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(f"hidden (rows, dim) and targets (rows,) expected, got {tuple(hidden.shape)} and "
                         f"{tuple(targets.shape)}")
    real = targets[targets != ignore_index]
    if real.numel() and bool(((real < 0) | (real >= vocab)).any()):
        bad = real[(real < 0) | (real >= vocab)][0]
        raise ValueError(f"target {int(bad)} is not a token id: the vocabulary has {vocab} tokens ({ignore_index} "
                         "is ignored)")
    if block_rows is None:
        budget = FusedLinearCrossEntropy.block_bytes * (2 if torch.is_autocast_enabled(hidden.device.type) else 1)
        block_rows = max(16, budget // (4 * vocab))
        # as many blocks as the budget gives, rounded, then rows shared out evenly: no last block of a few rows,
        # which costs a whole pass over the weight's gradient (2,240 rows at 60,000 words: 8 blocks of 280, not
        # 8 of 279 and one of 8)
        blocks = max(1, round(hidden.shape[0] / block_rows))
        block_rows = max(1, -(-hidden.shape[0] // blocks))
    return FusedLinearCrossEntropy.apply(hidden, weight, bias, targets, ignore_index, int(block_rows))


# Copied from hf_elmo.models.awd_lstm.modeling_awd_lstm.sequence_classification_loss
def sequence_classification_loss(config: PretrainedConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss of transformers' sequence classifiers, chosen by ``config.problem_type`` (set on first use, as
    ``BertForSequenceClassification`` sets it, and saved with the config): ``num_labels == 1`` → regression (MSE);
    integer labels of any width → single-label cross-entropy (-100 ignored); float or bool labels → multi-label BCE.

    Shapes: ``logits`` (batch, num_labels); ``labels`` (batch,) class ids for single-label, (batch,) or (batch, 1)
    targets for one-output regression, (batch, num_labels) for multi-output regression and multi-label. A label that
    does not fit is refused with its shape or value rather than broadcast (MSE would silently broadcast (batch,)
    against (batch, num_labels)) or reinterpreted.
    """
    num_labels = logits.shape[-1]
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            config.problem_type = "multi_label_classification"
        else:
            config.problem_type = "single_label_classification"
    batch = logits.shape[0]
    if config.problem_type == "single_label_classification":
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
            raise ValueError(f"single-label classification needs integer class ids as labels, got {labels.dtype}")
        if labels.numel() != batch:
            raise ValueError(f"labels of shape {tuple(labels.shape)}: single-label classification needs one class id "
                             f"per sequence, shape ({batch},)")
        labels = labels.reshape(-1).long()
        bad = (labels != -100) & ((labels < 0) | (labels >= num_labels))
        if bool(bad.any()):
            raise ValueError(f"label {int(labels[bad][0])} is not a class id: the model has {num_labels} labels "
                             f"(0..{num_labels - 1}; -100 is ignored)")
        return F.cross_entropy(logits.float(), labels)
    if config.problem_type == "regression" and num_labels == 1 and labels.numel() == batch:
        return F.mse_loss(logits.float().reshape(-1), labels.float().reshape(-1))
    if config.problem_type not in ("regression", "multi_label_classification"):
        raise ValueError(f"problem_type {config.problem_type!r} is not one of 'regression', "
                         "'single_label_classification', 'multi_label_classification'")
    if labels.shape != logits.shape:
        raise ValueError(f"labels of shape {tuple(labels.shape)}: {config.problem_type} needs one target per "
                         f"label, shape {tuple(logits.shape)}")
    if config.problem_type == "regression":
        return F.mse_loss(logits.float(), labels.float())
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


class ElmoForTokenClassification(_ElmoHeadModel):
    """ELMo → scalar mix → dropout → linear per word. ``labels`` (batch, words), -100 ignored (boundaries, padding)."""

    def __init__(self, config: ElmoConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        if not getattr(config, "custom_pipelines", None):
            # pipeline("token-classification", trust_remote_code=True) then runs ELMo's own (one row of character
            # ids per word, where transformers' reads one id per token); saved in config.json with the folder
            config.custom_pipelines = CUSTOM_PIPELINES
        self.post_init()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> ElmoClassifierOutput | tuple:
        out = self.elmo(input_ids, attention_mask, output_hidden_states=output_hidden_states, return_dict=True,
                        **kwargs)
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
        # the LM objective reads the top layer, never the scalar mixes (bilm-tf's LM has none; they are learned by
        # the downstream task): frozen, so that no trainable weight goes without a gradient (DDP needs every one)
        self.elmo.scalar_mixes.requires_grad_(False)
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
                return_logits: bool | None = None, **kwargs: Any) -> ElmoLanguageModelingOutput | tuple:
        """``return_logits``: compute and return ``logits``. By default they are computed unless ``labels`` are
        given and a gradient will be taken (a training step), where the full softmax's loss is then computed block
        by block without ever holding the (words × vocab) logits (``fused_linear_cross_entropy``: the same loss and
        gradients); ``return_logits=True`` forces them, ``False`` (with ``labels``) also skips them in evaluation.
        The sampled softmax (training with ``sampled_softmax_num_samples``) has no logits."""
        out = self.elmo(input_ids, attention_mask, state=state, use_cache=use_cache, output_hidden_states=True,
                        return_dict=True, **kwargs)
        top = out.hidden_states[-1]
        p = self.config.projection_dim
        fwd_h, bwd_h = top[..., :p], top[..., p:]
        sampled = self.training and self.config.sampled_softmax_num_samples > 0
        if return_logits is None:
            return_logits = not sampled and (labels is None or not torch.is_grad_enabled())
        if labels is None and not return_logits:
            raise ValueError("return_logits=False without labels leaves nothing to return")
        logits = None
        if return_logits:
            logits = torch.stack([self.softmax(fwd_h), self.softmax(bwd_h)], dim=2)
        loss = fwd_loss = bwd_loss = None
        if labels is not None:
            labels = labels.to(top.device).long()
            if labels.shape != top.shape[:2]:
                raise ValueError(f"labels shape {tuple(labels.shape)} must be (batch, words) = {tuple(top.shape[:2])}")
            mask = _word_mask(input_ids, attention_mask, self.config.char_padding_id).to(top.device)
            # forward: position t predicts t+1; backward: position t+1 predicts t (both must be real words)
            pair = mask[:, :-1] & mask[:, 1:]
            fwd_targets = labels[:, 1:].masked_fill(~pair, -100)
            bwd_targets = labels[:, :-1].masked_fill(~pair, -100)
            if sampled:
                sel_f, sel_b = fwd_targets >= 0, bwd_targets >= 0
                fwd_loss = self._sampled_loss(fwd_h[:, :-1][sel_f], fwd_targets[sel_f])
                bwd_loss = self._sampled_loss(bwd_h[:, 1:][sel_b], bwd_targets[sel_b])
            elif logits is not None:
                v = self.config.vocab_size
                fwd_loss = F.cross_entropy(logits[:, :-1, 0].float().reshape(-1, v), fwd_targets.reshape(-1))
                bwd_loss = F.cross_entropy(logits[:, 1:, 1].float().reshape(-1, v), bwd_targets.reshape(-1))
            else:
                w, b = self.softmax.weight, self.softmax.bias
                fwd_loss = fused_linear_cross_entropy(fwd_h[:, :-1].reshape(-1, p), w, b, fwd_targets.reshape(-1))
                bwd_loss = fused_linear_cross_entropy(bwd_h[:, 1:].reshape(-1, p), w, b, bwd_targets.reshape(-1))
            loss = 0.5 * (fwd_loss + bwd_loss)
        result = ElmoLanguageModelingOutput(
            loss=loss, logits=logits, forward_loss=fwd_loss, backward_loss=bwd_loss,
            hidden_states=out.hidden_states if output_hidden_states else None, state=out.state,
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return result if return_dict else result.to_tuple()
