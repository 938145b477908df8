"""Broken weight and options files fail with messages that name the file, the dataset and the shapes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import ELMO_FIXTURE, SKIP_REASON, tiny_config
from hf_elmo import ElmoConfig, ElmoModel
from hf_elmo.conversion.allennlp_elmo import (
    ElmoWeightsError,
    expected_datasets,
    hdf5_to_state_dict,
    load_elmo_weights,
    read_elmo_hdf5,
)

RNN = "RNN_0/RNN/MultiRNNCell/Cell1/LSTMCell"


def write_hdf5(path: Path, datasets: dict[str, np.ndarray]) -> Path:
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f.create_dataset(name, data=value)
    return path


def random_datasets(config: ElmoConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in expected_datasets(config).items()}


@pytest.fixture
def config() -> ElmoConfig:
    return tiny_config()


@pytest.fixture
def good_file(tmp_path, config) -> Path:
    return write_hdf5(tmp_path / "weights.hdf5", random_datasets(config))


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_untouched(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), f"{name} changed although loading failed"


# ----------------------------------------------------------------------------------------------------------------
# Positive controls: the files these tests break are valid to start with
# ----------------------------------------------------------------------------------------------------------------
def test_expected_datasets_of_the_fixture_match_the_file():
    if not (ELMO_FIXTURE / "lm_weights.hdf5").is_file():
        pytest.skip(SKIP_REASON)
    config = ElmoConfig.from_options_json(ELMO_FIXTURE / "options.json")
    found = {}
    with h5py.File(ELMO_FIXTURE / "lm_weights.hdf5", "r") as f:
        f.visititems(lambda n, o: found.__setitem__(n, o.shape) if isinstance(o, h5py.Dataset) else None)
    assert found == expected_datasets(config)


def test_random_file_loads_into_the_right_places(good_file, config):
    model = ElmoModel(config)
    load_elmo_weights(model, good_file)
    with h5py.File(good_file, "r") as f:
        emb = f["char_embed"][...]
        w0 = f[f"{RNN}/W_0"][...]
        w_proj = f["CNN_proj/W_proj"][...]
        carry = f["CNN_high_0/W_carry"][...]
    p = config.projection_dim
    np.testing.assert_array_equal(model.char_encoder.char_embedding.weight[1:].detach().numpy(), emb)
    assert bool((model.char_encoder.char_embedding.weight[0] == 0).all())
    np.testing.assert_array_equal(model.bilm.layers[1].weight_ih[0].detach().numpy(), w0[:p].T)
    np.testing.assert_array_equal(model.bilm.layers[1].weight_hh[0].detach().numpy(), w0[p:].T)
    np.testing.assert_array_equal(model.char_encoder.projection.weight.detach().numpy(), w_proj.T)
    n = config.n_filters
    np.testing.assert_array_equal(model.char_encoder.highways[0].weight[n:].detach().numpy(), carry.T)


# ----------------------------------------------------------------------------------------------------------------
# Broken weight files
# ----------------------------------------------------------------------------------------------------------------
def test_missing_dataset(tmp_path, config):
    data = random_datasets(config)
    del data[f"{RNN}/W_P_0"]
    path = write_hdf5(tmp_path / "missing.hdf5", data)
    model = ElmoModel(config)
    before = snapshot(model)
    with pytest.raises(ElmoWeightsError) as info:
        load_elmo_weights(model, path)
    message = str(info.value)
    assert str(path) in message
    assert f"missing dataset '{RNN}/W_P_0'" in message
    assert f"(expected shape {(config.lstm_dim, config.projection_dim)})" in message
    assert_untouched(model, before)


def test_misshaped_dataset(tmp_path, config):
    data = random_datasets(config)
    data["CNN_high_0/W_carry"] = np.zeros((16, 15), np.float32)
    path = write_hdf5(tmp_path / "misshaped.hdf5", data)
    with pytest.raises(ElmoWeightsError) as info:
        read_elmo_hdf5(path, config)
    message = str(info.value)
    assert str(path) in message
    assert "dataset 'CNN_high_0/W_carry' has shape (16, 15), the options say (16, 16)" in message
    model = ElmoModel(config)
    before = snapshot(model)
    with pytest.raises(ElmoWeightsError, match=r"CNN_high_0/W_carry' has shape \(16, 15\)"):
        load_elmo_weights(model, path)
    assert_untouched(model, before)


def test_every_problem_is_listed(tmp_path, config):
    data = random_datasets(config)
    del data["char_embed"]
    data["CNN/b_cnn_1"] = np.zeros(5, np.float32)
    path = write_hdf5(tmp_path / "two_problems.hdf5", data)
    with pytest.raises(ElmoWeightsError) as info:
        read_elmo_hdf5(path, config)
    assert "missing dataset 'char_embed' (expected shape (261, 4))" in str(info.value)
    assert "dataset 'CNN/b_cnn_1' has shape (5,), the options say (4,)" in str(info.value)


def test_group_instead_of_dataset(tmp_path, config):
    data = random_datasets(config)
    del data["CNN_proj/b_proj"]
    path = write_hdf5(tmp_path / "group.hdf5", data)
    with h5py.File(path, "a") as f:
        f.create_group("CNN_proj/b_proj")
    with pytest.raises(ElmoWeightsError, match=r"'CNN_proj/b_proj' is a group, expected a dataset of shape \(6,\)"):
        read_elmo_hdf5(path, config)


def test_non_finite_values(tmp_path, config):
    data = random_datasets(config)
    data["CNN/W_cnn_2"][0, 0, 0, 0] = np.nan
    path = write_hdf5(tmp_path / "nan.hdf5", data)
    with pytest.raises(ElmoWeightsError, match=r"NaN or infinite values: CNN/W_cnn_2"):
        read_elmo_hdf5(path, config)


def test_options_that_do_not_fit_the_file(good_file):
    other = tiny_config(lstm_dim=10)
    with pytest.raises(ElmoWeightsError) as info:
        read_elmo_hdf5(good_file, other)
    assert f"dataset '{RNN}/W_0' has shape (12, 48), the options say (12, 40)" in str(info.value)


def test_fixture_file_with_a_missing_dataset(tmp_path):
    """The same on a copy of the real fixture file (edited in tmp_path; the fixture itself is never modified)."""
    if not (ELMO_FIXTURE / "lm_weights.hdf5").is_file():
        pytest.skip(SKIP_REASON)
    path = tmp_path / "lm_weights.hdf5"
    shutil.copyfile(ELMO_FIXTURE / "lm_weights.hdf5", path)
    path.chmod(0o644)
    with h5py.File(path, "a") as f:
        del f["RNN_1/RNN/MultiRNNCell/Cell0/LSTMCell/B"]
        data = f["CNN/W_cnn_4"][...]
        del f["CNN/W_cnn_4"]
        f.create_dataset("CNN/W_cnn_4", data=data[:, :4])
    config = ElmoConfig.from_options_json(ELMO_FIXTURE / "options.json")
    with pytest.raises(ElmoWeightsError) as info:
        load_elmo_weights(ElmoModel(config), path)
    message = str(info.value)
    assert "missing dataset 'RNN_1/RNN/MultiRNNCell/Cell0/LSTMCell/B' (expected shape (256,))" in message
    assert "dataset 'CNN/W_cnn_4' has shape (1, 4, 4, 64), the options say (1, 5, 4, 64)" in message


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.05])
def test_truncated_file(tmp_path, good_file, config, fraction):
    data = good_file.read_bytes()
    path = tmp_path / "truncated.hdf5"
    path.write_bytes(data[: int(len(data) * fraction)])
    model = ElmoModel(config)
    before = snapshot(model)
    with pytest.raises(ElmoWeightsError) as info:
        load_elmo_weights(model, path)
    message = str(info.value)
    assert str(path) in message
    assert "truncated" in message
    assert_untouched(model, before)


def test_missing_file(tmp_path, config):
    path = tmp_path / "nope" / "weights.hdf5"
    with pytest.raises(FileNotFoundError, match="ELMo weight file not found: .*nope/weights.hdf5"):
        load_elmo_weights(ElmoModel(config), path)
    with pytest.raises(FileNotFoundError, match="nope/weights.hdf5"):
        read_elmo_hdf5(path, config)


@pytest.mark.parametrize("content", [b"", b"not an hdf5 file at all\n" * 100, b"\x89PNG\r\n\x1a\n" + bytes(2000)])
def test_not_hdf5(tmp_path, config, content):
    path = tmp_path / "weights.hdf5"
    path.write_bytes(content)
    with pytest.raises(ElmoWeightsError) as info:
        read_elmo_hdf5(path, config)
    assert str(path) in str(info.value)
    assert "not a readable HDF5 file" in str(info.value)


def test_directory_instead_of_file(tmp_path, config):
    with pytest.raises(FileNotFoundError, match="weight file not found"):
        read_elmo_hdf5(tmp_path, config)


def test_state_dict_conversion_covers_every_weight(good_file, config):
    """Every parameter of the biLM comes from the file (only the scalar mix is not in the original files)."""
    state = hdf5_to_state_dict(read_elmo_hdf5(good_file, config), config)
    own = ElmoModel(config).state_dict()
    assert set(own) - set(state) == {"scalar_mixes.0.scalar_parameters", "scalar_mixes.0.gamma"}
    for name, value in state.items():
        assert tuple(value.shape) == tuple(own[name].shape), name


# ----------------------------------------------------------------------------------------------------------------
# options.json
# ----------------------------------------------------------------------------------------------------------------
OPTIONS = {
    "lstm": {"cell_clip": 3, "use_skip_connections": True, "n_layers": 2, "proj_clip": 3, "projection_dim": 16,
             "dim": 64},
    "char_cnn": {"embedding": {"dim": 4}, "filters": [[1, 4], [2, 8]], "n_highway": 1, "n_characters": 262,
                 "max_characters_per_token": 50, "activation": "relu"},
}


def write_options(tmp_path: Path, options) -> Path:
    path = tmp_path / "options.json"
    path.write_text(json.dumps(options), encoding="utf-8")
    return path


def test_options_positive_control(tmp_path):
    config = ElmoConfig.from_options_json(write_options(tmp_path, OPTIONS))
    assert (config.lstm_dim, config.projection_dim, config.n_filters, config.n_highway) == (64, 16, 12, 1)
    assert config.use_skip_connections is True
    assert config.to_options_dict()["lstm"]["dim"] == 64


@pytest.mark.parametrize(
    "section, key, shown",
    [
        (None, "lstm", "lstm"),
        (None, "char_cnn", "char_cnn"),
        ("lstm", "projection_dim", "lstm.projection_dim"),
        ("lstm", "n_layers", "lstm.n_layers"),
        ("lstm", "dim", "lstm.dim"),
        ("char_cnn", "filters", "char_cnn.filters"),
        ("char_cnn", "n_highway", "char_cnn.n_highway"),
        ("char_cnn", "embedding", "char_cnn.embedding"),
    ],
)
def test_options_missing_key(tmp_path, section, key, shown):
    options = json.loads(json.dumps(OPTIONS))
    del (options if section is None else options[section])[key]
    path = write_options(tmp_path, options)
    with pytest.raises(ValueError) as info:
        ElmoConfig.from_options_json(path)
    assert f"missing '{shown}'" in str(info.value)
    assert str(path) in str(info.value)


def test_options_lstm_dim_alias(tmp_path):
    options = json.loads(json.dumps(OPTIONS))
    options["lstm"]["lstm_dim"] = options["lstm"].pop("dim")
    assert ElmoConfig.from_options_json(write_options(tmp_path, options)).lstm_dim == 64


@pytest.mark.parametrize("where, value", [("lstm", 5), ("char_cnn", [1, 2]), ("embedding", 4)])
def test_options_section_of_the_wrong_type(tmp_path, where, value):
    options = json.loads(json.dumps(OPTIONS))
    if where == "embedding":
        options["char_cnn"]["embedding"] = value
        shown = "char_cnn.embedding"
    else:
        options[where] = value
        shown = where
    path = write_options(tmp_path, options)
    with pytest.raises(ValueError, match=rf"{path}: '{shown}' must be an object, got {type(value).__name__}"):
        ElmoConfig.from_options_json(path)


@pytest.mark.parametrize(
    "section, key, value, fragment",
    [
        ("char_cnn", "filters", [[60, 4]], "does not fit in max_characters_per_token=50"),
        ("char_cnn", "filters", [[1]], "char_cnn_filters must be"),
        ("char_cnn", "activation", "gelu", "activation must be 'relu' or 'tanh'"),
        ("lstm", "n_layers", 0, "must be positive"),
        ("lstm", "n_layers", "two", "n_layers must be an integer, got 'two'"),
        ("char_cnn", "filters", "abc", "char_cnn_filters must be [[width, n_filters], ...]"),
        ("lstm", "projection_dim", None, "projection_dim must be an integer, got None"),
    ],
)
def test_options_invalid_values(tmp_path, section, key, value, fragment):
    options = json.loads(json.dumps(OPTIONS))
    options[section][key] = value
    path = write_options(tmp_path, options)
    with pytest.raises(ValueError) as info:
        ElmoConfig.from_options_json(path)
    assert fragment in str(info.value)
    assert str(path) in str(info.value)


def test_options_invalid_json(tmp_path):
    path = tmp_path / "options.json"
    path.write_text('{"lstm": {"dim": 64,}', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{path} is not valid JSON"):
        ElmoConfig.from_options_json(path)


def test_options_top_level_not_an_object(tmp_path):
    path = write_options(tmp_path, [1, 2, 3])
    with pytest.raises(ValueError, match=rf"{path}: missing 'char_cnn'"):
        ElmoConfig.from_options_json(path)


def test_options_missing_file(tmp_path):
    path = tmp_path / "absent" / "options.json"
    with pytest.raises(FileNotFoundError, match=rf"ELMo options file not found: {path}"):
        ElmoConfig.from_options_json(path)
