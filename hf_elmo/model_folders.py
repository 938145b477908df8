"""What a loader checks about a model folder (or Hub repository) before it does any work with it.

Transformers loads a folder of another model type into any class with a warning, every weight MISSING and the model
randomly initialised; a command would then train (or embed, or export) a random model and exit 0. Every loader of
hf_elmo calls ``check_model_folder`` first, which stops with one line naming the folder, the ``model_type`` its
config.json holds and the one needed, or saying that the folder holds no weights.

This module imports only the standard library and transformers' config reader (no hf_elmo module): the command
modules, the training recipe and the ONNX exporter all import it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

# A saved model's weights, in any of the layouts ``from_pretrained`` reads (whole file or shards' index).
WEIGHTS_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# model_type → the family's name in messages.
FAMILY_NAMES = {"elmo": "ELMo", "awd_lstm": "AWD-LSTM"}


# What ``hf-elmo ulmfit --output DIR`` writes: one saved folder per model (and metrics.json), none at DIR itself.
ULMFIT_LM_FOLDER, ULMFIT_CLASSIFIER_FOLDER = "language_model", "classifier"


class ModelFolderError(ValueError):
    """A model folder or repository that is not of the model type a loader needs, or that holds no weights.

    A ValueError: the commands report it as one line (``hf-elmo <command>: error: ...``) and exit with status 1.
    """


def describe_type(model_type: str | None) -> str:
    """``'awd_lstm' (AWD-LSTM)``; ``no model_type`` when there is none."""
    if not model_type:
        return "no model_type"
    name = FAMILY_NAMES.get(model_type)
    return f"{model_type!r} ({name})" if name else repr(model_type)


def read_config_dict(source: str | os.PathLike) -> dict[str, Any]:
    """The config.json of a local folder, or of a Hub repository (through transformers' cache)."""
    path = Path(source)
    if path.is_dir():
        config_file = path / "config.json"
        if not config_file.is_file():
            raise ModelFolderError(f"{source} holds no config.json: not a saved model folder")
        try:
            return json.loads(config_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelFolderError(f"{config_file} is not valid JSON: {e}") from None
    if path.exists():
        raise ModelFolderError(f"{source} is a file, not a saved model folder")
    if _looks_like_a_path(str(source)):  # "./typo", "../x", "/abs/x", "~/x", "a/b/c": never a Hub repository id
        raise ModelFolderError(f"{source}: no such folder")
    from transformers import PretrainedConfig

    return PretrainedConfig.get_config_dict(str(source))[0]


def _looks_like_a_path(name: str) -> bool:
    """Whether ``name`` can only mean a local path: a Hub repository id is ``name`` or ``owner/name``."""
    return not name or name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1 or name.endswith("/")


def ulmfit_output_classifier(source: str | os.PathLike) -> Path | None:
    """The classifier folder of an ``hf-elmo ulmfit --output`` folder (one with no config.json of its own but a
    saved ``classifier/`` folder); None for anything else (a model folder, a Hub id)."""
    path = Path(source)
    classifier = path / ULMFIT_CLASSIFIER_FOLDER
    if path.is_dir() and not (path / "config.json").exists() and (classifier / "config.json").is_file():
        return classifier
    return None


def check_model_folder(source: str | os.PathLike, needed: str | Iterable[str], role: str = "this command",
                       weights: bool = True) -> dict[str, Any]:
    """Checks that ``source`` (a folder or Hub id) holds a model of one of the ``needed`` model types and, for a
    local folder when ``weights`` is true, its weights; returns its config.json as a dict.

    Raises [`ModelFolderError`] with one line: e.g. ``my-elmo holds a model of type 'elmo' (ELMo); --pretrained
    needs 'awd_lstm' (AWD-LSTM)``. ``role`` names what needs it (an option or a command).
    """
    needed = (needed,) if isinstance(needed, str) else tuple(needed)
    config = read_config_dict(source)
    found = config.get("model_type")
    if found not in needed:
        raise ModelFolderError(f"{source} holds a model of type {describe_type(found)}; {role} needs "
                               + " or ".join(describe_type(t) for t in needed))
    path = Path(source)
    if weights and path.is_dir() and not any((path / name).is_file() for name in WEIGHTS_FILES):
        raise ModelFolderError(f"{source} holds a {describe_type(found)} config but no weights (none of "
                               f"{', '.join(WEIGHTS_FILES)}); {role} needs a saved model")
    check_config_values(source, found, config)
    if weights and path.is_dir():
        check_safetensors_files(path)
    return config


def check_config_values(source: str | os.PathLike, model_type: str, config: dict[str, Any]) -> None:
    """Builds the registered configuration class of ``model_type`` from ``config`` (config.json's dict), which checks
    every field strictly and caps the sizes, so that a bad or absurd value (``"n_layers": 1000000``) stops here with
    one line naming the folder, before a model is built from it. Nothing is checked for a type not registered in
    this process."""
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        return
    fields = {k: v for k, v in config.items() if k != "model_type"}
    try:
        CONFIG_MAPPING[model_type](**fields)
    except (TypeError, ValueError) as e:
        raise ModelFolderError(f"{source}: invalid config.json: {str(e)[:300]}") from None
    except AttributeError as e:  # e.g. an AWD-LSTM's hidden_size set on ElmoConfig, where it is a property
        raise ModelFolderError(f"{source}: config.json does not hold a {describe_type(model_type)} configuration "
                               f"(the fields of another model type?): {str(e)[:300]}") from None


# safetensors' own bound on a header; a larger one is not a weights file
MAX_SAFETENSORS_HEADER = 100 << 20


def check_safetensors_files(folder: Path) -> dict[str, list[int]]:
    """Checks that ``model.safetensors`` (or every shard its index names) is whole: its header parses and the file
    holds every byte the header places, so that a truncated download or copy stops with one line naming the file
    instead of safetensors' error from deep inside ``from_pretrained``. Reads the headers only; returns every
    tensor's name → shape (empty for a folder of other weight files)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ModelFolderError(f"{index} is not a safetensors index: {e}") from None
        files = [folder / name for name in shards]
    else:
        files = [folder / "model.safetensors"] if (folder / "model.safetensors").is_file() else []
    shapes: dict[str, list[int]] = {}
    for file in files:
        header = _safetensors_header(file, folder)
        if isinstance(header, str):
            raise ModelFolderError(f"{file} is truncated or not a safetensors file: {header}")
        shapes.update({k: list(v.get("shape", [])) for k, v in header.items() if k != "__metadata__"})
    return shapes


def _safetensors_header(file: Path, folder: Path) -> dict[str, Any] | str:
    """The header of ``file`` (of ``folder``) as a safetensors file (8-byte little-endian header length, JSON
    header, data), or what is wrong with it."""
    if folder.resolve() not in file.resolve().parents:  # a shard named "../x"
        return "it lies outside the folder"
    if not file.is_file():
        return "the file is missing"
    size = file.stat().st_size
    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{size} bytes, less than its 8-byte header length"
        n = int.from_bytes(head, "little")
        if n > min(size - 8, MAX_SAFETENSORS_HEADER):
            return f"its header claims {n} bytes, the file has {size - 8} after the length"
        try:
            header = json.loads(f.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as e:
            return f"its header does not parse ({type(e).__name__})"
    if 8 + n + end > size:
        return f"its header places {8 + n + end} bytes, the file has {size}"
    return header


def from_pretrained_checked(model_class: Any, source: str | os.PathLike, **kwargs: Any) -> Any:
    """``model_class.from_pretrained(source, **kwargs)`` for a loader that must not run a model other than the one
    saved: transformers initialises randomly what the weights lack (``"tie_weights": false`` → a random decoder,
    a classifier head asked of a language model), drops what the model has no place for (``"out_bias": false`` drops
    the decoder's bias, ``"num_layers": 2`` the third layer) and reports sizes that differ with a RuntimeError and a
    table. Each of these stops here with one line naming the folder and (a few of) the keys. Weights of a part the
    class does not have at all (a language model's decoder read by the base model class) are ignored, as usual."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # its load report is replaced by the one line below
    try:
        model, info = model_class.from_pretrained(source, output_loading_info=True, **kwargs)
    except RuntimeError as e:
        if "mismatched_sizes" not in str(e) and "size mismatch" not in str(e):
            raise
        raise ModelFolderError(f"{source}: the saved weights' sizes differ from those config.json describes (a "
                               "config.json edited or of another model?)") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    missing = sorted(info.get("missing_keys") or ())
    # a weight the model has a module for but no parameter of that name (found by the saved names)
    path = Path(source)
    saved = check_safetensors_files(path) if path.is_dir() else {}
    own = set(model.state_dict())
    prefix = getattr(model, "base_model_prefix", "") or ""
    roots = {name.split(".", 1)[0] for name in own}
    unexpected = []
    for key in sorted(saved):
        name = key[len(prefix) + 1:] if prefix and key.startswith(prefix + ".") and prefix not in roots else key
        if name not in own and name.split(".", 1)[0] in roots:
            unexpected.append(key)
    for what, keys in (("lacks", missing), ("holds weights the model built from its config.json has no place for:",
                                            unexpected)):
        if keys:
            shown = ", ".join(keys[:5]) + (f", ... ({len(keys)} in all)" if len(keys) > 5 else "")
            verb = f"{what} weights the model built from its config.json needs:" if what == "lacks" else what
            raise ModelFolderError(f"{source} {verb} {shown} (a config.json edited, or a folder of another "
                                   f"model?)")
    return model


# --------------------------------------------------------------------------------------------------------------------
# Heads that were never trained
# --------------------------------------------------------------------------------------------------------------------
# config.json's flag for a language-model head that holds no trained weights: ``hf-elmo convert-elmo --vocab`` adds
# ELMo's softmax over the vocabulary, which the published weight files do not hold, freshly initialised, and sets
# ``lm_head_trained: false``. Whoever trains the head sets it to true before ``save_pretrained``.
LM_HEAD_TRAINED = "lm_head_trained"


def lm_head_untrained(config: Any, source: str | os.PathLike | None = None) -> bool:
    """Whether the language-model head of ``config`` (a config or its dict) was never trained: its config says
    ``lm_head_trained: false``, or, for a folder converted before that flag existed, it holds the original
    ``elmo_options.json`` of a conversion and no flag."""
    get = config.get if isinstance(config, dict) else lambda key, default=None: getattr(config, key, default)
    flag = get(LM_HEAD_TRAINED, None)
    if flag is not None:
        return not flag
    return source is not None and (Path(source) / "elmo_options.json").is_file()
