"""Converts an ELMoForManyLangs model (Che et al., 2018; the ``elmoformanylangs`` package's folders: 44 languages)
into a ``save_pretrained`` folder of the same [`ElmoModel`] that bilm-tf checkpoints convert to, and gives
``Embedder.sents2elmo``'s arrays from it (``sents2elmo``, ``select_output_layer``).

The model folder ``Embedder(model_dir)`` reads: ``config.json`` (the training options; only ``config_path``, the
architecture file, is read: ``model_dir/config_path``, else ``model_dir/<its basename>``, as ``Embedder.get_model``
tries), the architecture json (``encoder``: ``elmo``; ``token_embedder``: ``cnn``), ``char.dic`` and ``word.dic``
(``token<TAB>id``), ``token_embedder.pkl`` and ``encoder.pkl`` (state dicts, read with ``torch.load(...,
weights_only=True)``). Every tensor is checked against the shapes the architecture and lexicons imply before
anything is built; a missing file, a missing or unexpected key, a shape mismatch or a non-finite tensor fails with
one line naming the file.

The original's math maps onto ElmoModel's parameters where it is the same math in another layout:

* gates: the original splits ``input_linearity(x) + state_linearity(h)`` as input, forget, candidate, output;
  ElmoModel (TensorFlow's order) as input, candidate, forget, output, and adds a forget bias of 1 at run time:
  the blocks are reordered and 1 is taken off the forget block's bias;
* highway: the original computes ``g·x + (1 − g)·relu(A)``, ElmoModel ``g'·relu(A) + (1 − g')·x``; with
  ``g' = σ(−z) = 1 − σ(z)`` they are the same, so the gate half of each highway layer is negated;
* the word embedding (``word_dim``) is ElmoConfig's ``word_embedding_dim``, concatenated before the character CNN's
  output as in the original, and the character ids are the lexicon's (``char_vocabulary="lexicon"``, the padding
  row trained, ``char_padding_id`` = ``<pad>``). Clips and the skip connection of layer 2 are ElmoConfig's.

The converted model is stateless (every call starts from zero states, as the original's first call on a fresh
``Embedder``; the original carries its states from call to call, see the fixture's README).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..auto import register
from ..cards import render_elmo_card
from ..hub import push_folder
from ..models.elmo.configuration_elmo import ElmoConfig
from ..models.elmo.modeling_elmo import ElmoModel
from ..models.elmo.tokenization_elmoformanylangs import (CHAR_SPECIALS, WORD_SPECIALS, ElmoForManyLangsTokenizer,
                                                         read_lexicon)
from .allennlp_elmo import copy_elmo_state, verify_saved_folder
from .common import check_finite, check_output_dir, file_sha256, save_folder, seeded_model, staged_output
from .fastai_awd_lstm import refused_pickle_reason

logger = logging.getLogger(__name__)

FILES = ("config.json", "char.dic", "word.dic", "token_embedder.pkl", "encoder.pkl")
# The original architecture file is kept in the converted folder under this name, for provenance.
ARCHITECTURE_COPY = "elmoformanylangs_config.json"
# sents2elmo's output_layer: -1 the average of the layers, -2 all of them, otherwise one layer (Python indexing)
AVERAGE, ALL = -1, -2


class ElmoForManyLangsError(ValueError):
    """The model folder does not hold the ELMoForManyLangs model its files describe."""


# --------------------------------------------------------------------------------------------------------------------
# Reading the model folder
# --------------------------------------------------------------------------------------------------------------------
def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"ELMoForManyLangs {what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except UnicodeDecodeError as e:
        raise ElmoForManyLangsError(f"{path} is not UTF-8 text: {e}") from None
    except (ValueError, RecursionError) as e:
        raise ElmoForManyLangsError(f"{path} is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(value, dict):
        raise ElmoForManyLangsError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def architecture_path(model_dir: Path) -> Path:
    """The architecture file ``config.json``'s ``config_path`` names, found as ``Embedder.get_model`` finds it:
    ``model_dir/config_path`` (the path itself when absolute), else ``model_dir/<basename>``. (The original's third
    place, the package's own ``configs/`` folder, is not searched: copy the file into the model folder.)"""
    options = model_dir / "config.json"
    config_path = _read_json(options, "training options").get("config_path")
    if not isinstance(config_path, str) or not config_path:
        raise ElmoForManyLangsError(f"{options}: 'config_path' (the architecture file) must be a file name, got "
                                    f"{config_path!r}")
    tried = [model_dir / config_path, model_dir / os.path.basename(config_path)]
    for path in tried:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{options}: the architecture file of config_path {config_path!r} is not found (tried "
                            f"{', '.join(str(p) for p in dict.fromkeys(tried))})")


def _need(section: Any, key: str, where: str, source: Path) -> Any:
    if not isinstance(section, dict) or key not in section:
        raise ElmoForManyLangsError(f"{source}: missing '{where}{key}'")
    return section[key]


def config_from_architecture(arch: dict, source: Path, char_lexicon: dict[str, int],
                             word_lexicon: dict[str, int] | None) -> ElmoConfig:
    """The ElmoConfig of an architecture json (``encoder``, ``token_embedder``) and the lexicons' sizes."""
    encoder = _need(arch, "encoder", "", source)
    embedder = _need(arch, "token_embedder", "", source)
    for section, key, want in ((encoder, "name", "elmo"), (embedder, "name", "cnn")):
        where = "encoder." if section is encoder else "token_embedder."
        name = _need(section, key, where, source)
        if str(name).lower() != want:
            raise ElmoForManyLangsError(f"{source}: '{where}{key}' is {name!r}; only {want!r} models convert (the "
                                        "published ELMoForManyLangs models)")
    if not _need(embedder, "char_dim", "token_embedder.", source):
        raise ElmoForManyLangsError(f"{source}: 'token_embedder.char_dim' is 0: a model without characters does "
                                    "not convert")
    word_dim = embedder.get("word_dim", 0) or 0
    fields = dict(
        char_cnn_filters=_need(embedder, "filters", "token_embedder.", source),
        n_highway=_need(embedder, "n_highway", "token_embedder.", source),
        char_embedding_dim=embedder["char_dim"],
        activation=_need(embedder, "activation", "token_embedder.", source),
        max_characters_per_token=_need(embedder, "max_characters_per_token", "token_embedder.", source),
        lstm_dim=_need(encoder, "dim", "encoder.", source),
        projection_dim=_need(encoder, "projection_dim", "encoder.", source),
        n_layers=_need(encoder, "n_layers", "encoder.", source),
        cell_clip=encoder.get("cell_clip"),
        proj_clip=encoder.get("proj_clip"),
        use_skip_connections=True,  # ElmobiLm adds each layer's input to its output from the second layer on
        char_vocabulary="lexicon",
        n_characters=len(char_lexicon),
        char_padding_id=char_lexicon["<pad>"],
        word_embedding_dim=word_dim,
        word_vocab_size=len(word_lexicon) if word_dim and word_lexicon else 0,
        word_padding_id=word_lexicon["<pad>"] if word_dim and word_lexicon else None,
    )
    try:
        return ElmoConfig(**fields)
    except (TypeError, ValueError) as e:
        raise ElmoForManyLangsError(f"{source}: unsupported architecture: {e}") from None


def expected_tensors(config: ElmoConfig) -> dict[str, dict[str, tuple[int, ...]]]:
    """file → key → shape of every tensor of ``token_embedder.pkl`` and ``encoder.pkl`` for ``config``."""
    emb, f, p, h = config.char_embedding_dim, config.n_filters, config.projection_dim, config.lstm_dim
    embedder: dict[str, tuple[int, ...]] = {"char_emb_layer.embedding.weight": (config.n_characters, emb)}
    if config.word_embedding_dim:
        embedder["word_emb_layer.embedding.weight"] = (config.word_vocab_size, config.word_embedding_dim)
    for i, (width, n) in enumerate(config.char_cnn_filters):
        embedder[f"convolutions.{i}.weight"] = (n, emb, width)
        embedder[f"convolutions.{i}.bias"] = (n,)
    for k in range(config.n_highway):
        embedder[f"highways._layers.{k}.weight"] = (2 * f, f)
        embedder[f"highways._layers.{k}.bias"] = (2 * f,)
    embedder["projection.weight"] = (p, config.token_input_dim)
    embedder["projection.bias"] = (p,)
    encoder: dict[str, tuple[int, ...]] = {}
    for direction in ("forward", "backward"):
        for layer in range(config.n_layers):
            prefix = f"{direction}_layer_{layer}"
            encoder[f"{prefix}.input_linearity.weight"] = (4 * h, p)
            encoder[f"{prefix}.state_linearity.weight"] = (4 * h, p)
            encoder[f"{prefix}.state_linearity.bias"] = (4 * h,)
            encoder[f"{prefix}.state_projection.weight"] = (p, h)
    return {"token_embedder.pkl": embedder, "encoder.pkl": encoder}


def load_state_dict_file(path: Path, expected: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """A ``.pkl`` state dict (``torch.load(weights_only=True)``) checked against ``expected`` (key → shape): one
    line naming the file and every missing, unexpected or mis-shaped key, or the tensors that are not finite."""
    if not path.is_file():
        raise FileNotFoundError(f"ELMoForManyLangs weight file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ElmoForManyLangsError(f"{path} cannot be read with torch.load(weights_only=True), the only way it is "
                                    f"read here: {refused_pickle_reason(e)}") from None
    except Exception as e:  # noqa: BLE001  torch.load of a text or corrupt file raises KeyError, IndexError, ...
        detail = " ".join(str(e).split())[:200]
        raise ElmoForManyLangsError(f"{path} is not a readable torch file (truncated?): {type(e).__name__}: "
                                    f"{detail}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ElmoForManyLangsError(f"{path}: expected a state dict (key → tensor), got {type(state).__name__}")
    problems = [f"missing key '{k}' (expected shape {shape})" for k, shape in expected.items() if k not in state]
    for key, value in state.items():
        if key not in expected:
            problems.append(f"unexpected key '{key}'")
        elif not isinstance(value, torch.Tensor) or not value.is_floating_point():
            problems.append(f"'{key}' is not a floating-point tensor")
        elif tuple(value.shape) != expected[key]:
            problems.append(f"'{key}' has shape {tuple(value.shape)}, the architecture and lexicons say "
                            f"{expected[key]}")
    if problems:
        shown = "; ".join(problems[:8]) + (f"; ... ({len(problems)} problems in all)" if len(problems) > 8 else "")
        raise ElmoForManyLangsError(f"{path} does not match the model's architecture: {shown}")
    check_finite(state, str(path))
    return {k: v.float() for k, v in state.items()}


def _gates_reordered(weight: torch.Tensor) -> torch.Tensor:
    """The original's gate blocks (input, forget, candidate, output) in ElmoModel's order (input, candidate,
    forget, output), along the first axis."""
    i, f, g, o = weight.chunk(4, dim=0)
    return torch.cat([i, g, f, o])


def to_state_dict(embedder: dict[str, torch.Tensor], encoder: dict[str, torch.Tensor],
                  config: ElmoConfig) -> dict[str, torch.Tensor]:
    """The original tensors on ElmoModel's parameter names and layouts (see the module's docstring)."""
    from ..models.elmo.modeling_elmo import ElmoLstmLayer

    sd = {"char_encoder.char_embedding.weight": embedder["char_emb_layer.embedding.weight"]}
    if config.word_embedding_dim:
        sd["char_encoder.word_embedding.weight"] = embedder["word_emb_layer.embedding.weight"]
    for i in range(len(config.char_cnn_filters)):
        for part in ("weight", "bias"):
            sd[f"char_encoder.convolutions.{i}.{part}"] = embedder[f"convolutions.{i}.{part}"]
    n = config.n_filters
    for k in range(config.n_highway):
        for part in ("weight", "bias"):
            value = embedder[f"highways._layers.{k}.{part}"].clone()
            value[n:] = -value[n:]  # the gate: σ(−z) = 1 − σ(z), the carry and transform weights swapped
            sd[f"char_encoder.highways.{k}.{part}"] = value
    for part in ("weight", "bias"):
        sd[f"char_encoder.projection.{part}"] = embedder[f"projection.{part}"]
    h = config.lstm_dim
    for layer in range(config.n_layers):
        parts: dict[str, list[torch.Tensor]] = {"weight_ih": [], "weight_hh": [], "bias": [], "weight_proj": []}
        for direction in ("forward", "backward"):
            prefix = f"{direction}_layer_{layer}"
            parts["weight_ih"].append(_gates_reordered(encoder[f"{prefix}.input_linearity.weight"]))
            parts["weight_hh"].append(_gates_reordered(encoder[f"{prefix}.state_linearity.weight"]))
            bias = _gates_reordered(encoder[f"{prefix}.state_linearity.bias"]).clone()
            bias[2 * h : 3 * h] -= ElmoLstmLayer.FORGET_BIAS  # added back at run time
            parts["bias"].append(bias)
            parts["weight_proj"].append(encoder[f"{prefix}.state_projection.weight"])
        for name, values in parts.items():
            sd[f"bilm.layers.{layer}.{name}"] = torch.stack(values).contiguous()
    return sd


def read_model_dir(model_dir: str | os.PathLike) -> tuple[ElmoConfig, dict[str, torch.Tensor], Path]:
    """The config, ElmoModel's state dict and the architecture file of an ELMoForManyLangs model folder."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"ELMoForManyLangs model folder not found: {model_dir}")
    arch_path = architecture_path(model_dir)
    arch = _read_json(arch_path, "architecture file")
    char_lexicon = read_lexicon(model_dir / "char.dic", CHAR_SPECIALS)
    word_dim = _need(arch, "token_embedder", "", arch_path).get("word_dim", 0) or 0
    word_lexicon = read_lexicon(model_dir / "word.dic", WORD_SPECIALS) if word_dim else None
    config = config_from_architecture(arch, arch_path, char_lexicon, word_lexicon)
    if not config.has_token_projection:
        raise ElmoForManyLangsError(f"{arch_path}: a model without a word embedding whose CNN width equals "
                                    "projection_dim is not supported")
    for lexicon, name in ((char_lexicon, "char.dic"), (word_lexicon, "word.dic")):
        if lexicon and max(lexicon.values()) >= len(lexicon):
            raise ElmoForManyLangsError(f"{model_dir / name}: id {max(lexicon.values())} is beyond its "
                                        f"{len(lexicon)} entries (the embedding has one row per entry)")
    expected = expected_tensors(config)
    states = {name: load_state_dict_file(model_dir / name, shapes) for name, shapes in expected.items()}
    return config, to_state_dict(states["token_embedder.pkl"], states["encoder.pkl"], config), arch_path


# --------------------------------------------------------------------------------------------------------------------
# sents2elmo's outputs
# --------------------------------------------------------------------------------------------------------------------
def select_output_layer(layers: np.ndarray, output_layer: int = AVERAGE) -> np.ndarray:
    """One sentence's layers (n_layers + 1, words, 2·projection_dim) → what ``sents2elmo(output_layer=...)`` gives:
    -1 their average, -2 all of them, otherwise ``layers[output_layer]`` (so -3 is layer 0 and 3 is out of range).
    An empty sentence gives an empty array for every ``output_layer`` (the original's -1 raises
    ZeroDivisionError there)."""
    if output_layer == AVERAGE:
        return layers.mean(axis=0)
    if output_layer == ALL:
        return layers
    if not -layers.shape[0] <= output_layer < layers.shape[0]:
        raise IndexError(f"output_layer {output_layer} is out of range: the model has {layers.shape[0]} layers "
                         "(-1: their average, -2: all)")
    return layers[output_layer]


def sentence_layers(hidden_states: Sequence[torch.Tensor], encoding: Any) -> list[np.ndarray]:
    """Every sentence's layers (n_layers + 1, words, 2·projection_dim) as float32 arrays, from a model output's
    ``hidden_states`` and the tokenizer's ``encoding``: the ``<bos>``/``<eos>`` and padding positions dropped, as
    ``sents2elmo`` drops them."""
    stacked = torch.stack(tuple(hidden_states)).detach().float().cpu().numpy()
    out = []
    for row in range(stacked.shape[1]):
        positions = [p for p, w in enumerate(encoding.word_ids(row)) if w is not None]
        out.append(stacked[:, row, positions])
    return out


@torch.no_grad()
def sents2elmo(model: ElmoModel, tokenizer: Any, sentences: Sequence[Sequence[str]], output_layer: int = AVERAGE,
               batch_size: int = 64) -> list[np.ndarray]:
    """``Embedder.sents2elmo(sentences, output_layer)`` of a converted model: one float32 array per sentence (a
    list of words), (words, 2·projection_dim), or (n_layers + 1, words, 2·projection_dim) for ``output_layer=-2``.
    Stateless: the results do not depend on the batching or on earlier calls (the original's first call on a fresh
    ``Embedder`` with every sentence in one batch)."""
    device = next(model.parameters()).device
    results: list[np.ndarray] = []
    for start in range(0, len(sentences), batch_size):
        batch = [list(s) for s in sentences[start : start + batch_size]]
        enc = tokenizer(batch, is_split_into_words=True, padding=True, return_tensors="pt")
        out = model(**{k: v.to(device) for k, v in enc.items()}, output_hidden_states=True)
        results += [select_output_layer(layers, output_layer) for layers in sentence_layers(out.hidden_states, enc)]
    return results


# --------------------------------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------------------------------
def convert_elmoformanylangs(
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    push_to_hub: str | None = None,
    private: bool = False,
    revision: str | None = None,
    model_name: str | None = None,
    language: str | None = None,
) -> Path:
    """Converts an ELMoForManyLangs model folder into a ``save_pretrained`` folder: ``config.json`` (an ElmoModel
    with a word embedding and the lexicon's characters), ``model.safetensors``, the tokenizer
    ([`ElmoForManyLangsTokenizer`] with the folder's ``word.dic``/``char.dic``), the model's code (remote code),
    the original architecture file (``elmoformanylangs_config.json``) and a model card (``language``: the model's
    language, e.g. ``zh``, for the card when known). The saved folder is reloaded and checked to give the converted
    model's outputs before it is pushed to ``push_to_hub`` (a repository id) when one is given.

    Raises:
        FileNotFoundError: the folder or one of its files is missing.
        LexiconError, ElmoForManyLangsError: a file does not hold what the model needs (one line naming it).
        ValueError: bad arguments, or a non-empty ``output_dir``.
        ConversionError: the reloaded folder does not reproduce the model.
    """
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    if revision and not push_to_hub:
        raise ValueError("a revision (branch) only applies when pushing: give push_to_hub too")
    check_output_dir(output_dir)
    config, state, arch_path = read_model_dir(model_dir)
    register()
    tokenizer = ElmoForManyLangsTokenizer(vocab_file=str(model_dir / "word.dic"), char_file=str(model_dir / "char.dic"),
                                          max_characters_per_token=config.max_characters_per_token)
    model = seeded_model(ElmoModel, config)
    copy_elmo_state(model, state)
    model.eval()
    with staged_output(output_dir) as work:
        save_folder(model, tokenizer, work)
        shutil.copyfile(arch_path, work / ARCHITECTURE_COPY)
        max_diff = verify_saved_folder(model, tokenizer, work)
        source = {
            "options": arch_path.name,
            "weights": "token_embedder.pkl, encoder.pkl",
            "weights_sha256": ", ".join(file_sha256(model_dir / n) for n in ("token_embedder.pkl", "encoder.pkl")),
            "vocab": "word.dic, char.dic",
        }
        card = render_elmo_card(config, push_to_hub or str(output_dir), source, "custom", model_name=model_name,
                                revision=revision, num_parameters=sum(p.numel() for p in model.parameters()),
                                verified_max_abs_diff=max_diff, language=language)
        card.save(work / "README.md")
    if push_to_hub:
        url = push_folder(output_dir, push_to_hub, private=private, revision=revision,
                          commit_message=f"Add the ELMoForManyLangs model {model_dir.name} converted with hf-elmo")
        logger.info("Pushed to %s", url)
    return output_dir
