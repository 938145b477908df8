"""Reads fastai AWD-LSTM checkpoints (ULMFiT language models and text classifiers) into the transformers models of
``hf_elmo.models.awd_lstm``, and converts one into a ``save_pretrained`` folder ready for the Hub
(``convert_fastai_awd_lstm``).

Files read (``torch.load(..., weights_only=True)`` only: nothing but tensors and plain containers is unpickled):

* fastai v2 ``Learner.save`` files (``{'model': state_dict, 'opt': ...}``) and plain state dicts
  (``torch.save(learn.model.state_dict())``);
* fastai v1 files, e.g. ULMFiT's ``lstm_wt103.pth``, whose ``WeightDropout`` also saved the (dropped) copy
  ``0.rnns.N.module.weight_hh_l0`` beside the raw weight ``0.rnns.N.weight_hh_l0_raw``; the copy is ignored;
* a leading ``module.`` (``nn.DataParallel``) on every key.

The layout (../shared/REFERENCE.md): ``0.encoder.weight`` (and its alias ``0.encoder_dp.emb.weight``),
``0.rnns.{l}.weight_hh_l0_raw``, ``0.rnns.{l}.module.{weight_ih_l0,bias_ih_l0,bias_hh_l0}`` (``*_reverse`` too when
bidirectional), ``1.decoder.{weight,bias}`` for a language model; a classifier has its encoder under ``0.module.``
and its head as ``1.layers.{k}.{0: BatchNorm1d, 1: Dropout, 2: Linear}`` (the Linear at 1 when the dropout is 0).
Every size (embedding, hidden, layers, directions, vocabulary, head) is read from the tensor shapes; every tensor is
then checked against the shapes those sizes imply, so a truncated, edited or foreign file fails with a message naming
each missing, unexpected or mis-shaped key.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import transformers
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from ..auto import register
from ..cards import render_awd_lstm_card
from ..hub import push_folder
from ..models.awd_lstm.configuration_awd_lstm import AWDLSTMConfig
from ..models.awd_lstm.modeling_awd_lstm import AWDLSTMForLanguageModeling, AWDLSTMForSequenceClassification
from ..models.awd_lstm.tokenization_awd_lstm import BOS, PAD, TK_MAJ, TK_REP, TK_UP, TK_WREP, UNK, AWDLSTMTokenizer
from .common import (ConversionError, check_close, check_output_dir, file_sha256, nan_max, non_finite, save_folder,
                     seeded_model, staged_output)
from .safe_pickle import read_itos_pickle

logger = logging.getLogger(__name__)

LANGUAGE_MODEL = "language-model"
CLASSIFIER = "classifier"

# Texts the saved folder is checked with after reloading (tokenised by the converted tokenizer: several lengths, so
# padding is exercised, capitals and repetitions so that fastai's xxmaj/xxup/xxrep show up).
VERIFY_TEXTS = [
    "The quick brown fox didn't jump over the lazy dog. It was sooooo tired!",
    "ULMFiT fine-tunes a PRETRAINED language model.",
    "Short one.",
]
# A reloaded folder runs the very same code on the very same weights: any difference beyond rounding is a bug.
VERIFY_ATOL = 1e-6


class AWDLSTMWeightsError(ValueError):
    """The file does not hold the fastai AWD-LSTM weights it should (or its vocabulary does not fit them)."""


@dataclass
class FastaiAWDLSTM:
    """A fastai AWD-LSTM checkpoint read and checked: what it is, its configuration and its weights under the names
    of the transformers model (``AWDLSTMForLanguageModeling`` or ``AWDLSTMForSequenceClassification``)."""

    kind: str  # LANGUAGE_MODEL or CLASSIFIER
    config_fields: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    source_format: str  # e.g. "fastai v2 Learner.save"
    notes: list[str] = field(default_factory=list)

    @property
    def model_class(self) -> type:
        return AWDLSTMForLanguageModeling if self.kind == LANGUAGE_MODEL else AWDLSTMForSequenceClassification


# --------------------------------------------------------------------------------------------------------------------
# Reading the file
# --------------------------------------------------------------------------------------------------------------------
def load_fastai_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """The model state dict in a fastai weight file, and a description of the container (``Learner.save`` or a plain
    state dict). Loads with ``weights_only=True``: a file that needs anything else to unpickle is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fastai weight file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise AWDLSTMWeightsError(
            f"{path} cannot be read with torch.load(weights_only=True), which is the only way it is read here: "
            f"{refused_pickle_reason(e)}. A pickle is code: nothing of this file was run, and it should not be loaded "
            f"any other way unless you made it. Save the weights with learn.save() or torch.save(model.state_dict())"
        ) from None
    except Exception as e:  # noqa: BLE001  torch.load of a text or corrupt file raises KeyError, IndexError, ...
        detail = " ".join(str(e).split())[:200]
        raise AWDLSTMWeightsError(
            f"{path} is not a readable torch file (truncated or not a torch file?): {type(e).__name__}: {detail}"
        ) from None
    container = "state dict"
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict) and not isinstance(obj.get("model"), torch.Tensor):
        obj, container = obj["model"], "Learner.save"
    if not isinstance(obj, dict) or not obj:
        raise AWDLSTMWeightsError(
            f"{path} holds a {type(obj).__name__}, not a state dict (or fastai's Learner.save {{'model': ...}})"
        )
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise AWDLSTMWeightsError(f"{path}: entries that are not named tensors: {', '.join(bad[:10])}")
    state = dict(obj)
    # nn.DataParallel's prefix, when every key has it
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state, container


# Indices of at most 4 digits: a key with a longer one (``0.rnns.99999999.weight_hh_l0_raw``) is only an unexpected
# key, never a layer count (which would size the expected keys, the model and the error message).
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_UNPICKLER_ERROR = re.compile(r"WeightsUnpickler error: ([^\n]*)")


def refused_pickle_reason(error: BaseException) -> str:
    """Why torch's weights-only unpickler refused a file, without torch's advice (its message suggests re-running
    with ``weights_only=False``, which runs whatever the file holds: never advice for an untrusted file): the
    global (class or function) the file refers to, or the unpickler's own reason."""
    text = str(error)
    if (match := _UNSUPPORTED_GLOBAL.search(text)) is not None:
        return f"it refers to {match.group(1)}, which is not a tensor or a plain container"
    if (match := _UNPICKLER_ERROR.search(text)) is not None:
        reason = match.group(1).split(". Please")[0].strip()
        return f"it holds objects other than tensors and plain containers ({reason[:200]})"
    return "it holds objects other than tensors and plain containers (e.g. a whole pickled Learner)"


_RNN_KEY = re.compile(r"^(?P<enc>0\.(?:module\.)?)rnns\.(?P<layer>\d{1,4})\.")
_HEAD_KEY = re.compile(r"^1\.layers\.(?P<block>\d{1,4})\.(?P<index>\d{1,4})\.(?P<name>\w+)$")
# Sizes read from a file are capped before anything is allocated from them. ULMFiT has 3 layers and a 2-block head;
# these bounds are far above any published AWD-LSTM and far below what would exhaust a machine's memory.
MAX_LAYERS = 64
MAX_HEAD_BLOCKS = 64
# How many keys an error lists of each kind (missing, unexpected, ...), and how much of each key's name.
SHOWN_KEYS = 8
SHOWN_KEY_CHARS = 120


def shown_key(key: Any) -> str:
    """A key as an error message shows it: quoted, and cut at ``SHOWN_KEY_CHARS`` characters (a hostile file's key
    may be megabytes long)."""
    text = str(key)
    return repr(text if len(text) <= SHOWN_KEY_CHARS else text[:SHOWN_KEY_CHARS] + f"... ({len(text)} characters)")


def _listed(items: list[str], what: str) -> list[str]:
    """``items`` as an error lists them: the first ``SHOWN_KEYS``, then how many more ``what`` there are."""
    return items[:SHOWN_KEYS] + ([f"... and {len(items) - SHOWN_KEYS} more {what}"] if len(items) > SHOWN_KEYS else [])


def _contiguous(indices: set[int], cap: int, path: Path, what: str) -> int:
    """How many of 0, 1, 2, ... are in ``indices`` without a gap (keys past a gap are then reported as unexpected);
    raises [`AWDLSTMWeightsError`] above ``cap``."""
    n = 0
    while n in indices:
        n += 1
        if n > cap:
            raise AWDLSTMWeightsError(f"{path}: more than {cap} {what}: not an AWD-LSTM this converter reads")
    return n


def _check_storage(path: Path, state: dict[str, torch.Tensor]) -> None:
    """Refuses tensors larger than the bytes the file stores for them: a view with a zero or overlapping stride
    (``torch.zeros(1).expand(10**6, 10**6)`` is saved as one number) would size the model, and copying it would
    allocate what its shape says. Views sharing a storage (fastai's tied embedding, decoder and ``encoder_dp``) are
    allowed up to 4 times the distinct bytes stored."""
    views, storages = 0, {}
    for key, tensor in state.items():
        if tensor.layout != torch.strided:
            raise AWDLSTMWeightsError(f"{path}: tensor {shown_key(key)} is {tensor.layout}, not a dense tensor")
        storage = tensor.untyped_storage()
        needed = tensor.numel() * tensor.element_size()
        if needed > storage.nbytes():
            raise AWDLSTMWeightsError(
                f"{path}: tensor {shown_key(key)} of shape {tuple(tensor.shape)} needs {needed} bytes but the file "
                f"stores {storage.nbytes()} for it (an expanded or overlapping view): refused"
            )
        views += needed
        storages[storage.data_ptr()] = storage.nbytes()
    if views > 4 * sum(storages.values()) + (1 << 20):
        raise AWDLSTMWeightsError(f"{path}: its tensors are views of {sum(storages.values())} stored bytes that "
                                  f"would take {views} bytes once copied: refused")


def read_fastai_awd_lstm(
    path: str | os.PathLike,
    vocab_size: int | None = None,
    bptt: int = 72,
    max_len: int | None = 72 * 20,
) -> FastaiAWDLSTM:
    """Reads and checks a fastai AWD-LSTM language model or classifier (see the module's description).

    Raises [`AWDLSTMWeightsError`] listing every missing, unexpected or mis-shaped key, and when ``vocab_size`` (the
    vocabulary's length) differs from the embedding's rows.
    """
    path = Path(path)
    state, container = load_fastai_state_dict(path)
    _check_storage(path, state)

    if any(k.startswith("0.module.") for k in state):
        kind, enc = CLASSIFIER, "0.module."
    elif any(k.startswith(("0.encoder", "0.rnns.")) for k in state) or "1.decoder.weight" in state:
        kind, enc = LANGUAGE_MODEL, "0."
    else:
        shown = ", ".join(map(shown_key, sorted(state)[:SHOWN_KEYS])) + (", ..." if len(state) > SHOWN_KEYS else "")
        raise AWDLSTMWeightsError(
            f"{path} is not a fastai AWD-LSTM: no '0.encoder.weight' (language model) or '0.module.encoder.weight' "
            f"(classifier) among its keys ({shown})"
        )

    def shape(key: str) -> tuple[int, ...] | None:
        return tuple(state[key].shape) if key in state else None

    # -- sizes, from the tensors that define them -------------------------------------------------------------
    emb_shape = shape(f"{enc}encoder.weight") or shape(f"{enc}encoder_dp.emb.weight")
    if emb_shape is None or len(emb_shape) != 2:
        raise AWDLSTMWeightsError(
            f"{path}: the embedding '{enc}encoder.weight' is "
            + ("missing" if emb_shape is None else f"of shape {emb_shape}, expected (vocab_size, emb_size)")
        )
    n_vocab, emb = emb_shape
    # the layers are 0, 1, ... up to the first gap: keys of any other layer are unexpected
    layer_ids = {int(m.group("layer")) for k in state if (m := _RNN_KEY.match(k)) and m.group("enc") == enc}
    n_layers = _contiguous(layer_ids, MAX_LAYERS, path, "LSTM layers")
    if not n_layers:
        raise AWDLSTMWeightsError(f"{path}: no LSTM layer ('{enc}rnns.0.weight_hh_l0_raw', ...) found")
    bidirectional = any(k.startswith(f"{enc}rnns.") and k.endswith("_reverse") for k in state)
    n_dir = 2 if bidirectional else 1
    hidden = emb
    if n_layers > 1:
        sources = [(f"{enc}rnns.0.weight_hh_l0_raw", 1, n_dir), (f"{enc}rnns.0.module.weight_hh_l0", 1, n_dir),
                   (f"{enc}rnns.1.module.weight_ih_l0", 1, 1)]
        for key, dim, factor in sources:
            s = shape(key)
            if s is not None and len(s) == 2:
                hidden = s[dim] * factor
                break
        else:
            raise AWDLSTMWeightsError(f"{path}: cannot tell the hidden size: '{sources[0][0]}' is missing")

    # -- every key with the shape the sizes imply ----------------------------------------------------------------
    expected: dict[str, tuple[int, ...]] = {f"{enc}encoder.weight": (n_vocab, emb)}
    optional: dict[str, tuple[int, ...]] = {f"{enc}encoder_dp.emb.weight": (n_vocab, emb)}
    mapping: dict[str, str] = {f"{enc}encoder.weight": "embeddings.weight"}  # fastai key -> model key (base)
    for layer in range(n_layers):
        n_in = emb if layer == 0 else hidden
        h = (emb if layer == n_layers - 1 else hidden) // n_dir
        base = f"{enc}rnns.{layer}."
        expected[base + "weight_hh_l0_raw"] = (4 * h, h)
        mapping[base + "weight_hh_l0_raw"] = f"layers.{layer}.weight_hh_l0"
        optional[base + "module.weight_hh_l0"] = (4 * h, h)  # fastai v1's copy of the (dropped) weight
        for suffix in ("", "_reverse") if bidirectional else ("",):
            for name, s in (("weight_ih_l0", (4 * h, n_in)), ("bias_ih_l0", (4 * h,)), ("bias_hh_l0", (4 * h,))):
                expected[f"{base}module.{name}{suffix}"] = s
                mapping[f"{base}module.{name}{suffix}"] = f"layers.{layer}.{name}{suffix}"
            if suffix:  # fastai's WeightDropout only wraps the forward direction's weight
                expected[f"{base}module.weight_hh_l0_reverse"] = (4 * h, h)
                mapping[f"{base}module.weight_hh_l0_reverse"] = f"layers.{layer}.weight_hh_l0_reverse"

    head_sizes: list[int] = []
    head_dropouts: list[bool] = []
    head_bias = False
    if kind == LANGUAGE_MODEL:
        expected["1.decoder.weight"] = (n_vocab, emb)
        optional["1.decoder.bias"] = (n_vocab,)
        mapping = {k: "awd_lstm." + v for k, v in mapping.items()}
        mapping["1.decoder.weight"] = "decoder.weight"
        mapping["1.decoder.bias"] = "decoder.bias"
    else:
        mapping = {k: "awd_lstm." + v for k, v in mapping.items()}
        head = _head_layout(path, state, 3 * emb)
        expected.update(head.expected)
        optional.update(head.optional)
        mapping.update(head.mapping)
        head_sizes, head_dropouts, head_bias = head.sizes, head.dropouts, head.bias

    missing, misshaped = [], []
    for key, want in expected.items():
        if key not in state:
            shown = tuple("n_out" if d == -1 else d for d in want)
            missing.append(f"missing key '{key}' (expected shape {shown})")
        elif shape(key) != want and -1 not in want:
            misshaped.append(f"key '{key}' has shape {shape(key)}, expected {want}")
    for key, want in optional.items():
        if key in state and shape(key) != want:
            misshaped.append(f"key '{key}' has shape {shape(key)}, expected {want}")
    unexpected = [f"unexpected key {shown_key(key)} (shape {shape(key)})"
                  for key in sorted(set(state) - set(expected) - set(optional))]
    problems = (_listed(missing, "missing keys") + _listed(misshaped, "mis-shaped keys")
                + _listed(unexpected, "unexpected keys"))
    if problems:
        what = "language model" if kind == LANGUAGE_MODEL else "classifier"
        raise AWDLSTMWeightsError(
            f"{path} does not hold the weights of a fastai AWD-LSTM {what} (embedding {n_vocab}×{emb}, hidden "
            f"{hidden}, {n_layers} layers{', bidirectional' if bidirectional else ''}):\n  - " + "\n  - ".join(problems)
        )
    present = list(expected) + [k for k in optional if k in state]
    # weights are real floating-point numbers (BatchNorm's batch counter an integer): an int, bool or complex tensor
    # is not what fastai saves, and copying it into the model would cast it silently
    wrong_type = [f"{k} ({state[k].dtype})" for k in present
                  if (state[k].is_floating_point() if k.endswith(".num_batches_tracked")
                      else not state[k].is_floating_point())]
    if wrong_type:
        raise AWDLSTMWeightsError(f"{path}: tensors of the wrong type (weights must be floating point, "
                                  f"num_batches_tracked an integer): {', '.join(_listed(wrong_type, 'tensors'))}")
    bad = non_finite({k: state[k] for k in present})
    if bad:
        raise AWDLSTMWeightsError(f"{path}: tensors with NaN or infinite values: {', '.join(_listed(bad, 'tensors'))}")
    alias = f"{enc}encoder_dp.emb.weight"
    if alias in state and not torch.equal(state[alias], state[f"{enc}encoder.weight"]):
        raise AWDLSTMWeightsError(
            f"{path}: '{alias}' differs from '{enc}encoder.weight' (in fastai they are the same tensor)"
        )
    if vocab_size is not None and vocab_size != n_vocab:
        raise AWDLSTMWeightsError(
            f"the vocabulary has {vocab_size} tokens but the embedding '{enc}encoder.weight' of {path} has {n_vocab} "
            f"rows (shape {(n_vocab, emb)}): give the vocabulary (itos) the model was trained with"
        )

    notes = []
    version = "v1" if head_bias or any(k.endswith(".module.weight_hh_l0") for k in state) else "v2"
    fields: dict[str, Any] = dict(vocab_size=n_vocab, emb_size=emb, hidden_size=hidden, num_layers=n_layers,
                                  bidirectional=bidirectional, bptt=bptt, max_len=max_len)
    if kind == LANGUAGE_MODEL:
        tied = torch.equal(state["1.decoder.weight"], state[f"{enc}encoder.weight"])
        fields.update(AWDLSTMConfig.dropout_defaults("language-modeling"), tie_weights=tied,
                      out_bias="1.decoder.bias" in state)
        if not tied:
            notes.append("the decoder is not tied to the embedding")
    else:
        fields.update(AWDLSTMConfig.dropout_defaults("classification"))
        fields["num_labels"] = head_sizes[-1]
        fields["classifier_hidden_sizes"] = head_sizes[:-1]
        fields["classifier_bias"] = head_bias
        if not all(head_dropouts):  # fastai leaves out the Dropout of a block whose p is 0
            defaults = AWDLSTMConfig(**fields).head_dropouts
            fields["classifier_dropouts"] = [p if kept else 0.0 for p, kept in zip(defaults, head_dropouts)]
    present = [k for k in present if k in mapping]
    sd = {mapping[k]: state[k].detach().clone().float() if state[k].is_floating_point() else state[k].clone()
          for k in present}
    return FastaiAWDLSTM(kind=kind, config_fields=fields, state_dict=sd,
                         source_format=f"fastai {version} {container}", notes=notes)


@dataclass
class _Head:
    expected: dict[str, tuple[int, ...]]
    optional: dict[str, tuple[int, ...]]
    mapping: dict[str, str]
    sizes: list[int]
    dropouts: list[bool]
    bias: bool


_HEAD_V1_KEY = re.compile(r"^1\.layers\.(?P<index>\d{1,4})\.(?P<name>\w+)$")


def _head_layout(path: Path, state: dict[str, torch.Tensor], n_in: int) -> _Head:
    """The classifier head's keys and shapes, its sizes, and which blocks have a dropout, read from the file.

    fastai 2 nests one ``LinBnDrop`` per block: ``1.layers.{k}.{0: BatchNorm1d, 1: Dropout, 2: Linear (no bias)}``
    (the Linear at 1 when p = 0). fastai 1 chains its ``bn_drop_lin`` blocks in one flat ``Sequential``:
    ``1.layers.{i}`` = BatchNorm1d, Dropout (when p > 0), Linear (with a bias), ReLU (not after the last)."""
    expected: dict[str, tuple[int, ...]] = {}
    optional: dict[str, tuple[int, ...]] = {}
    mapping: dict[str, str] = {}
    sizes: list[int] = []
    dropouts: list[bool] = []

    def shape(key: str) -> tuple[int, ...] | None:
        return tuple(state[key].shape) if key in state else None

    def batch_norm(prefix: str, block: int, n: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            expected[prefix + name] = (n,)
            mapping[prefix + name] = f"classifier.layers.{block}.batch_norm.{name}"
        optional[prefix + "num_batches_tracked"] = ()
        mapping[prefix + "num_batches_tracked"] = f"classifier.layers.{block}.batch_norm.num_batches_tracked"

    def linear(key: str, block: int, n: int) -> int | None:
        s = shape(key)
        n_out = s[0] if s is not None and len(s) == 2 else None
        expected[key] = (n_out if n_out is not None else -1, n)
        mapping[key] = f"classifier.layers.{block}.linear.weight"
        return n_out

    nested = sorted({int(m.group("block")) for k in state if (m := _HEAD_KEY.match(k))})
    flat = sorted({int(m.group("index")) for k in state if (m := _HEAD_V1_KEY.match(k))})
    if nested:
        for block in range(_contiguous(set(nested), MAX_HEAD_BLOCKS, path, "classifier head blocks")):
            pre = f"1.layers.{block}."
            batch_norm(pre + "0.", block, n_in)
            # the Linear is at index 2 after a Dropout, at 1 when fastai left the dropout out (p = 0)
            index = 1 if f"{pre}1.weight" in state and f"{pre}2.weight" not in state else 2
            dropouts.append(index == 2)
            n_out = linear(f"{pre}{index}.weight", block, n_in)
            if n_out is None:
                break
            sizes.append(n_out)
            n_in = n_out
        return _Head(expected, optional, mapping, sizes, dropouts, bias=False)
    if flat:
        # fastai 1: BatchNorm1d modules hold running statistics, Linear modules a 2-d weight; the rest hold nothing
        kinds = {}
        for i in flat:
            if f"1.layers.{i}.running_mean" in state:
                kinds[i] = "bn"
            elif (s := shape(f"1.layers.{i}.weight")) is not None and len(s) == 2:
                kinds[i] = "linear"
        order = sorted(kinds)
        block, i = 0, 0
        while i < len(order):
            bn = order[i]
            if kinds[bn] != "bn":
                break  # reported below: its keys are unexpected
            batch_norm(f"1.layers.{bn}.", block, n_in)
            lin = order[i + 1] if i + 1 < len(order) and kinds[order[i + 1]] == "linear" else bn + 2
            dropouts.append(lin - bn == 2)
            n_out = linear(f"1.layers.{lin}.weight", block, n_in)
            if n_out is None:
                break
            expected[f"1.layers.{lin}.bias"] = (n_out,)
            mapping[f"1.layers.{lin}.bias"] = f"classifier.layers.{block}.linear.bias"
            sizes.append(n_out)
            n_in, block, i = n_out, block + 1, i + 2
        if sizes:
            return _Head(expected, optional, mapping, sizes, dropouts, bias=True)
    raise AWDLSTMWeightsError(f"{path}: a classifier without its head: no '1.layers.0.0.weight' (BatchNorm1d) / "
                              "'1.layers.0.2.weight' (Linear) keys (fastai 2), nor '1.layers.0.running_mean' / "
                              "'1.layers.2.weight' (fastai 1)")


def load_awd_lstm_weights(model: torch.nn.Module, checkpoint: FastaiAWDLSTM) -> None:
    """Copies a checked checkpoint into ``model`` (of ``checkpoint.model_class``), every parameter and buffer."""
    own = model.state_dict()
    # BatchNorm's batch counter is only used with momentum=None; files from before torch 0.4.1 do not have it
    missing = sorted(k for k in set(own) - set(checkpoint.state_dict) if not k.endswith(".num_batches_tracked"))
    if missing:  # a bug (the checks above decide what the model needs), not a problem with the file
        raise ConversionError(f"the converted weights do not cover the model: {missing}")
    with torch.no_grad():
        for name, value in checkpoint.state_dict.items():
            own[name].copy_(value.to(own[name].dtype))


# --------------------------------------------------------------------------------------------------------------------
# Conversion to a save_pretrained folder
# --------------------------------------------------------------------------------------------------------------------
def convert_fastai_awd_lstm(
    weights: str | os.PathLike,
    vocab: str | os.PathLike,
    output_dir: str | os.PathLike,
    bptt: int = 72,
    max_len: int | None = 72 * 20,
    push_to_hub: str | None = None,
    private: bool = False,
    revision: str | None = None,
    model_name: str | None = None,
    base_model: str | None = None,
    license: str = "apache-2.0",
    language: str = "en",
    labels: Sequence[str] | None = None,
    backwards: bool = False,
    spm_model: str | os.PathLike | None = None,
) -> Path:
    """Converts a fastai AWD-LSTM (language model or classifier, v1 or v2) and its vocabulary (fastai's ``itos``:
    a pickle, or a JSON list) into a ``save_pretrained`` folder.

    The folder holds ``config.json`` (with an ``auto_map`` for every Auto class), ``model.safetensors``, the
    tokenizer (``vocab.json``), the model's code (so it loads with ``trust_remote_code=True`` where hf_elmo is not
    installed) and a model card ``README.md``. The saved folder is reloaded with the Auto classes and checked to give
    the converted model's outputs before it is pushed to ``push_to_hub`` (a repository id) when one is given.

    Args:
        bptt, max_len: the classifier's reading of long documents (fastai's ``seq_len`` and ``max_len``); they are
            not in the weight file: give the values the classifier was trained with (fastai's defaults otherwise).
        base_model: for a classifier, the Hub id of the language model it was fine-tuned from (card metadata).
        labels: for a classifier, the names of its classes in the order of the head's outputs (``id2label`` and
            ``label2id``; one per output); default: transformers' ``LABEL_0``, ``LABEL_1``, ...
        backwards: the model was trained on reversed documents (fastai's ``backwards=True``): the folder's config
            says so and its tokenizer reverses each document (``xxbos`` last), as fastai fed it.
        spm_model: the ``spm.model`` of a model trained with fastai's ``SentencePieceTokenizer`` (MultiFiT, the
            community ULMFiT models): the folder's tokenizer runs fastai's rules, then that SentencePiece model, and
            numericalises the pieces with ``vocab`` (fastai's ids, not SentencePiece's); ``bos_token_id`` is then
            ``▁xxbos``'s, the piece every document starts with.

    Raises:
        FileNotFoundError: an input file is missing.
        AWDLSTMWeightsError: the weight file is not a (complete) fastai AWD-LSTM, or the vocabulary does not fit it.
        ValueError: bad arguments or a non-empty ``output_dir``.
        ConversionError: the reloaded folder does not reproduce the model.
    """
    weights, vocab, output_dir = Path(weights), Path(vocab), Path(output_dir)
    if revision and not push_to_hub:
        raise ValueError("a revision (branch) only applies when pushing: give push_to_hub too")
    spm_model = None if spm_model is None else Path(spm_model)
    for path, what in ((weights, "weight"), (vocab, "vocabulary"), (spm_model, "SentencePiece model")):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"fastai {what} file not found: {path}")
    check_output_dir(output_dir)

    register()
    itos = read_vocabulary(vocab)
    check_special_tokens(vocab, itos)
    checkpoint = read_fastai_awd_lstm(weights, vocab_size=len(itos), bptt=bptt, max_len=max_len)
    if base_model and checkpoint.kind != CLASSIFIER:
        raise ValueError("base_model names the language model a classifier was fine-tuned from: this file holds a "
                         "language model")
    tokenizer = AWDLSTMTokenizer(itos=itos, backwards=bool(backwards), spm_file=spm_model)
    specials = {name: itos.index(tok) if tok in itos else None
                for name, tok in (("pad_token_id", "xxpad"), ("eos_token_id", "xxeos"))}
    specials["bos_token_id"] = tokenizer.document_start_id
    config_fields = {**checkpoint.config_fields, **specials, **label_fields(checkpoint, labels),
                     "backwards": bool(backwards)}
    config = AWDLSTMConfig(**config_fields)
    model = seeded_model(checkpoint.model_class, config)
    load_awd_lstm_weights(model, checkpoint)
    model.eval()
    # written into a hidden sibling, renamed to output_dir once complete: a failure or an interruption leaves
    # nothing at output_dir
    with staged_output(output_dir) as work:
        save_folder(model, tokenizer, work)

        max_diff = verify_saved_folder(model, tokenizer, work)
        source = {
            "weights": weights.name,
            "weights_sha256": file_sha256(weights),
            "vocab": vocab.name,
            "vocab_format": vocabulary_format(vocab),
            "format": checkpoint.source_format,
            **({"spm_model": spm_model.name} if spm_model is not None else {}),
        }
        card = render_awd_lstm_card(
            config,
            push_to_hub or str(output_dir),
            source,
            checkpoint.kind,
            model_name=model_name,
            revision=revision,
            num_parameters=sum(p.numel() for p in model.parameters()),
            verified_max_abs_diff=max_diff,
            base_model=base_model,
            license=license,
            language=language,
            notes=checkpoint.notes,
            sentencepiece=spm_model is not None,
        )
        card.save(work / "README.md")

    if push_to_hub:
        what = "language model" if checkpoint.kind == LANGUAGE_MODEL else "classifier"
        url = push_folder(output_dir, push_to_hub, private=private, revision=revision,
                          commit_message=f"Add the AWD-LSTM {what} converted from {weights.name} with hf-elmo")
        logger.info("Pushed to %s", url)
    return output_dir


def vocabulary_format(vocab: str | os.PathLike) -> str:
    """How `read_vocabulary` reads ``vocab``: "json" for a ``.json`` file, else "pickle"."""
    return "json" if Path(vocab).suffix.lower() == ".json" else "pickle"


def read_vocabulary(vocab: str | os.PathLike) -> list[str]:
    """fastai's ``itos`` from ``vocab``: a JSON list (``.json``, e.g. a tokenizer folder's ``vocab.json``) or a
    pickle (``vocab.pkl``/``itos.pkl``, read without running it)."""
    if vocabulary_format(vocab) == "json":
        return AWDLSTMTokenizer._read_vocab(vocab)
    return read_itos_pickle(vocab)


# fastai's special tokens that its text processing writes into every text (xxbos first, xxmaj before a capital, ...)
# or that numericalising and padding need (xxunk, xxpad): a vocabulary without them gives those tokens ids past the
# embedding. xxeos and xxfld are written only by callers who ask for them.
NEEDED_SPECIAL_TOKENS = (UNK, PAD, BOS, TK_MAJ, TK_UP, TK_REP, TK_WREP)


def check_special_tokens(vocab: str | os.PathLike, itos: Sequence[str]) -> None:
    """Raises ValueError naming the ``NEEDED_SPECIAL_TOKENS`` the vocabulary ``itos`` (read from ``vocab``) lacks."""
    present = set(itos)
    missing = [t for t in NEEDED_SPECIAL_TOKENS if t not in present]
    if missing:
        raise ValueError(f"{vocab} lacks fastai's special tokens {', '.join(missing)}: every fastai vocabulary holds "
                         "them (its text processing writes them into the texts), so this is not the vocabulary the "
                         "model was trained with")


def label_fields(checkpoint: Any, labels: Sequence[str] | None) -> dict[str, Any]:
    """``id2label``/``label2id`` for ``labels`` (the classes of the classifier ``checkpoint``, in the order of its
    head's outputs); none without labels. Raises ValueError when they do not name each output once."""
    if labels is None:
        return {}
    labels = [str(label).strip() for label in labels]
    if checkpoint.kind != CLASSIFIER:
        raise ValueError("labels name a classifier's classes: this file holds a language model")
    outputs = checkpoint.config_fields["num_labels"]
    if len(labels) != outputs:
        raise ValueError(f"{len(labels)} labels given ({', '.join(labels)}), but the classifier's head has {outputs} "
                         f"outputs: give {outputs} names, in the order of the head's outputs")
    if len(set(labels)) != len(labels) or not all(labels):
        raise ValueError(f"labels must be {outputs} distinct non-empty names, got {', '.join(map(repr, labels))}")
    return {"id2label": dict(enumerate(labels)), "label2id": {label: i for i, label in enumerate(labels)}}


def verify_saved_folder(model: torch.nn.Module, tokenizer: AWDLSTMTokenizer, folder: str | os.PathLike) -> float:
    """Reloads ``folder`` as users will (Auto classes, remote code allowed) and checks that it gives ``model``'s
    outputs on ``VERIFY_TEXTS``: the tokenizer's ids, the encoder's output and the head's logits (for a language
    model also a second, stateful call). Returns the largest absolute difference; raises [`ConversionError`] above
    ``VERIFY_ATOL``."""
    auto_head = AutoModelForCausalLM if isinstance(model, AWDLSTMForLanguageModeling) else \
        AutoModelForSequenceClassification
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the encoder read alone reports the head's keys as unused
    try:
        loaded_tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        head = auto_head.from_pretrained(folder, trust_remote_code=True).eval()
        base = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    finally:
        transformers.logging.set_verbosity(verbosity)

    enc = tokenizer(VERIFY_TEXTS, padding=True, return_tensors="pt")
    got_enc = loaded_tokenizer(VERIFY_TEXTS, padding=True, return_tensors="pt")
    for key in ("input_ids", "attention_mask"):
        if not torch.equal(enc[key], got_enc[key]):
            raise ConversionError(f"{folder}: the reloaded tokenizer gives other {key} than the converted one")
    inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    with torch.no_grad():
        pairs = [("AutoModel", "last_hidden_state", base(**inputs).last_hidden_state,
                  model.awd_lstm(**inputs).last_hidden_state)]
        name = auto_head.__name__
        if isinstance(model, AWDLSTMForLanguageModeling):
            got1, want1 = head(**inputs, use_cache=True), model(**inputs, use_cache=True)
            pairs.append((name, "logits", got1.logits, want1.logits))
            nxt = enc["input_ids"][:, :4]
            pairs.append((name, "logits (stateful call)", head(nxt, state=got1.state).logits,
                          model(nxt, state=want1.state).logits))
        else:
            pairs.append((name, "logits", head(**inputs).logits, model(**inputs).logits))
    # NaN-aware: a NaN anywhere fails the check (and would be the result)
    return nan_max([check_close(f"{folder} reloaded with {auto_name}", what, g, w, VERIFY_ATOL)
                    for auto_name, what, g, w in pairs])
