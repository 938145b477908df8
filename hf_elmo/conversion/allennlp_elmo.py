"""Reads the original ELMo weight files (bilm-tf / AllenNLP HDF5) into an [`ElmoModel`] state dict.

Every published size (small, medium, original, original 5.5B) shares one layout (../shared/REFERENCE.md): the
expected dataset names and shapes follow from ``options.json``, and every one of them is checked before anything is
copied, so that a truncated, mismatched or foreign file fails with a message that names the dataset and the shapes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..models.elmo.configuration_elmo import ElmoConfig


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


def read_elmo_hdf5(path: str | os.PathLike, config: ElmoConfig) -> dict[str, np.ndarray]:
    """Reads and validates every dataset; raises [`ElmoWeightsError`] listing each missing or mis-shaped one."""
    expected = expected_datasets(config)
    arrays: dict[str, np.ndarray] = {}
    problems: list[str] = []
    with _open_hdf5(path) as f:
        for name, shape in expected.items():
            if name not in f:
                problems.append(f"missing dataset '{name}' (expected shape {shape})")
                continue
            ds = f[name]
            if not hasattr(ds, "shape"):
                problems.append(f"'{name}' is a group, expected a dataset of shape {shape}")
                continue
            if tuple(ds.shape) != shape:
                problems.append(f"dataset '{name}' has shape {tuple(ds.shape)}, the options say {shape}")
                continue
            try:
                arrays[name] = np.asarray(ds[...], dtype=np.float32)
            except (OSError, ValueError, TypeError) as e:
                problems.append(f"dataset '{name}' could not be read (truncated file?): {e}")
    if problems:
        raise ElmoWeightsError(f"{path} does not match the ELMo options:\n  - " + "\n  - ".join(problems))
    bad = [n for n, a in arrays.items() if not np.isfinite(a).all()]
    if bad:
        raise ElmoWeightsError(f"{path}: datasets with NaN or infinite values: {', '.join(bad)}")
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
    state = hdf5_to_state_dict(read_elmo_hdf5(weights_path, elmo.config), elmo.config)
    own = elmo.state_dict()
    with torch.no_grad():
        for name, value in state.items():
            own[name].copy_(value.to(own[name].dtype))
    elmo._packed_cache.clear()
