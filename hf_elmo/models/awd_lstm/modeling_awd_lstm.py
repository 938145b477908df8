"""AWD-LSTM (Merity et al., 2017) and ULMFiT (Howard & Ruder, 2018) as transformers models, computing what fastai's
``AWD_LSTM``, ``get_language_model`` and ``get_text_classifier`` compute, so that converted fastai checkpoints give
fastai's outputs.

The encoder is fastai's: embedding with embedding dropout (whole vocabulary rows zeroed), locked ("variational")
dropout on its output, then LSTM layers with DropConnect on the hidden-to-hidden weights and locked dropout between
layers. Layer ``l`` reads the embedding (``l == 0``) or the hidden size, and outputs the hidden size, except the last
layer whose output is the embedding size (so that the decoder can be tied to the embedding); a bidirectional layer
gives each direction half of it.

Every layer's recurrence runs in torch's fused LSTM kernel (oneDNN on CPU, cuDNN on GPU): the weight dropout is
applied to a copy of the hidden-to-hidden weight *before* the fused call (the parameter itself stays the raw weight,
used as is in eval mode). One exception, chosen in ``AWDLSTMLayer.forward``: a CPU training step under bfloat16
autocast runs the sibling cpu_lstm.py's recurrence, whose backward is ~1.5x faster than oneDNN's bf16 one.

Recurrent state goes in and out as in transformers' RWKV: ``state=`` a list with one ``(h, c)`` per layer, each of
shape ``(num_directions, batch, layer_output_size // num_directions)``, and ``use_cache=True`` returns
``output.state``. A batch with padding given by ``attention_mask`` (left, right or any) runs as packed sequences, so
that a row's outputs and state do not depend on how it was padded.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import _VF, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ModelOutput

from .configuration_awd_lstm import AWDLSTMConfig, AWDLSTMEnsembleConfig
from .cpu_lstm import cpu_lstm, cpu_lstm_applies
from .packed_linear import PackedLinearCache, onednn_usable, packed_linear

LayerState = tuple[torch.Tensor, torch.Tensor]


# --------------------------------------------------------------------------------------------------------------------
# Dropouts
# --------------------------------------------------------------------------------------------------------------------
def _bernoulli_mask(like: torch.Tensor, shape: tuple[int, ...], p: float) -> torch.Tensor:
    """A mask of ``shape`` (``like``'s dtype and device): 0 with probability ``p``, ``1 / (1 - p)`` otherwise.

    Drawn as ``uniform < 1 - p`` rather than with ``bernoulli_``: on CPU torch's ``bernoulli_`` runs on one thread at
    ~140M draws/s, twice as long as ``rand`` (38 vs 16 ms for one 4608 × 1152 weight at ULMFiT's size, drawn twice
    per training step). Drawn in float32 whatever ``like``'s dtype (a bfloat16 uniform has 8 bits)."""
    keep = 1.0 - p
    return torch.rand(shape, device=like.device).lt_(keep).to(like.dtype).div_(keep)


class AWDLSTMEmbeddingDropout(nn.Module):
    """Embedding dropout (Gal & Ghahramani): in training, whole rows of the embedding matrix (whole words of the
    vocabulary) are zeroed with probability ``p`` and the others scaled by ``1 / (1 - p)``, one mask per call, so
    that every occurrence of a dropped word is dropped. Holds no parameter: it is given the embedding to read.

    The mask is drawn for the whole vocabulary, as fastai draws it, and applied to the rows looked up: the same
    values as looking up in the masked matrix, without a (vocab × dim) copy per step and its gradient (2 × 96 MB
    at ULMFiT's size)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, embedding: nn.Embedding, input_ids: torch.Tensor) -> torch.Tensor:
        weight = embedding.weight
        padding_idx = embedding.padding_idx if embedding.padding_idx is not None else -1
        rows = F.embedding(input_ids, weight, padding_idx)
        if self.training and self.p > 0:
            rows = rows * _bernoulli_mask(weight, (weight.shape[0], 1), self.p)[input_ids]
        return rows

    def extra_repr(self) -> str:
        return f"p={self.p}"


class AWDLSTMLockedDropout(nn.Module):
    """Locked (variational) dropout: one mask per sequence and feature, the same at every time step (fastai's
    ``RNNDropout``). Works on batch-first ``(batch, time, features)`` tensors, or on packed data ``(n, features)``
    given the batch row of each element (``rows``)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None, batch_size: int | None = None) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if rows is None:
            return x * _bernoulli_mask(x, (x.shape[0], 1, *x.shape[2:]), self.p)
        return x * _bernoulli_mask(x, (batch_size, *x.shape[1:]), self.p)[rows]

    def extra_repr(self) -> str:
        return f"p={self.p}"


# --------------------------------------------------------------------------------------------------------------------
# One LSTM layer with weight dropout, run by the fused kernel
# --------------------------------------------------------------------------------------------------------------------
class AWDLSTMLayer(nn.Module):
    """One (bi)LSTM layer whose hidden-to-hidden weights get DropConnect in training (fastai's ``WeightDropout``
    around ``nn.LSTM``). Parameters are named as ``nn.LSTM``'s; ``weight_hh_l0`` is the *raw* weight (fastai's
    ``weight_hh_l0_raw``): in training a dropped copy of it is what the kernel uses, in eval the weight itself."""

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool, weight_p: float) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.bidirectional, self.weight_p = bidirectional, weight_p
        gates = 4 * hidden_size
        for suffix in self.suffixes:
            self.register_parameter(f"weight_ih_l0{suffix}", nn.Parameter(torch.empty(gates, input_size)))
            self.register_parameter(f"weight_hh_l0{suffix}", nn.Parameter(torch.empty(gates, hidden_size)))
            self.register_parameter(f"bias_ih_l0{suffix}", nn.Parameter(torch.empty(gates)))
            self.register_parameter(f"bias_hh_l0{suffix}", nn.Parameter(torch.empty(gates)))

    @property
    def suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def reset_parameters(self) -> None:
        """``nn.LSTM``'s initialisation: uniform in ±1/√hidden_size."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def flat_weights(self) -> list[torch.Tensor]:
        """The weights in the fused kernel's order, the hidden-to-hidden ones dropped in training (both directions;
        fastai drops only the forward direction's ``weight_hh_l0``)."""
        weights = []
        for suffix in self.suffixes:
            w_hh = getattr(self, f"weight_hh_l0{suffix}")
            if self.training and self.weight_p > 0:  # F.dropout's DropConnect, with a mask drawn faster on CPU
                w_hh = w_hh * _bernoulli_mask(w_hh, w_hh.shape, self.weight_p)
            weights += [getattr(self, f"weight_ih_l0{suffix}"), w_hh, getattr(self, f"bias_ih_l0{suffix}"),
                        getattr(self, f"bias_hh_l0{suffix}")]
        return weights

    def forward(self, x: torch.Tensor, hx: LayerState, batch_sizes: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x``: (batch, time, input) or packed data (n, input) with ``batch_sizes``; ``hx``: (h0, c0), each
        (directions, batch, hidden). Returns the output and the final (h, c)."""
        weights = self.flat_weights()
        if cpu_lstm_applies(x, weights, self.bidirectional, packed=batch_sizes is not None):
            return cpu_lstm(x, hx, weights)  # CPU training under bf16 autocast (cpu_lstm.py says why)
        with warnings.catch_warnings():
            # cuDNN warns that the (freshly dropped) weights are not one contiguous buffer; fastai silences it too
            warnings.filterwarnings("ignore", message=".*not part of single contiguous chunk.*")
            if batch_sizes is None:
                out, h, c = _VF.lstm(x, hx, weights, True, 1, 0.0, self.training, self.bidirectional, True)
            else:
                out, h, c = _VF.lstm(x, batch_sizes, hx, weights, True, 1, 0.0, self.training, self.bidirectional)
        return out, h, c

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, bidirectional={self.bidirectional}, "
                f"weight_p={self.weight_p}")


# --------------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class AWDLSTMModelOutput(ModelOutput):
    """Outputs of [`AWDLSTMModel`].

    Args:
        last_hidden_state: the last LSTM layer's output, (batch, time, emb_size) (zeros at padding).
        hidden_states: with ``output_hidden_states``, every layer's raw output (before the dropout between layers).
        dropped_hidden_states: with ``output_hidden_states``, every layer's output after that dropout (the last layer
            has none: its entry is its raw output); equal to ``hidden_states`` in eval mode.
        state: with ``use_cache=True``, one ``(h, c)`` per layer after each row's last real token; pass it back as
            ``state=`` to continue the sequences.
    """

    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    dropped_hidden_states: tuple[torch.Tensor, ...] | None = None
    state: list[LayerState] | None = None


@dataclass
class AWDLSTMCausalLMOutput(ModelOutput):
    """Outputs of [`AWDLSTMForLanguageModeling`].

    Args:
        loss: with ``labels``: the cross-entropy of predicting token t+1 at position t, plus AR and TAR in training.
        logits: (batch, time, vocab_size); None when not computed (``return_logits``: by default a training step
            with ``labels`` computes its loss without them).
        lm_loss: the cross-entropy alone; ``ar_loss`` / ``tar_loss``: the regularisation terms added in training.
        raw_output: the last layer's output (fastai's ``raw_out``, what TAR reads).
        dropped_output: the same after the output dropout (fastai's ``out``, what AR reads and the decoder sees).
        hidden_states, dropped_hidden_states, state: as in [`AWDLSTMModelOutput`].
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    ar_loss: torch.Tensor | None = None
    tar_loss: torch.Tensor | None = None
    raw_output: torch.Tensor | None = None
    dropped_output: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    dropped_hidden_states: tuple[torch.Tensor, ...] | None = None
    state: list[LayerState] | None = None


@dataclass
class AWDLSTMSequenceClassifierOutput(ModelOutput):
    """Outputs of [`AWDLSTMForSequenceClassification`].

    Args:
        loss: with ``labels``: the classification loss (by ``problem_type``), plus AR and TAR in training.
        logits: (batch, num_labels).
        pooled_output: the head's input, [last, max, mean] of the pooled last-layer outputs, (batch, 3·emb_size).
        ar_loss / tar_loss: the regularisation terms added in training.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    pooled_output: torch.Tensor | None = None
    ar_loss: torch.Tensor | None = None
    tar_loss: torch.Tensor | None = None


# --------------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------------
class AWDLSTMPreTrainedModel(PreTrainedModel):
    config_class = AWDLSTMConfig
    base_model_prefix = "awd_lstm"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    _no_split_modules = ["AWDLSTMLayer"]
    # The heads return a mean loss; the Trainer then scales gradient accumulation itself.
    accepts_loss_kwargs = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """fastai's initialisation: embedding (and untied decoder) uniform in ±initializer_range (0.1), decoder bias
        zero, LSTM layers as ``nn.LSTM``, head BatchNorm weight 1 / bias 1e-3 and ``nn.Linear``'s default."""
        r = self.config.initializer_range
        if isinstance(module, AWDLSTMLayer):
            module.reset_parameters()
        elif isinstance(module, nn.Embedding):
            nn.init.uniform_(module.weight, -r, r)
        elif isinstance(module, nn.BatchNorm1d):
            module.reset_running_stats()
            nn.init.ones_(module.weight)
            nn.init.constant_(module.bias, 1e-3)
        elif isinstance(module, nn.Linear):
            if getattr(module, "_awd_lstm_decoder", False):
                nn.init.uniform_(module.weight, -r, r)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            else:
                module.reset_parameters()

    def _output(self, result: ModelOutput, return_dict: bool | None) -> ModelOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        return result if return_dict else result.to_tuple()


def _check_input_ids(input_ids: Any, vocab_size: int) -> torch.Tensor:
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a torch.Tensor, got {type(input_ids).__name__}")
    if input_ids.is_floating_point() or input_ids.dtype == torch.bool or input_ids.is_complex():
        raise TypeError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (batch, time), got {tuple(input_ids.shape)}")
    if input_ids.numel():
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"token ids must lie in [0, {vocab_size}), got values in [{lo}, {hi}]")
    return input_ids.long()


def _check_mask(attention_mask: Any, shape: tuple[int, int]) -> torch.Tensor:
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}")
    if tuple(attention_mask.shape) != tuple(shape):
        raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} does not match the input's "
                         f"(batch, time) = {tuple(shape)}")
    return attention_mask.bool()


class AWDLSTMModel(AWDLSTMPreTrainedModel):
    """The AWD-LSTM encoder: ``input_ids`` (batch, time) → the last LSTM layer's output (batch, time, emb_size).

    Stateless by default (each call starts from zero states); ``use_cache=True`` returns the state after each row's
    last real token and ``state=`` continues from one, which is how fastai's stateful language model reads a stream
    (fastai keeps the state in the module between calls; here it is passed explicitly).
    """

    # a language model's or classifier's folder read as the encoder alone: their heads are not unexpected
    _keys_to_ignore_on_load_unexpected = [r"^decoder\.", r"^classifier\."]

    def __init__(self, config: AWDLSTMConfig) -> None:
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.emb_size, padding_idx=config.pad_token_id)
        self.embedding_dropout = AWDLSTMEmbeddingDropout(config.embed_p)
        self.input_dropout = AWDLSTMLockedDropout(config.input_p)
        self.layers = nn.ModuleList(
            AWDLSTMLayer(config.layer_input_size(l), config.layer_state_size(l), config.bidirectional,
                         config.weight_p)
            for l in range(config.num_layers)
        )
        self.hidden_dropouts = nn.ModuleList(AWDLSTMLockedDropout(config.hidden_p)
                                             for _ in range(config.num_layers - 1))
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings = value

    def layer_groups(self) -> list[list[nn.Module]]:
        """ULMFiT's layer groups (as modules), bottom to top: [embedding and its dropout], [LSTM layer 0 and the
        dropout after it], ..., [LSTM layer n-1]."""
        groups: list[list[nn.Module]] = [[self.embeddings, self.embedding_dropout, self.input_dropout]]
        for l, layer in enumerate(self.layers):
            groups.append([layer] + ([self.hidden_dropouts[l]] if l < len(self.hidden_dropouts) else []))
        return groups

    # ------------------------------------------------------------------------------------------------------------
    def zero_state(self, batch_size: int, device: torch.device | None = None,
                   dtype: torch.dtype | None = None) -> list[LayerState]:
        """All-zero recurrent state for ``batch_size`` rows: one ``(h, c)`` per layer."""
        p = self.embeddings.weight
        device, dtype = device or p.device, dtype or p.dtype
        nd = self.config.num_directions
        return [
            (torch.zeros(nd, batch_size, layer.hidden_size, device=device, dtype=dtype),
             torch.zeros(nd, batch_size, layer.hidden_size, device=device, dtype=dtype))
            for layer in self.layers
        ]

    @staticmethod
    def detach_state(state: list[LayerState] | None) -> list[LayerState] | None:
        """The state cut from the graph (truncated back-propagation through time, as fastai does between calls)."""
        return None if state is None else [(h.detach(), c.detach()) for h, c in state]

    def _check_state(self, state: Any, batch: int, device: torch.device, dtype: torch.dtype) -> list[LayerState]:
        n = len(self.layers)
        if not isinstance(state, (list, tuple)) or len(state) != n:
            raise TypeError(f"state must be a list of {n} (h, c) pairs, one per layer, as a call with use_cache=True "
                            "returns it")
        checked = []
        for l, (pair, layer) in enumerate(zip(state, self.layers)):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2
                    and all(isinstance(t, torch.Tensor) for t in pair)):
                raise TypeError(f"state[{l}] must be an (h, c) pair of tensors")
            want = (layer.num_directions, batch, layer.hidden_size)
            for name, t in zip("hc", pair):
                if tuple(t.shape) != want:
                    raise ValueError(f"state[{l}] {name} has shape {tuple(t.shape)}, expected {want} "
                                     "(directions, batch, hidden) for this batch")
            checked.append((pair[0].to(device=device, dtype=dtype), pair[1].to(device=device, dtype=dtype)))
        return checked

    def embed(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> torch.Tensor:
        """Embedded input after embedding dropout (which ``inputs_embeds`` skip, as fastai's ``from_embeds``)."""
        if inputs_embeds is not None:
            return inputs_embeds
        return self.embedding_dropout(self.embeddings, input_ids)

    def run_layers(self, x: torch.Tensor, state: list[LayerState], batch_sizes: torch.Tensor | None = None,
                   rows: torch.Tensor | None = None, batch_size: int | None = None,
                   ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[LayerState]]:
        """Input dropout and every layer on embedded ``x``: batch-first (batch, time, emb), or packed data with
        ``batch_sizes`` (then ``rows`` gives each element's batch row, for the per-sequence dropout masks, and
        ``state`` is in the packed order). Returns the raw and dropped outputs of every layer and the new state."""
        x = self.input_dropout(x, rows, batch_size)
        raw, dropped, new_state = [], [], []
        for l, layer in enumerate(self.layers):
            out, h, c = layer(x, state[l], batch_sizes)
            raw.append(out)
            new_state.append((h, c))
            if l < len(self.hidden_dropouts):
                out = self.hidden_dropouts[l](out, rows, batch_size)
            dropped.append(out)
            x = out
        return raw, dropped, new_state

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        state: list[LayerState] | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> AWDLSTMModelOutput | tuple:
        """
        Args:
            input_ids: (batch, time) token ids.
            attention_mask: (batch, time), 1 for real tokens. Padding anywhere (left, right, fastai's chunks of pad
                before the text) is skipped: each row runs over its own real tokens only, its outputs are zero at
                padding and its state is the one after its last real token.
            state: recurrent state to start from, one ``(h, c)`` per layer; zeros when omitted.
            inputs_embeds: (batch, time, emb_size) instead of ``input_ids`` (no embedding dropout then).
            use_cache: return ``output.state``.
            output_hidden_states: return every layer's raw and dropped outputs.
        """
        for ignored in ("token_type_ids", "position_ids", "num_items_in_batch", "cache_position"):
            kwargs.pop(ignored, None)
        if kwargs:
            raise TypeError(f"{type(self).__name__}.forward got unexpected arguments: {sorted(kwargs)}")
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids (batch, time) and inputs_embeds (batch, time, emb_size)")
        param = self.embeddings.weight
        if input_ids is not None:
            input_ids = _check_input_ids(input_ids, self.config.vocab_size).to(param.device)
            batch, width = input_ids.shape
        else:
            if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.config.emb_size:
                raise ValueError(f"inputs_embeds must have shape (batch, time, {self.config.emb_size}), got "
                                 f"{tuple(inputs_embeds.shape)}")
            inputs_embeds = inputs_embeds.to(device=param.device, dtype=param.dtype)
            batch, width = inputs_embeds.shape[:2]
        output_hidden_states = (output_hidden_states if output_hidden_states is not None
                                else self.config.output_hidden_states)
        mask = None
        if attention_mask is not None:
            mask = _check_mask(attention_mask, (batch, width)).to(param.device)
            if bool(mask.all()):
                mask = None
        state = (self.zero_state(batch, param.device, param.dtype) if state is None
                 else self._check_state(state, batch, param.device, param.dtype))

        x = self.embed(input_ids, inputs_embeds)
        right_padded = (mask is not None and not self.config.bidirectional
                        and bool((mask[:, 1:] <= mask[:, :-1]).all()))
        if mask is None or (right_padded and not use_cache):
            # Dense: one fused call per layer. With right padding (one direction) the real tokens never see the
            # padding after them.
            raw, dropped, new_state = self.run_layers(x, state)
            if mask is not None:
                m = mask.unsqueeze(-1).to(x.dtype)
                raw, dropped = [o * m for o in raw], [o * m for o in dropped]
        else:
            raw, dropped, new_state = self._run_packed(x, mask, state)

        out = AWDLSTMModelOutput(
            last_hidden_state=raw[-1],
            hidden_states=tuple(raw) if output_hidden_states else None,
            dropped_hidden_states=tuple(dropped) if output_hidden_states else None,
            state=new_state if use_cache else None,
        )
        return self._output(out, return_dict)

    def _run_packed(self, x: torch.Tensor, mask: torch.Tensor, state: list[LayerState],
                    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[LayerState]]:
        """Rows of any padding: each row's real tokens, in order, run as one packed sequence."""
        batch, width, _ = x.shape
        lengths = mask.sum(dim=1)
        rows = lengths.nonzero().squeeze(1)  # rows with at least one real token
        # positions of each row's real tokens first (in order), then its padding
        positions = real_tokens_first(mask)
        compact = x.gather(1, positions.unsqueeze(-1).expand_as(x))[rows]
        packed = pack_padded_sequence(compact, lengths[rows].cpu(), batch_first=True, enforce_sorted=False)
        row_ids = torch.arange(rows.numel(), device=x.device).unsqueeze(1).expand(-1, width)
        packed_rows = pack_padded_sequence(row_ids, lengths[rows].cpu(), batch_first=True,
                                           enforce_sorted=False).data
        sorted_idx = packed.sorted_indices
        sub_state = [(h[:, rows][:, sorted_idx], c[:, rows][:, sorted_idx]) for h, c in state]
        raw, dropped, packed_state = self.run_layers(packed.data, sub_state, packed.batch_sizes, packed_rows,
                                                     rows.numel())

        def unpack(data: torch.Tensor) -> torch.Tensor:
            seq = packed._replace(data=data)
            padded, _ = pad_packed_sequence(seq, batch_first=True, total_length=width)  # (rows, width, h), compact
            full = padded.new_zeros(batch, width, padded.shape[-1])
            full[rows] = padded
            # back from the compact layout to the original positions (padding positions get the zeros)
            return full.new_zeros(full.shape).scatter(1, positions.unsqueeze(-1).expand_as(full), full)

        new_state = []
        unsorted = packed.unsorted_indices
        for (h0, c0), (h, c) in zip(state, packed_state):
            h_full, c_full = h0.clone(), c0.clone()
            h_full[:, rows], c_full[:, rows] = h[:, unsorted], c[:, unsorted]
            new_state.append((h_full, c_full))
        return [unpack(o) for o in raw], [unpack(o) for o in dropped], new_state


# --------------------------------------------------------------------------------------------------------------------
# Language model
# --------------------------------------------------------------------------------------------------------------------
class AWDLSTMForLanguageModeling(AWDLSTMPreTrainedModel, GenerationMixin):
    """fastai's ``get_language_model(AWD_LSTM, ...)``: the encoder, locked output dropout, and a linear decoder over
    the vocabulary tied to the embedding (``config.tie_weights``).

    ``labels`` (batch, time), usually the ``input_ids`` themselves: position t is trained to predict ``labels[t+1]``
    (shifted inside, as transformers' causal LMs do; -100 is ignored); (batch, time + 1) labels also carry the token
    after the window, so that its last position has a target too (the contiguous LM stream). In training mode fastai's AR and TAR
    (``RNNRegularizer``) are added to the loss: ``ar_alpha · mean(dropped_output²)`` and
    ``tar_beta · mean((raw_output[t+1] − raw_output[t])²)`` over real tokens.
    """

    _tied_weights_keys = {"decoder.weight": "awd_lstm.embeddings.weight"}
    _keys_to_ignore_on_load_unexpected = [r"^classifier\."]
    _is_stateful = True  # generation carries ``state``, not a key/value cache

    def __init__(self, config: AWDLSTMConfig) -> None:
        super().__init__(config)
        self.awd_lstm = AWDLSTMModel(config)
        self.output_dropout = AWDLSTMLockedDropout(config.output_p)
        self.decoder = nn.Linear(config.emb_size, config.vocab_size, bias=config.out_bias)
        self.decoder._awd_lstm_decoder = True
        self._packed_cache = PackedLinearCache()  # the decoder packed for oneDNN, in eval mode on CPU (`decode`)
        self.post_init()

    def train(self, mode: bool = True) -> "AWDLSTMForLanguageModeling":
        # see PackedLinearCache: a packed weight is only trusted in eval mode
        self._packed_cache.clear()
        self._packed_cache.enabled = not mode
        return super().train(mode)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "AWDLSTMForLanguageModeling":
        self._packed_cache.clear()
        return super()._apply(fn, *args, **kwargs)

    def decode(self, hidden: torch.Tensor) -> torch.Tensor:
        """The decoder's logits, (rows, emb_size) → (rows, vocab_size). In evaluation on CPU (no gradient, no
        autocast) with the weight packed once for oneDNN (``PackedLinearCache``): 15-20% less time than torch's
        float32 product at ULMFiT's size on the 2-core Zen 4, where torch's is MKL's generic path; a decoder that is
        not a plain ``nn.Linear`` or has hooks (an adapter, a user's hook) is always called as a module."""
        decoder = self.decoder
        if (type(decoder) is not nn.Linear or decoder._forward_hooks or decoder._forward_pre_hooks
                or torch.is_autocast_enabled(hidden.device.type)):
            return decoder(hidden)
        return self._packed_cache.linear(hidden, decoder.weight, decoder.bias)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.awd_lstm.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.awd_lstm.embeddings = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.decoder = value

    def layer_groups(self) -> list[list[nn.Module]]:
        """ULMFiT's layer groups (as modules), bottom to top: [embedding and its dropout], [LSTM layer 0], ...,
        [LSTM layer n-1], [output dropout and decoder]. With tied weights the shared matrix is listed twice (in the
        embedding and in the decoder); ``hf_elmo.training`` gives a shared parameter to the topmost group that lists
        it, which is fastai's ``awd_lstm_lm_split`` (embedding and tied decoder in the top group)."""
        return self.awd_lstm.layer_groups() + [[self.output_dropout, self.decoder]]

    def prepare_inputs_for_generation(self, input_ids: torch.Tensor, state: list[LayerState] | None = None,
                                      attention_mask: torch.Tensor | None = None,
                                      inputs_embeds: torch.Tensor | None = None, use_cache: bool | None = None,
                                      **kwargs: Any) -> dict[str, Any]:
        """With a state, only the newest token is read (the state holds everything before it)."""
        if state is not None:
            input_ids = input_ids[:, -1:]
            attention_mask = attention_mask[:, -1:] if attention_mask is not None else None
            inputs_embeds = None
        inputs = {"attention_mask": attention_mask, "state": state, "use_cache": True}
        if inputs_embeds is not None:
            inputs["inputs_embeds"] = inputs_embeds
        else:
            inputs["input_ids"] = input_ids.contiguous()
        return inputs

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        state: list[LayerState] | None = None,
        labels: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        return_logits: bool | None = None,
        **kwargs: Any,
    ) -> AWDLSTMCausalLMOutput | tuple:
        """``return_logits``: compute and return ``logits``. By default they are computed unless ``labels`` are
        given and a gradient will be taken (a training step), where the loss is then computed block by block
        without ever holding the (tokens × vocab) logits (``fused_linear_cross_entropy``: the same loss and
        gradients, a fraction of the memory); ``return_logits=True`` forces them, ``False`` (with ``labels``) also
        skips them in evaluation (perplexity)."""
        for ignored in ("num_items_in_batch", "logits_to_keep", "past_key_values", "cache_position"):
            kwargs.pop(ignored, None)
        out = self.awd_lstm(input_ids, attention_mask=attention_mask, state=state, inputs_embeds=inputs_embeds,
                            use_cache=use_cache, output_hidden_states=output_hidden_states, return_dict=True,
                            **kwargs)
        raw = out.last_hidden_state
        dropped = self.output_dropout(raw)
        if return_logits is None:
            return_logits = labels is None or not torch.is_grad_enabled()
        if labels is None and not return_logits:
            raise ValueError("return_logits=False without labels leaves nothing to return")
        logits = None
        if return_logits:
            # 2-D product: a 3-D input under CPU autocast becomes a bmm that copies the (vocab × emb) weight once
            # per batch row (a second per batch at ULMFiT's size)
            logits = self.decode(dropped.reshape(-1, dropped.shape[-1])).view(*dropped.shape[:-1], -1)

        loss = lm_loss = ar_loss = tar_loss = None
        if labels is not None:
            labels = labels.to(raw.device).long()
            batch, steps = raw.shape[:2]
            if labels.dim() != 2 or labels.shape[0] != batch or labels.shape[1] not in (steps, steps + 1):
                raise ValueError(f"labels shape {tuple(labels.shape)} must be (batch, time) = {(batch, steps)}, "
                                 f"or (batch, time + 1) = {(batch, steps + 1)} with the token after the window")
            # Position t predicts labels[t + 1]: with time + 1 labels (a window of a contiguous stream and the token
            # after it, as hf_elmo.training.LMStreamDataset gives them) every position has a target.
            targets = labels[:, 1:].reshape(-1)
            if logits is not None:
                scored = logits if labels.shape[1] == steps + 1 else logits[:, :-1]
                lm_loss = lm_cross_entropy(scored.float().reshape(-1, logits.shape[-1]), targets)
            else:
                read = dropped if labels.shape[1] == steps + 1 else dropped[:, :-1]
                lm_loss = fused_linear_cross_entropy(read.reshape(-1, read.shape[-1]), self.decoder.weight,
                                                     self.decoder.bias, targets)
            loss = lm_loss
            if self.training:
                mask = None if attention_mask is None else attention_mask.to(raw.device).bool()
                penalty = ActivationPenalty(self.config.ar_alpha, self.config.tar_beta, raw)
                penalty.add(dropped, raw, mask)
                ar_loss, tar_loss = penalty.terms()
                loss = loss + ar_loss + tar_loss
        result = AWDLSTMCausalLMOutput(
            loss=loss, logits=logits, lm_loss=lm_loss, ar_loss=ar_loss, tar_loss=tar_loss, raw_output=raw,
            dropped_output=dropped, hidden_states=out.hidden_states, dropped_hidden_states=out.dropped_hidden_states,
            state=out.state,
        )
        return self._output(result, return_dict)


class _LanguageModelCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``logits`` (rows, vocab) against ``targets`` (rows,), ``ignore_index`` rows left out:
    ``F.cross_entropy``'s value and gradient with fewer passes over the (rows × vocab) buffers, which dominate a
    language model's loss at ULMFiT's size (2,240 × 60,000 floats a batch). The backward pass turns the saved
    log-probabilities into the gradient in place (``softmax − one_hot``, scaled) instead of allocating two more
    such buffers; it can therefore run once per forward pass (a second backward through the same graph raises)."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, targets: torch.Tensor, ignore_index: int) -> torch.Tensor:
        valid = targets != ignore_index
        safe = targets.masked_fill(~valid, 0).unsqueeze(1)
        log_probs = F.log_softmax(logits, dim=1)
        count = valid.sum()
        ctx.save_for_backward(log_probs, safe, valid, count)
        ctx.used = False
        picked = log_probs.gather(1, safe).squeeze(1)
        return -torch.where(valid, picked, 0.0).sum() / count  # nan without a target, as F.cross_entropy

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        if ctx.used:
            raise RuntimeError("the AWD-LSTM LM loss's backward pass reuses its buffer: it can run once per forward "
                               "pass (do not backward through it with retain_graph=True twice)")
        ctx.used = True
        log_probs, safe, valid, count = ctx.saved_tensors
        scale = (valid.to(log_probs.dtype) * (grad_output / count.clamp_min(1))).unsqueeze(1)
        grad = log_probs.exp_().mul_(scale)  # softmax, scaled, in the saved buffer
        grad.scatter_add_(1, safe, -scale)  # − one-hot, scaled
        return grad, None, None


def lm_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """``F.cross_entropy(logits, targets, ignore_index=ignore_index)`` (mean over the targets), computed by
    ``_LanguageModelCrossEntropy`` when a gradient is needed (faster, less memory) and by torch otherwise."""
    if not (torch.is_grad_enabled() and logits.requires_grad):
        return F.cross_entropy(logits, targets, ignore_index=ignore_index)
    return _LanguageModelCrossEntropy.apply(logits, targets, ignore_index)


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


class ActivationPenalty:
    """fastai's ``RNNRegularizer``: AR = α·mean(dropped²) and TAR = β·mean((raw[t+1] − raw[t])²), in float32, over
    the real tokens (TAR: over pairs of consecutive real tokens), accumulated over the chunks a document is read in
    (the pair across two consecutive chunks included). A term whose coefficient is 0 is not computed. (fastai skips
    TAR for a batch of one row, its ``len(h) > 1`` testing the batch size; here a single token has no pair.)"""

    def __init__(self, ar_alpha: float, tar_beta: float, like: torch.Tensor) -> None:
        self.ar_alpha, self.tar_beta = float(ar_alpha), float(tar_beta)
        zero = like.new_zeros((), dtype=torch.float32)
        self.ar_sum, self.ar_count, self.tar_sum, self.tar_count = zero, zero, zero, zero
        self.previous: tuple[torch.Tensor, torch.Tensor] | None = None  # the last chunk's last (raw, keep)

    def add(self, dropped: torch.Tensor, raw: torch.Tensor, keep: torch.Tensor | None = None) -> None:
        """One chunk: ``dropped`` and ``raw`` (rows, time, size) the last layer's outputs after and before its
        dropout, ``keep`` (rows, time) bool the positions counted (all when None). Rows are the batch's first
        ``rows`` rows; a chunk following the previous one continues its pairs unless ``cut`` was called."""
        size = raw.shape[-1]
        if keep is None:
            keep = torch.ones(raw.shape[:2], dtype=torch.bool, device=raw.device)
        if self.ar_alpha:
            self.ar_sum = self.ar_sum + (dropped.float().pow(2) * keep.unsqueeze(-1)).sum()
            self.ar_count = self.ar_count + keep.sum() * size
        if self.tar_beta:
            pairs = (keep[:, 1:] & keep[:, :-1]).unsqueeze(-1)
            self.tar_sum = self.tar_sum + ((raw[:, 1:] - raw[:, :-1]).float().pow(2) * pairs).sum()
            self.tar_count = self.tar_count + pairs.sum() * size
            if self.previous is not None:
                rows = raw.shape[0]
                prev_raw, prev_keep = self.previous[0][:rows], self.previous[1][:rows]
                pair = (prev_keep & keep[:, 0]).unsqueeze(-1)
                self.tar_sum = self.tar_sum + ((raw[:, 0] - prev_raw).float().pow(2) * pair).sum()
                self.tar_count = self.tar_count + pair.sum() * size
            self.previous = (raw[:, -1], keep[:, -1])

    def cut(self) -> None:
        """The next chunk does not continue this one (no TAR pair between them)."""
        self.previous = None

    def terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(AR, TAR), each 0 when nothing was counted."""
        return (self.ar_alpha * self.ar_sum / self.ar_count.clamp_min(1),
                self.tar_beta * self.tar_sum / self.tar_count.clamp_min(1))


# --------------------------------------------------------------------------------------------------------------------
# The classifier's reading of a document (fastai's SentenceEncoder + masked_concat_pool), stated once: the eager
# classifier and its ONNX graph (hf_elmo/onnx/awd_lstm.py) both run these pieces.
# --------------------------------------------------------------------------------------------------------------------
def real_tokens_first(mask: torch.Tensor) -> torch.Tensor:
    """(batch, time) positions that move each row's real tokens (``mask`` True) to its front, in order, then its
    padding: ``x.gather(1, positions)`` is the compact layout, ``argsort(positions)`` the way back. The sort keys are
    distinct (a padding position's key is its position plus the width), so any sort gives this order."""
    width = mask.shape[1]
    steps = torch.arange(width, device=mask.device).unsqueeze(0)
    return torch.argsort(torch.where(mask, steps, steps + width), dim=1)


def longest_first(lengths: torch.Tensor) -> torch.Tensor:
    """Row order by falling length: in this order the documents still going on at any chunk are the leading rows,
    the only ones that chunk's LSTM calls run (fastai's ``pad_input_chunk`` layout makes that so)."""
    return torch.argsort(lengths, descending=True)


def pooled_window_start(lengths: torch.Tensor, bptt: int, max_len: int | None) -> torch.Tensor:
    """(batch,) the first position each document pools: the start of the first ``bptt`` chunk that starts within the
    document's last ``max_len`` real tokens (fastai's ``sl - i <= max_len``); 0 without ``max_len``."""
    if max_len is None:
        return torch.zeros_like(lengths)
    first_chunk = torch.div(lengths - max_len + bptt - 1, bptt, rounding_mode="floor").clamp_min(0)
    return first_chunk * bptt


def pooled_positions(remaining: torch.Tensor, start: int | torch.Tensor, width: int,
                     window_start: torch.Tensor) -> torch.Tensor:
    """(rows, width) bool: which of a chunk's positions are pooled. The chunk covers positions ``start ..
    start + width - 1`` of each row's compact layout; ``remaining`` (rows,) is each row's length minus ``start``
    (its real tokens from the chunk on) and ``window_start`` (rows,) its ``pooled_window_start``."""
    steps = torch.arange(width, device=remaining.device).unsqueeze(0)
    return (steps < remaining.unsqueeze(1)) & (start + steps >= window_start.unsqueeze(1))


class ConcatPool(NamedTuple):
    """The running [last, max, mean] pooling of fastai's ``masked_concat_pool`` over a document read chunk by chunk:
    ``total`` and ``largest`` (batch, size), ``count`` (batch,) in the floating dtype, ``last`` (batch, size) the
    output at the document's last real token."""

    total: torch.Tensor
    largest: torch.Tensor
    count: torch.Tensor
    last: torch.Tensor

    @classmethod
    def start(cls, batch: int, size: int, like: torch.Tensor) -> ConcatPool:
        """Empty accumulators, in ``like``'s dtype and device."""
        return cls(like.new_zeros(batch, size), like.new_full((batch, size), float("-inf")), like.new_zeros(batch),
                   like.new_zeros(batch, size))

    def add(self, out: torch.Tensor, keep: torch.Tensor, remaining: torch.Tensor) -> ConcatPool:
        """The accumulators after one chunk: ``out`` (rows, width, size) the chunk's last-layer outputs for the
        batch's first ``rows`` rows (the rest keep their values), ``keep`` (rows, width) its pooled positions, and
        ``remaining`` (rows,) each row's real tokens from the chunk on (a row whose last token is in the chunk,
        ``0 < remaining <= width``, takes its ``last``)."""
        rows, width, size = out.shape
        total, largest, count, last = (t[:rows] for t in self)
        total = total + (out * keep.unsqueeze(-1).to(out.dtype)).sum(dim=1)
        chunk_max = out.masked_fill(~keep.unsqueeze(-1), float("-inf")).amax(dim=1)
        # Greater + Where, not Max: ONNX Runtime's float16 converter keeps Max in float32 and mis-wires the casts it
        # adds when a Max output is a loop body's output
        largest = torch.where(chunk_max > largest, chunk_max, largest)
        count = count + keep.sum(dim=1).to(count.dtype)
        ends = (remaining > 0) & (remaining <= width)
        index = (remaining - 1).clamp(0, width - 1)
        at_end = out.gather(1, index.view(-1, 1, 1).expand(-1, 1, size)).squeeze(1)
        last = torch.where(ends.unsqueeze(1), at_end, last)
        new = (total, largest, count, last)
        if rows == self.total.shape[0]:
            return ConcatPool(*new)
        return ConcatPool(*(torch.cat([n, old[rows:]]) for n, old in zip(new, self)))

    def pooled(self) -> torch.Tensor:
        """(batch, 3·size): [last, max, mean] over the pooled positions."""
        mean = self.total / self.count.clamp_min(1).unsqueeze(1).to(self.total.dtype)
        return torch.cat([self.last, self.largest, mean], dim=1)


# --------------------------------------------------------------------------------------------------------------------
# Classifier
# --------------------------------------------------------------------------------------------------------------------
class AWDLSTMHeadBlock(nn.Module):
    """One block of fastai's ``PoolingLinearClassifier`` (``LinBnDrop``): BatchNorm1d → Dropout → Linear (without
    bias in fastai 2, with one in fastai 1) → ReLU (not after the last block)."""

    def __init__(self, n_in: int, n_out: int, p: float, relu: bool, bias: bool = False) -> None:
        super().__init__()
        self.batch_norm = nn.BatchNorm1d(n_in)
        self.dropout = nn.Dropout(p)
        self.linear = nn.Linear(n_in, n_out, bias=bias)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(self.dropout(self.batch_norm(x)))
        return torch.relu(x) if self.relu else x


class AWDLSTMClassificationHead(nn.Module):
    """fastai's ``PoolingLinearClassifier`` layers: ``[3·emb_size] + classifier_hidden_sizes + [num_labels]``."""

    def __init__(self, config: AWDLSTMConfig) -> None:
        super().__init__()
        dims = [config.classifier_input_size, *config.classifier_hidden_sizes, config.num_labels]
        n = len(dims) - 1
        self.layers = nn.ModuleList(
            AWDLSTMHeadBlock(dims[k], dims[k + 1], p, relu=k < n - 1, bias=config.classifier_bias)
            for k, p in enumerate(config.head_dropouts)
        )
        self.y_range = config.classifier_y_range

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        x = pooled
        for block in self.layers:
            x = block(x)
        if self.y_range is not None:
            low, high = self.y_range
            x = torch.sigmoid(x) * (high - low) + low
        return x


def _document_inputs(model: AWDLSTMPreTrainedModel, input_ids: Any, attention_mask: Any,
                     kwargs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """A classifier's ``input_ids`` checked and on its device, and the real tokens: ``attention_mask``, else the
    tokens that are not ``pad_token_id`` (fastai's padding), else every token. Arguments that transformers passes to
    every model and a classifier has no use for are dropped; any other is refused by name. Hidden states asked for
    (``output_hidden_states``, by argument or config) are refused rather than silently left out: a classifier reads
    a document in chunks and keeps the outputs of its pooled window only."""
    wants_hidden = kwargs.pop("output_hidden_states", None)
    if wants_hidden or (wants_hidden is None and model.config.output_hidden_states):
        raise ValueError(f"{type(model).__name__} does not return hidden states (it reads each document in bptt "
                         "chunks and keeps only the pooled window's outputs): run AWDLSTMModel on the same inputs "
                         "with output_hidden_states=True for every layer's outputs")
    for ignored in ("token_type_ids", "position_ids", "num_items_in_batch", "output_attentions", "use_cache"):
        kwargs.pop(ignored, None)
    if kwargs:
        raise TypeError(f"{type(model).__name__}.forward got unexpected arguments: {sorted(kwargs)}")
    if input_ids is None:
        raise ValueError(f"{type(model).__name__} needs input_ids (batch, time)")
    device = model.get_input_embeddings().weight.device
    input_ids = _check_input_ids(input_ids, model.config.vocab_size).to(device)
    if attention_mask is not None:
        return input_ids, _check_mask(attention_mask, tuple(input_ids.shape)).to(device)
    if model.config.pad_token_id is not None:
        return input_ids, input_ids != model.config.pad_token_id
    return input_ids, torch.ones_like(input_ids, dtype=torch.bool)


class AWDLSTMForSequenceClassification(AWDLSTMPreTrainedModel):
    """ULMFiT's classifier, fastai's ``get_text_classifier(AWD_LSTM, ...)``: ``SentenceEncoder`` +
    ``PoolingLinearClassifier``.

    Each document is read from its first real token in chunks of ``config.bptt`` tokens, the state carried from one
    chunk to the next (and cut from the graph between chunks, as fastai does); the outputs of the chunks that start
    within the last ``config.max_len`` tokens of the document are pooled as [last, max, mean] over its real tokens
    (fastai's ``masked_concat_pool``) and go through the head (BatchNorm1d → Dropout → Linear (→ ReLU) blocks).
    Chunks before those run without keeping a graph, so memory is bounded whatever the document's length.

    Real tokens are given by ``attention_mask`` (any padding: left, right, or fastai's ``pad_input_chunk`` layout);
    without one, tokens equal to ``pad_token_id`` are padding, as in fastai. A document's logits do not depend on
    how its batch was padded. ``labels`` → cross-entropy, MSE (``num_labels == 1``) or BCE
    (``problem_type="multi_label_classification"``); in training fastai's AR and TAR over the pooled window's
    outputs are added (over its real tokens; fastai's means also count the padding positions of the batch).
    """

    # Eval mode only: chunks before the pooled ones are read this many tokens at a time (fewer, larger fused calls;
    # the result does not depend on it).
    PREFIX_BLOCK_TOKENS = 2048
    _keys_to_ignore_on_load_unexpected = [r"^decoder\."]

    def __init__(self, config: AWDLSTMConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.awd_lstm = AWDLSTMModel(config)
        self.classifier = AWDLSTMClassificationHead(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.awd_lstm.embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.awd_lstm.embeddings = value

    def layer_groups(self) -> list[list[nn.Module]]:
        """ULMFiT's layer groups (as modules; fastai's ``awd_lstm_clas_split``), bottom to top: [embedding and its
        dropout], [LSTM layer 0], ..., [LSTM layer n-1], [head]."""
        return self.awd_lstm.layer_groups() + [[self.classifier]]

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> AWDLSTMSequenceClassifierOutput | tuple:
        input_ids, mask = _document_inputs(self, input_ids, attention_mask, kwargs)
        pooled, ar_loss, tar_loss = self.encode_documents(input_ids, mask)
        logits = self.classifier(pooled)
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(self.config, logits, labels.to(logits.device))
            if self.training:
                loss = loss + ar_loss + tar_loss
        if not self.training:
            ar_loss = tar_loss = None
        result = AWDLSTMSequenceClassifierOutput(loss=loss, logits=logits, pooled_output=pooled, ar_loss=ar_loss,
                                                 tar_loss=tar_loss)
        return self._output(result, return_dict)

    def encode_documents(self, input_ids: torch.Tensor, mask: torch.Tensor,
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """fastai's SentenceEncoder + masked_concat_pool, per document: returns the pooled [last, max, mean]
        features (batch, 3·emb_size) and the AR and TAR terms over the pooled outputs (0 in eval mode)."""
        cfg, encoder = self.config, self.awd_lstm
        batch = input_ids.shape[0]
        lengths = mask.sum(dim=1)
        empty = (lengths == 0).nonzero().squeeze(1).tolist()
        if empty:
            raise ValueError(f"rows {empty} of the batch hold no real token (attention_mask all 0 / only padding)")
        order = longest_first(lengths)
        ids = input_ids.gather(1, real_tokens_first(mask))[order]
        lens = lengths[order]
        bptt = cfg.bptt
        window = pooled_window_start(lens, bptt, cfg.max_len)
        lens_l, window_l = lens.tolist(), window.tolist()
        n_chunks = (lens_l[0] - 1) // bptt + 1

        param = encoder.embeddings.weight
        pool = ConcatPool.start(batch, cfg.emb_size, param)
        penalty = ActivationPenalty(cfg.ar_alpha, cfg.tar_beta, param) if self.training else None
        state = encoder.zero_state(batch, param.device, param.dtype)
        k = 0
        while k < n_chunks:
            start = k * bptt
            n_act = sum(1 for n in lens_l if n > start)  # the documents still going on: the leading rows
            state = [(h[:, :n_act].detach(), c[:, :n_act].detach()) for h, c in state]
            if all(window_l[b] > start for b in range(n_act)):
                # Not pooled for any running row: no graph is kept (fastai detaches the state after every chunk).
                # In eval, consecutive such chunks go in one call (one direction only: a backward direction reads
                # each chunk from its end, as fastai's does, so its chunks cannot be merged).
                end = k + 1
                if not self.training and not cfg.bidirectional:
                    limit = k + max(1, self.PREFIX_BLOCK_TOKENS // bptt)
                    while (end < min(n_chunks, limit) and all(window_l[b] > end * bptt for b in range(n_act))
                           and sum(1 for n in lens_l if n > end * bptt) == n_act):
                        end += 1
                with torch.no_grad():
                    x = encoder.embed(ids[:n_act, start : end * bptt], None)
                    _, _, state = encoder.run_layers(x, state)
                if penalty is not None:
                    penalty.cut()
                k = end
                continue

            chunk = ids[:n_act, start : start + bptt]
            remaining = lens[:n_act] - start
            real = torch.arange(chunk.shape[1], device=chunk.device).unsqueeze(0) < remaining.unsqueeze(1)
            x = encoder.embed(chunk, None)
            if cfg.bidirectional and not bool(real.all()):
                # a document ends inside this chunk: its backward direction must start at its last real token
                raw, _, state = encoder._run_packed(x, real, state)
            else:
                raw, _, state = encoder.run_layers(x, state)
            out = raw[-1]  # (n_act, chunk width, emb): the last layer has no dropout after it
            keep = pooled_positions(remaining, start, chunk.shape[1], window[:n_act])
            pool = pool.add(out, keep, remaining)
            if penalty is not None:
                penalty.add(out, out, keep)
            k += 1

        pooled = pool.pooled()[torch.argsort(order)]
        if penalty is None:
            zero = param.new_zeros((), dtype=torch.float32)
            return pooled, zero, zero
        ar, tar = penalty.terms()
        return pooled, ar, tar


# --------------------------------------------------------------------------------------------------------------------
# ULMFiT's forward + backward ensemble
# --------------------------------------------------------------------------------------------------------------------
def reversed_documents(input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's real tokens in reverse order at its front, then its padding: how a backward model (fastai's
    ``backwards=True``) reads the document. Returns the ids and the mask of that layout, (batch, time) each."""
    positions = real_tokens_first(mask)
    lengths = mask.sum(dim=1, keepdim=True)
    steps = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
    source = torch.where(steps < lengths, lengths - 1 - steps, steps)
    return input_ids.gather(1, positions.gather(1, source)), steps < lengths


def _architecture_fields(config: AWDLSTMConfig) -> dict[str, Any]:
    """A config's fields without what names its class and origin (model type, architectures, auto_map, version) or
    its direction: what an ensemble and its two members share."""
    return {k: v for k, v in config.to_dict().items()
            if k not in ("model_type", "architectures", "auto_map", "transformers_version", "backwards")}


def _folder_vocabulary(folder: str | os.PathLike) -> list[str] | None:
    """The tokenizer vocabulary (fastai's itos) saved in a model folder's ``vocab.json``, or None without one. Read
    here rather than through the tokenizer class: the model's code must not import the tokenizer's module, whose
    own siblings a remote-code copy of the model would then need too."""
    path = os.path.join(folder, "vocab.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@dataclass
class AWDLSTMEnsembleOutput(ModelOutput):
    """Outputs of [`AWDLSTMEnsembleForSequenceClassification`].

    Args:
        loss: with ``labels``: the loss of ``logits`` (for single-label classification the negative log of the
            averaged probability of the label).
        logits: (batch, num_labels): the log of the averaged probabilities (softmax(logits) is the average; for
            multi-label classification the logit of the averaged sigmoids; for regression the averaged outputs).
        forward_logits, backward_logits: each member's own logits.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    forward_logits: torch.Tensor | None = None
    backward_logits: torch.Tensor | None = None


class AWDLSTMEnsembleForSequenceClassification(AWDLSTMPreTrainedModel):
    """ULMFiT's forward + backward ensemble, as the paper reports its results: a classifier reading each document
    in the text's order and one reading it reversed (trained with fastai's ``backwards=True``), their class
    probabilities averaged. Takes a document as the forward tokenizer gives it (any padding, by ``attention_mask``);
    the backward member gets it reversed (``reversed_documents``). Build one from two trained classifiers with
    :meth:`from_classifiers`; it saves and loads as one folder (model type ``awd_lstm_ensemble``)."""

    config_class = AWDLSTMEnsembleConfig
    base_model_prefix = "forward_classifier"

    def __init__(self, config: AWDLSTMEnsembleConfig) -> None:
        super().__init__(config)
        fields = _architecture_fields(config)
        self.forward_classifier = AWDLSTMForSequenceClassification(AWDLSTMConfig(**fields, backwards=False))
        self.backward_classifier = AWDLSTMForSequenceClassification(AWDLSTMConfig(**fields, backwards=True))
        self.post_init()

    # the architecture fields two classifiers must share to be one ensemble (everything but the direction and the
    # dropouts, which do not act in evaluation)
    SHARED_FIELDS = ("vocab_size", "emb_size", "hidden_size", "num_layers", "bidirectional", "bptt", "max_len",
                     "classifier_hidden_sizes", "num_labels", "pad_token_id", "id2label", "problem_type")

    @classmethod
    def from_classifiers(cls, forward: Any, backward: Any) -> "AWDLSTMEnsembleForSequenceClassification":
        """The ensemble of a forward and a backward ``AWDLSTMForSequenceClassification`` (models, or folders that
        hold one with its tokenizer: the two vocabularies must then be the same). Refuses, naming the field, two
        classifiers that do not fit together (directions, vocabulary, architecture, labels)."""
        vocabularies = []
        models = []
        for which, source, backwards in (("forward", forward, False), ("backward", backward, True)):
            if isinstance(source, (str, os.PathLike)):
                vocabularies.append((which, _folder_vocabulary(source)))
                source = AWDLSTMForSequenceClassification.from_pretrained(source)
            if not isinstance(source, AWDLSTMForSequenceClassification):
                raise TypeError(f"the {which} member must be an AWDLSTMForSequenceClassification (or its folder), "
                                f"got {type(source).__name__}")
            if bool(getattr(source.config, "backwards", False)) != backwards:
                raise ValueError(f"the {which} member's config says backwards={not backwards}: give a forward and "
                                 "a backward classifier, in that order")
            models.append(source)
        if len(vocabularies) == 2 and None not in (vocabularies[0][1], vocabularies[1][1]) \
                and vocabularies[0][1] != vocabularies[1][1]:
            raise ValueError("the two classifiers' vocabularies differ: an ensemble's members read the same ids")
        for field in cls.SHARED_FIELDS:
            a, b = (getattr(m.config, field, None) for m in models)
            if a != b:
                raise ValueError(f"the two classifiers differ in {field}: {a!r} (forward) vs {b!r} (backward)")
        ensemble = cls(AWDLSTMEnsembleConfig(**_architecture_fields(models[0].config)))
        ensemble.forward_classifier.load_state_dict(models[0].state_dict())
        ensemble.backward_classifier.load_state_dict(models[1].state_dict())
        return ensemble.train(models[0].training)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.forward_classifier.get_input_embeddings()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> AWDLSTMEnsembleOutput | tuple:
        input_ids, mask = _document_inputs(self, input_ids, attention_mask, kwargs)
        forward_logits = self.forward_classifier(input_ids, attention_mask=mask, return_dict=True).logits
        reversed_ids, reversed_mask = reversed_documents(input_ids, mask)
        backward_logits = self.backward_classifier(reversed_ids, attention_mask=reversed_mask,
                                                   return_dict=True).logits
        a, b = forward_logits.float(), backward_logits.float()
        if self.config.num_labels == 1 or self.config.problem_type == "regression":
            logits = (a + b) / 2
        elif self.config.problem_type == "multi_label_classification":
            logits = torch.logit((a.sigmoid() + b.sigmoid()) / 2)
        else:
            logits = torch.log((a.softmax(-1) + b.softmax(-1)) / 2)
        loss = None
        if labels is not None:
            loss = sequence_classification_loss(self.config, logits, labels.to(logits.device))
        result = AWDLSTMEnsembleOutput(loss=loss, logits=logits, forward_logits=forward_logits,
                                       backward_logits=backward_logits)
        return self._output(result, return_dict)


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
