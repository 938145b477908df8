"""Reads the original ELMo weight files (bilm-tf / AllenNLP HDF5) into an [`ElmoModel`] state dict, and converts an
original checkpoint into a ``save_pretrained`` folder ready for the Hub (``convert_allennlp_elmo``).

Every published size (small, medium, original, original 5.5B) shares one layout (../shared/REFERENCE.md): the
expected dataset names and shapes follow from ``options.json``, and every one of them is checked before anything is
copied, so that a truncated, mismatched or foreign file fails with a message that names the dataset and the shapes.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from transformers import AutoModel, AutoModelForPreTraining

from ..auto import register
from ..cards import render_elmo_card
from ..hub import push_folder
from ..model_folders import LM_HEAD_TRAINED
from ..models.elmo.configuration_elmo import ElmoConfig
from ..models.elmo.modeling_elmo import ElmoForLanguageModeling, ElmoModel
from ..models.elmo.tokenization_elmo import ElmoTokenizer
from .common import (check_close, check_output_dir, file_sha256, nan_max, non_finite, save_folder, seeded_model,
                     staged_output)


class ElmoWeightsError(ValueError):
    """The HDF5 file does not hold the ELMo weights that the options describe."""


def expected_datasets(config: ElmoConfig) -> dict[str, tuple[int, ...]]:
    """The name → shape of every dataset an ELMo weight file for ``config`` holds."""
    emb, n_filters, p, h = config.char_embedding_dim, config.n_filters, config.projection_dim, config.lstm_dim
    shapes: dict[str, tuple[int, ...]] = {"char_embed": (config.n_characters - 1, emb)}
    for i, (width, n) in enumerate(config.char_cnn_filters):
        shapes[f"CNN/W_cnn_{i}"] = (1, width, emb, n)
        shapes[f"CNN/b_cnn_{i}"] = (n,)
    for k in range(config.n_highway):
        for part in ("carry", "transform"):
            shapes[f"CNN_high_{k}/W_{part}"] = (n_filters, n_filters)
            shapes[f"CNN_high_{k}/b_{part}"] = (n_filters,)
    if n_filters != p:
        shapes["CNN_proj/W_proj"] = (n_filters, p)
        shapes["CNN_proj/b_proj"] = (p,)
    for d in range(2):
        for layer in range(config.n_layers):
            prefix = f"RNN_{d}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"
            shapes[f"{prefix}/W_0"] = (2 * p, 4 * h)
            shapes[f"{prefix}/B"] = (4 * h,)
            shapes[f"{prefix}/W_P_0"] = (h, p)
    return shapes


def _open_hdf5(path: str | os.PathLike):
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ELMo weight file not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise ElmoWeightsError(f"{path} is not a readable HDF5 file (truncated or not HDF5?): {e}") from None


# A weight file is read from its own bytes only. HDF5 lets a dataset's bytes come from elsewhere: external storage
# (the raw bytes of any local file, at any offset), external links (an object of another HDF5 file), soft links (another
# path, possibly dangling) and virtual datasets (a mapping onto other files' datasets). A converter that followed them
# would copy a local file into model.safetensors (and push it to the Hub with --push-to-hub), so every one of them is
# refused, naming it, before a single value is read. An ELMo file holds ~30 objects; a file with more than this many
# is not one, and walking it further would only spend time.
MAX_HDF5_OBJECTS = 10_000


def hdf5_datasets(f: Any, path: str | os.PathLike) -> tuple[dict[str, Any], list[str]]:
    """Every dataset of the open HDF5 file ``f`` (name → ``h5py.Dataset``, names without the leading ``/``) and the
    names of its groups, found through hard links only: never following a link, so a dangling one is refused like
    any other.

    Raises [`ElmoWeightsError`] naming the object for a soft or external link, a dataset stored outside the file
    (external storage) or a virtual dataset, and for a file of more than ``MAX_HDF5_OBJECTS`` objects.
    """
    import h5py

    datasets: dict[str, Any] = {}
    groups: list[str] = []
    refused: list[str] = []
    pending = [("", f)]
    seen = 0
    while pending:
        prefix, group = pending.pop()
        for key in group:
            name = prefix + key
            seen += 1
            if seen > MAX_HDF5_OBJECTS:
                raise ElmoWeightsError(f"{path} holds more than {MAX_HDF5_OBJECTS} HDF5 objects: not an ELMo weight "
                                       "file")
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.SoftLink):
                refused.append(f"'{name}' is a soft link (to '{link.path}')")
                continue
            if isinstance(link, h5py.ExternalLink):
                refused.append(f"'{name}' is an external link (to '{link.path}' in {link.filename})")
                continue
            if not isinstance(link, h5py.HardLink):
                refused.append(f"'{name}' is a user-defined link")
                continue
            obj = group[key]
            if isinstance(obj, h5py.Group):
                groups.append(name)
                pending.append((name + "/", obj))
            elif isinstance(obj, h5py.Dataset):
                if obj.external:
                    files = ", ".join(sorted({os.fsdecode(e[0]) for e in obj.external}))
                    refused.append(f"dataset '{name}' is stored outside the file (HDF5 external storage in {files})")
                elif obj.is_virtual:
                    refused.append(f"dataset '{name}' is a virtual dataset (its values live in other files)")
                else:
                    datasets[name] = obj
            else:  # a named datatype: no values, and nothing an ELMo file holds
                datasets[name] = obj
    if refused:
        raise ElmoWeightsError(
            f"{path}: refused, a weight file must hold its own values (links, external storage and virtual datasets "
            "could read other files into the converted model):\n  - " + "\n  - ".join(sorted(refused))
        )
    return datasets, groups


# How many problems of each kind (missing, mis-shaped, unexpected, ...) an error lists.
SHOWN_PROBLEMS = 8
# A dataset is read into memory whole: one whose shape claims far more bytes than the file stores for it (a chunked
# dataset never written, or a compression ratio no weights have) would allocate what its shape says.
MAX_UNSTORED_RATIO, UNSTORED_SLACK = 64, 1 << 20


def _listed(items: list[str], what: str) -> list[str]:
    return items[:SHOWN_PROBLEMS] + ([f"... and {len(items) - SHOWN_PROBLEMS} more {what}"]
                                     if len(items) > SHOWN_PROBLEMS else [])


def read_elmo_hdf5(path: str | os.PathLike, config: ElmoConfig) -> dict[str, np.ndarray]:
    """Reads and validates every dataset; raises [`ElmoWeightsError`] listing each missing, mis-shaped or
    unexpected one (every dataset of the file must be one the options describe: a file with more layers or highway
    layers than the options say is not silently cut), before reading any value, and before that for links and
    datasets stored elsewhere (``hdf5_datasets``)."""
    expected = expected_datasets(config)
    arrays: dict[str, np.ndarray] = {}
    with _open_hdf5(path) as f:
        found, groups = hdf5_datasets(f, path)
        missing, wrong, unexpected = [], [], []
        for name, shape in expected.items():
            ds = found.get(name)
            if name in groups:
                wrong.append(f"'{name}' is a group, expected a dataset of shape {shape}")
            elif ds is None:
                missing.append(f"missing dataset '{name}' (expected shape {shape})")
            elif not hasattr(ds, "shape"):
                wrong.append(f"'{name}' is not a dataset, expected a dataset of shape {shape}")
            elif tuple(ds.shape) != shape:
                wrong.append(f"dataset '{name}' has shape {tuple(ds.shape)}, the options say {shape}")
            elif ds.dtype.kind != "f":  # ints, bools, complex numbers: not weights, and casting them hides it
                wrong.append(f"dataset '{name}' holds {ds.dtype} values, not floating-point weights")
            elif ds.size * ds.dtype.itemsize > MAX_UNSTORED_RATIO * ds.id.get_storage_size() + UNSTORED_SLACK:
                wrong.append(f"dataset '{name}' of shape {shape} stores {ds.id.get_storage_size()} bytes for its "
                             f"{ds.size * ds.dtype.itemsize}: never written, or compressed beyond any weights")
        for name in sorted(set(found) - set(expected)):
            shape = getattr(found[name], "shape", None)
            unexpected.append(f"unexpected dataset '{name}' (shape {shape}): the options describe no such dataset")
        problems = (_listed(missing, "missing datasets") + _listed(wrong, "mis-shaped datasets")
                    + _listed(unexpected, "unexpected datasets"))
        if unexpected:
            problems.append("(do n_layers, n_highway and the filters of the options match the file?)")
        if not problems:
            for name in expected:
                try:
                    arrays[name] = np.asarray(found[name][...], dtype=np.float32)
                except (OSError, ValueError, TypeError) as e:
                    problems.append(f"dataset '{name}' could not be read (truncated file?): {e}")
    if problems:
        raise ElmoWeightsError(f"{path} does not match the ELMo options:\n  - " + "\n  - ".join(problems))
    bad = non_finite(arrays)
    if bad:
        raise ElmoWeightsError(f"{path}: datasets with NaN or infinite values: {', '.join(bad[:SHOWN_PROBLEMS])}")
    return arrays


def hdf5_to_state_dict(arrays: dict[str, np.ndarray], config: ElmoConfig) -> dict[str, torch.Tensor]:
    """Maps the original datasets onto [`ElmoModel`]'s parameter names and layouts (prefix-free)."""
    t = torch.from_numpy
    sd: dict[str, torch.Tensor] = {}
    emb = arrays["char_embed"]
    sd["char_encoder.char_embedding.weight"] = t(np.concatenate([np.zeros((1, emb.shape[1]), np.float32), emb]))
    for i in range(len(config.char_cnn_filters)):
        w = arrays[f"CNN/W_cnn_{i}"][0]  # (width, emb, n) -> Conv1d (n, emb, width)
        sd[f"char_encoder.convolutions.{i}.weight"] = t(np.ascontiguousarray(w.transpose(2, 1, 0)))
        sd[f"char_encoder.convolutions.{i}.bias"] = t(arrays[f"CNN/b_cnn_{i}"])
    for k in range(config.n_highway):
        g = f"CNN_high_{k}"
        w = np.concatenate([arrays[f"{g}/W_transform"].T, arrays[f"{g}/W_carry"].T])
        b = np.concatenate([arrays[f"{g}/b_transform"], arrays[f"{g}/b_carry"]])
        sd[f"char_encoder.highways.{k}.weight"] = t(np.ascontiguousarray(w))
        sd[f"char_encoder.highways.{k}.bias"] = t(b)
    if config.n_filters != config.projection_dim:
        sd["char_encoder.projection.weight"] = t(np.ascontiguousarray(arrays["CNN_proj/W_proj"].T))
        sd["char_encoder.projection.bias"] = t(arrays["CNN_proj/b_proj"])
    p = config.projection_dim
    for layer in range(config.n_layers):
        w_ih, w_hh, bias, w_proj = [], [], [], []
        for d in range(2):
            prefix = f"RNN_{d}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"
            w0 = arrays[f"{prefix}/W_0"]  # (input + hidden-projection, 4H), input rows first
            w_ih.append(w0[:p].T)
            w_hh.append(w0[p:].T)
            bias.append(arrays[f"{prefix}/B"])
            w_proj.append(arrays[f"{prefix}/W_P_0"].T)
        base = f"bilm.layers.{layer}"
        sd[f"{base}.weight_ih"] = t(np.ascontiguousarray(np.stack(w_ih)))
        sd[f"{base}.weight_hh"] = t(np.ascontiguousarray(np.stack(w_hh)))
        sd[f"{base}.bias"] = t(np.stack(bias))
        sd[f"{base}.weight_proj"] = t(np.ascontiguousarray(np.stack(w_proj)))
    return sd


def load_elmo_weights(model: torch.nn.Module, weights_path: str | os.PathLike) -> None:
    """Loads an original HDF5 weight file into ``model`` (an ElmoModel or a head holding one as ``.elmo``)."""
    elmo = getattr(model, "elmo", model)
    copy_elmo_state(model, hdf5_to_state_dict(read_elmo_hdf5(weights_path, elmo.config), elmo.config))


def copy_elmo_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copies ``hdf5_to_state_dict``'s tensors into ``model`` (an ElmoModel or a head holding one as ``.elmo``)."""
    elmo = getattr(model, "elmo", model)
    own = elmo.state_dict()
    with torch.no_grad():
        for name, value in state.items():
            own[name].copy_(value.to(own[name].dtype))
    elmo.clear_weight_cache()


# --------------------------------------------------------------------------------------------------------------------
# Conversion to a save_pretrained folder
# --------------------------------------------------------------------------------------------------------------------
# The published sizes (../shared/REFERENCE.md): all 2 layers, the same character CNN, told apart by their dimensions.
PUBLISHED_FILTERS = [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]]
PUBLISHED_SIZES: dict[str, tuple[int, int, int]] = {  # name -> (lstm_dim, projection_dim, n_highway)
    "small": (1024, 128, 1),
    "medium": (2048, 256, 1),
    "original": (4096, 512, 2),
}
# Sentences the saved folder is checked with after reloading: several lengths (so padding is exercised), punctuation
# and multi-byte characters.
VERIFY_SENTENCES = [
    "The quick brown fox didn't jump over the lazy dog.",
    "Zoë's café served crème brûlée (12.50 €) in Kraków!",
    "ELMo",
]
# A reloaded folder runs the very same code on the very same weights: any difference beyond rounding is a bug.
VERIFY_ATOL = 1e-6

logger = logging.getLogger(__name__)


def published_size(config: ElmoConfig, weights_name: str | None = None) -> str:
    """Which published ELMo ``config`` has the architecture of: ``"small"``, ``"medium"``, ``"original"``,
    ``"original 5.5B"`` (the original's dimensions, told apart only by "5.5B" in the weight file's name) or
    ``"custom"``."""
    if (
        config.n_layers != 2
        or config.char_cnn_filters != PUBLISHED_FILTERS
        or config.char_embedding_dim != 16
        or config.max_characters_per_token != 50
    ):
        return "custom"
    dims = (config.lstm_dim, config.projection_dim, config.n_highway)
    for name, published in PUBLISHED_SIZES.items():
        if dims == published:
            if name == "original" and weights_name and "5.5b" in weights_name.lower():
                return "original 5.5B"
            return name
    return "custom"


def convert_allennlp_elmo(
    options: str | os.PathLike,
    weights: str | os.PathLike,
    output_dir: str | os.PathLike,
    vocab: str | os.PathLike | None = None,
    push_to_hub: str | None = None,
    private: bool = False,
    revision: str | None = None,
    model_name: str | None = None,
    token_cache: str | os.PathLike | None = None,
    token_cache_input_products: bool = False,
) -> Path:
    """Converts an original ELMo (``options.json`` + ``weights.hdf5``) into a ``save_pretrained`` folder.

    The folder holds ``config.json`` (with an ``auto_map`` for every Auto class), ``model.safetensors``, the
    tokenizer files, the model's code (so it loads with ``trust_remote_code=True`` where hf_elmo is not installed),
    ``elmo_options.json`` (the original options, for provenance) and a model card ``README.md``. Without ``vocab``
    the model is an [`ElmoModel`]; with one it is an [`ElmoForLanguageModeling`] whose softmax over the vocabulary
    is freshly initialised (the original files do not hold it; config.json then says ``lm_head_trained: false``, and
    ``hf-elmo export`` exports the embeddings by default). The saved folder is reloaded and checked to give
    the converted model's outputs before it is pushed to ``push_to_hub`` (a repository id) when one is given.

    ``token_cache`` (a file of words, one per line, e.g. the ``vocab`` file) also saves the token-embedding cache of
    those words (``token_embeddings.safetensors``, as bilm-tf's ``dump_token_embeddings``; with
    ``token_cache_input_products`` the first layer's input products too, 4·lstm_dim floats a word per direction),
    which ``from_pretrained`` of the folder or its Hub repository loads: those words then skip the character
    encoder, with the same outputs.

    Raises:
        FileNotFoundError: an input file is missing.
        ElmoWeightsError: the weight file does not hold the weights the options describe.
        ValueError: bad options, vocabulary or arguments, or a non-empty ``output_dir``.
        ConversionError: the reloaded folder does not reproduce the model.
    """
    options, weights, output_dir = Path(options), Path(weights), Path(output_dir)
    vocab = Path(vocab) if vocab is not None else None
    if revision and not push_to_hub:
        raise ValueError("a revision (branch) only applies when pushing: give push_to_hub too")
    token_cache = Path(token_cache) if token_cache is not None else None
    if token_cache_input_products and token_cache is None:
        raise ValueError("token_cache_input_products applies with a token_cache word list")
    for path, what in ((options, "options"), (weights, "weight"), (vocab, "vocabulary"),
                       (token_cache, "token-cache word list")):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"ELMo {what} file not found: {path}")
    check_output_dir(output_dir)
    cache_words = read_word_list(token_cache) if token_cache is not None else None

    register()
    tokenizer = ElmoTokenizer(vocab_file=str(vocab)) if vocab is not None else ElmoTokenizer()
    if vocab is not None:
        _report_added_words(vocab, tokenizer)
    # the softmax over the vocabulary is not in the original files: config.json says it was never trained
    extra = {"vocab_size": tokenizer.vocab_size, LM_HEAD_TRAINED: False} if vocab is not None else {}
    config = ElmoConfig.from_options_json(options, **extra)
    model_class = ElmoForLanguageModeling if vocab is not None else ElmoModel
    # Every dataset is checked against the options before the model is built (its sizes are then the file's, which
    # bound what is allocated) and before anything is written.
    state = hdf5_to_state_dict(read_elmo_hdf5(weights, config), config)
    # A fixed seed: the only freshly initialised weights (the LM softmax) are then the same in every conversion.
    model = seeded_model(model_class, config)
    copy_elmo_state(model, state)
    model.eval()
    if cache_words is not None:
        n_cached = getattr(model, "elmo", model).cache_token_embeddings(cache_words,
                                                                        input_products=token_cache_input_products)
        logger.info("token cache: %d words of %s (and the sentence boundaries)", n_cached - 2, token_cache.name)
    # written into a hidden sibling, renamed to output_dir once complete: a failure or an interruption leaves
    # nothing at output_dir
    with staged_output(output_dir) as work:
        save_folder(model, tokenizer, work)
        if cache_words is not None:  # the reload check below then runs the cached path too
            getattr(model, "elmo", model).save_token_embeddings(work)
        shutil.copyfile(options, work / "elmo_options.json")

        max_diff = verify_saved_folder(model, tokenizer, work)
        size = published_size(config, weights.name)
        source = {
            "options": options.name,
            "weights": weights.name,
            "weights_sha256": file_sha256(weights),
            "vocab": vocab.name if vocab is not None else None,
        }
        elmo = getattr(model, "elmo", model)
        card = render_elmo_card(
            config,
            push_to_hub or str(output_dir),
            source,
            size,
            model_name=model_name,
            revision=revision,
            num_parameters=sum(p.numel() for p in elmo.parameters()),
            verified_max_abs_diff=max_diff,
        )
        card.save(work / "README.md")

    if push_to_hub:
        url = push_folder(
            output_dir,
            push_to_hub,
            private=private,
            revision=revision,
            commit_message=f"Add {size} ELMo converted from {weights.name} with hf-elmo",
        )
        logger.info("Pushed to %s", url)
    return output_dir


def read_word_list(path: Path) -> list[str]:
    """The words of a word-list file (one a line, UTF-8; blank lines skipped), or ValueError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}): a word list is one word a line") from None
    words = [line.strip() for line in text.splitlines() if line.strip()]
    spaced = [w for w in words if any(c.isspace() for c in w)]
    if spaced:
        raise ValueError(f"{path}: a word list is one word a line; {len(spaced)} lines hold several, e.g. "
                         f"{spaced[0]!r}")
    if not words:
        raise ValueError(f"{path}: no words (a word list is one word a line)")
    return words


def _report_added_words(vocab: Path, tokenizer: ElmoTokenizer) -> None:
    """Says (a warning, shown by the command) which of the words every ELMo vocabulary holds (``<S>``, ``</S>``,
    ``<UNK>``: the boundaries and the unknown word, bilm-tf's first three lines) the file lacked and the tokenizer
    added at its end: their softmax rows are then new, and ids differ from a vocabulary that has them first."""
    words = set(ElmoTokenizer._read_vocab(vocab))
    added = [w for w in (tokenizer.BOS_WORD, tokenizer.EOS_WORD, tokenizer.UNK_WORD) if w not in words]
    if added:
        logger.warning("%s lacks %s: added at the end of the vocabulary (%s)", vocab, ", ".join(added),
                       ", ".join(f"{w} = id {tokenizer.vocab[w]}" for w in added))


def verify_saved_folder(model: torch.nn.Module, tokenizer: Any, folder: str | os.PathLike) -> float:
    """Reloads ``folder`` as users will (``AutoModel``, remote code allowed) and checks that it gives ``model``'s
    outputs on ``VERIFY_SENTENCES``: every layer, the scalar mix and, for a language model, the logits.
    Returns the largest absolute difference; raises [`ConversionError`] above ``VERIFY_ATOL``."""
    inputs = tokenizer(VERIFY_SENTENCES, padding=True, return_tensors="pt")
    elmo = getattr(model, "elmo", model)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # an LM folder read as AutoModel reports its unused softmax
    try:
        reloaded = {"AutoModel": AutoModel.from_pretrained(folder, trust_remote_code=True).eval()}
        if elmo is not model:
            reloaded["AutoModelForPreTraining"] = AutoModelForPreTraining.from_pretrained(
                folder, trust_remote_code=True
            ).eval()
    finally:
        transformers.logging.set_verbosity(verbosity)

    worst = 0.0
    with torch.no_grad():
        want = elmo(**inputs)
        for auto_name, loaded in reloaded.items():
            got = loaded(**inputs)
            if auto_name == "AutoModel":
                pairs = [("last_hidden_state", got.last_hidden_state, want.last_hidden_state)]
                layers = zip(got.hidden_states, want.hidden_states)
                pairs += [(f"hidden_states[{i}]", g, w) for i, (g, w) in enumerate(layers)]
            else:
                pairs = [("logits", got.logits, model(**inputs).logits)]
            # NaN-aware: a NaN anywhere fails the check (and would be the result)
            worst = nan_max([check_close(f"{folder} reloaded with {auto_name}", what, g, w, VERIFY_ATOL)
                             for what, g, w in pairs], worst)
    return worst
