"""Hostile and careless input files (issue 14): every crafted file is refused with one line naming the file and the
dataset, key or option, before anything large is allocated, nothing is read from elsewhere and nothing is left in
the output location. The files are tiny and made in each test's tmp_path."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hf_elmo import ElmoConfig
from hf_elmo.cli import main as cli_main
from hf_elmo.conversion.allennlp_elmo import ElmoWeightsError, expected_datasets, read_elmo_hdf5
from hf_elmo.conversion.common import PARTIAL_MARK

PROGRESS_BAR = re.compile(r"\d+/\d+ \[")  # tqdm's "3/14 [00:00<...]"

# A tiny ELMo in the original options.json layout (2 layers, a projection, one highway layer).
ELMO_OPTIONS = {
    "lstm": {"cell_clip": 3, "use_skip_connections": True, "n_layers": 2, "proj_clip": 3, "projection_dim": 6,
             "dim": 12},
    "char_cnn": {"embedding": {"dim": 4}, "filters": [[1, 4], [2, 4]], "n_highway": 1, "n_characters": 262,
                 "max_characters_per_token": 50, "activation": "relu"},
}


def elmo_options(**changes: dict) -> dict:
    """A copy of ``ELMO_OPTIONS`` with ``changes`` (section → fields) applied."""
    options = json.loads(json.dumps(ELMO_OPTIONS))
    for section, fields in changes.items():
        options[section].update(fields)
    return options


def elmo_arrays(options: dict | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 values for every dataset the options describe."""
    config = ElmoConfig.from_options_dict(options or ELMO_OPTIONS)
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in expected_datasets(config).items()}


def write_elmo_files(folder: Path, arrays: dict[str, np.ndarray] | None = None, options: dict | None = None,
                     extra=None) -> tuple[Path, Path]:
    """options.json and weights.hdf5 in ``folder``; ``extra(f)`` may add or replace objects of the open file."""
    folder.mkdir(parents=True, exist_ok=True)
    options_path, weights_path = folder / "options.json", folder / "weights.hdf5"
    options_path.write_text(json.dumps(options or ELMO_OPTIONS), encoding="utf-8")
    with h5py.File(weights_path, "w") as f:
        for name, value in (elmo_arrays(options) if arrays is None else arrays).items():
            f.create_dataset(name, data=value)
        if extra is not None:
            extra(f)
    return options_path, weights_path


def cli_error(capsys, argv: list[str], output: Path | None = None) -> str:
    """Runs ``hf-elmo ARGV``, which must fail with one line on stderr (besides transformers' progress bars) and leave
    ``output`` absent; returns that line."""
    capsys.readouterr()  # what the test's own set-up printed
    code = cli_main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    lines = [line for line in re.split(r"[\r\n]+", err) if line.strip() and not PROGRESS_BAR.search(line)]
    assert len(lines) == 1 and lines[0].startswith(f"hf-elmo {argv[0]}: error: "), err
    err = lines[0]
    if output is not None:
        assert not output.exists(), sorted(p.name for p in output.iterdir())
    return err


def convert_elmo_error(capsys, tmp_path: Path, options_path: Path, weights_path: Path) -> str:
    output = tmp_path / "out"
    return cli_error(capsys, ["convert-elmo", "--options", str(options_path), "--weights", str(weights_path),
                              "--output", str(output)], output)


# --------------------------------------------------------------------------------------------------------------------
# 1. Nothing is read from outside the weight file
# --------------------------------------------------------------------------------------------------------------------
SECRET = np.arange(261 * 4, dtype=np.float32) + 0.5  # the bytes a hostile file tries to read into the model


def _secret_file(folder: Path) -> Path:
    path = folder / "secret.bin"
    SECRET.tofile(path)
    return path


def _external_storage(folder: Path):
    secret = _secret_file(folder)

    def replace(f):
        del f["char_embed"]
        f.create_dataset("char_embed", shape=(261, 4), dtype="f4", external=[(str(secret), 0, SECRET.nbytes)])
    return replace, "dataset 'char_embed' is stored outside the file (HDF5 external storage in"


def _other_hdf5(folder: Path) -> str:
    """Another HDF5 file, holding the secret as dataset ``data``."""
    with h5py.File(folder / "other.hdf5", "w") as other:
        other["data"] = SECRET.reshape(261, 4)
    return str(folder / "other.hdf5")


def _external_link(folder: Path):
    other = _other_hdf5(folder)

    def replace(f):
        del f["char_embed"]
        f["char_embed"] = h5py.ExternalLink(other, "/data")
    return replace, "'char_embed' is an external link (to '/data' in"


def _dangling_external_link(folder: Path):
    def replace(f):
        del f["char_embed"]
        f["char_embed"] = h5py.ExternalLink(str(folder / "missing.hdf5"), "/data")
    return replace, "'char_embed' is an external link (to '/data' in"


def _soft_link(folder: Path):
    def replace(f):
        f["CNN_high_0/W_carry_copy"] = f["CNN_high_0/W_carry"][...]
        del f["CNN_high_0/W_carry"]
        f["CNN_high_0/W_carry"] = h5py.SoftLink("/CNN_high_0/W_carry_copy")
    return replace, "'CNN_high_0/W_carry' is a soft link (to '/CNN_high_0/W_carry_copy')"


def _dangling_soft_link(folder: Path):
    def replace(f):
        del f["CNN/b_cnn_1"]
        f["CNN/b_cnn_1"] = h5py.SoftLink("/nowhere")
    return replace, "'CNN/b_cnn_1' is a soft link (to '/nowhere')"


def _virtual_dataset(folder: Path):
    other = _other_hdf5(folder)

    def replace(f):
        del f["char_embed"]
        layout = h5py.VirtualLayout(shape=(261, 4), dtype="f4")
        layout[:] = h5py.VirtualSource(other, "data", shape=(261, 4))
        f.create_virtual_dataset("char_embed", layout)
    return replace, "dataset 'char_embed' is a virtual dataset"


ELSEWHERE = {
    "external storage": _external_storage,
    "external link": _external_link,
    "dangling external link": _dangling_external_link,
    "soft link": _soft_link,
    "dangling soft link": _dangling_soft_link,
    "virtual dataset": _virtual_dataset,
}


@pytest.mark.parametrize("kind", list(ELSEWHERE))
def test_hdf5_objects_that_read_other_files_are_refused(tmp_path, capsys, kind):
    replace, fragment = ELSEWHERE[kind](tmp_path)
    options_path, weights_path = write_elmo_files(tmp_path / "in", extra=replace)
    before = weights_path.read_bytes()
    with pytest.raises(ElmoWeightsError) as info:
        read_elmo_hdf5(weights_path, ElmoConfig.from_options_json(options_path))
    assert str(weights_path) in str(info.value) and fragment in str(info.value)
    err = convert_elmo_error(capsys, tmp_path, options_path, weights_path)
    assert fragment in err and str(weights_path) in err
    assert weights_path.read_bytes() == before


def test_hdf5_positive_control_reads_the_file_itself(tmp_path):
    """The crafted files above differ from a valid one only by the refused object: this one converts."""
    arrays = elmo_arrays()
    options_path, weights_path = write_elmo_files(tmp_path, arrays)
    got = read_elmo_hdf5(weights_path, ElmoConfig.from_options_json(options_path))
    assert set(got) == set(arrays) and all(np.array_equal(got[k], arrays[k]) for k in arrays)


# --------------------------------------------------------------------------------------------------------------------
# 2. NaN and infinity: refused by name, and never hidden by a comparison
# --------------------------------------------------------------------------------------------------------------------
def tiny_awd_lstm_folder(folder: Path, poison: str | None = None, value: float = float("nan")) -> Path:
    """A saved tiny AWD-LSTM language model (vocabulary 50), with ``value`` written into weight ``poison``."""
    from awd_lstm_testing import tiny_config
    from hf_elmo import AWDLSTMForLanguageModeling, AWDLSTMTokenizer

    model = AWDLSTMForLanguageModeling(tiny_config())
    if poison is not None:
        with torch.no_grad():
            model.state_dict()[poison].view(-1)[3] = value
    model.save_pretrained(folder)
    itos = [t for t in AWDLSTMTokenizer.build_vocab(["a"], min_freq=1) if t != "a"]
    AWDLSTMTokenizer(itos=itos + [f"word{i}" for i in range(50 - len(itos))]).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_export_refuses_non_finite_weights_by_name(tmp_path, capsys, value):
    pytest.importorskip("onnxruntime")
    folder = tiny_awd_lstm_folder(tmp_path / "lm", poison="awd_lstm.layers.1.weight_ih_l0", value=value)
    output = tmp_path / "onnx"
    err = cli_error(capsys, ["export", str(folder), str(output)], output)
    assert "NaN or infinite" in err and "awd_lstm.layers.1.weight_ih_l0" in err and str(folder) in err


def test_export_validation_reports_nan_outputs(tmp_path, monkeypatch):
    """The check against PyTorch sees a NaN the ONNX model returns (max(0.0, nan) used to report 0.0)."""
    pytest.importorskip("onnxruntime")
    import hf_elmo.onnx.export as export
    from awd_lstm_testing import tiny_config
    from hf_elmo import AWDLSTMModel
    from hf_elmo.onnx import get_onnx_config

    model = AWDLSTMModel(tiny_config()).eval()
    exporter_config = get_onnx_config(model.config, "feature-extraction")
    inputs = exporter_config.validation_inputs()
    with torch.no_grad():
        want = [t.numpy().copy() for t in exporter_config.wrap_model(model)(
            *(inputs[n] for n in exporter_config.input_names))]

    class NanSession:  # what ONNX Runtime returns for a graph that yields one NaN
        def run(self, names, feeds):
            got = [a.copy() for a in want]
            got[0].reshape(-1)[0] = np.nan
            return got

    monkeypatch.setattr(export, "make_session", lambda *args, **kwargs: NanSession())
    check = export.validate(model, exporter_config, tmp_path / "model.onnx")
    assert np.isnan(check["max_abs_diff"]) and np.isnan(check["min_cosine_similarity"])
    monkeypatch.setattr(export, "make_session", lambda *args, **kwargs: type("Same", (), {
        "run": lambda self, names, feeds: want})())
    assert export.validate(model, exporter_config, tmp_path / "model.onnx")["max_abs_diff"] == 0.0


@pytest.mark.parametrize("got, want, diff", [
    ([1.0, np.nan], [1.0, 2.0], np.nan),
    ([1.0, 2.0], [1.0, np.nan], np.nan),
    ([np.inf, 2.0], [np.inf, 2.5], 0.5),
    ([np.inf], [-np.inf], np.inf),
    ([1.0, 2.0], [1.0, 2.0], 0.0),
])
def test_max_abs_difference_is_nan_aware(got, want, diff):
    from hf_elmo.conversion.common import ConversionError, check_close, max_abs_difference

    got, want = np.asarray(got), np.asarray(want)
    result = max_abs_difference(got, want)
    assert result == diff or (np.isnan(diff) and np.isnan(result))
    if not diff <= 1e-6:
        with pytest.raises(ConversionError, match="max abs difference"):
            check_close("folder", "logits", got, want, 1e-6)


# --------------------------------------------------------------------------------------------------------------------
# 3. Sizes come from the expected keys, capped, before anything is allocated
# --------------------------------------------------------------------------------------------------------------------
def fastai_lm_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny AWD-LSTM language model (vocabulary 50, 3 layers) in fastai 2's state-dict layout."""
    from awd_lstm_testing import tiny_config
    from hf_elmo import AWDLSTMForLanguageModeling

    torch.manual_seed(seed)
    state = {}
    for name, value in AWDLSTMForLanguageModeling(tiny_config()).state_dict().items():
        if name == "awd_lstm.embeddings.weight":
            state["0.encoder.weight"] = state["0.encoder_dp.emb.weight"] = value
        elif name.startswith("awd_lstm.layers."):
            _, _, layer, param = name.split(".")
            state[f"0.rnns.{layer}.{'weight_hh_l0_raw' if param == 'weight_hh_l0' else 'module.' + param}"] = value
        else:
            state[name.replace("decoder.", "1.decoder.")] = value
    return state


def fastai_vocab(folder: Path, n: int = 50, drop: tuple[str, ...] = ()) -> Path:
    """fastai's itos pickle: its special tokens (less ``drop``), then made-up words, ``n`` in all."""
    import pickle

    from hf_elmo import AWDLSTMTokenizer

    itos = [t for t in AWDLSTMTokenizer.build_vocab(["a"], min_freq=1) if t != "a" and t not in drop]
    path = folder / "itos.pkl"
    path.write_bytes(pickle.dumps(itos + [f"word{i}" for i in range(n - len(itos))]))
    return path


def convert_awd_lstm_error(capsys, tmp_path: Path, state, vocab: Path | None = None) -> str:
    weights = tmp_path / "weights.pth"
    if not isinstance(state, bytes):
        torch.save(state, weights)
    else:
        weights.write_bytes(state)
    output = tmp_path / "out"
    return cli_error(capsys, ["convert-awd-lstm", "--weights", str(weights), "--vocab",
                              str(vocab or fastai_vocab(tmp_path)), "--output", str(output)], output)


def test_fastai_positive_control_converts(tmp_path, capsys):
    from hf_elmo.conversion.fastai_awd_lstm import read_fastai_awd_lstm

    torch.save(fastai_lm_state(), tmp_path / "lm.pth")
    checkpoint = read_fastai_awd_lstm(tmp_path / "lm.pth", vocab_size=50)
    assert checkpoint.config_fields["num_layers"] == 3 and checkpoint.config_fields["hidden_size"] == 12


@pytest.mark.parametrize("layer", ["99999999", "999999", "7", "64"])
def test_far_layer_index_is_an_unexpected_key_not_a_layer_count(tmp_path, capsys, layer):
    """One extra key used to set the layer count: 10^8 layers, a 23 GB allocation and a 290 MB error line."""
    state = fastai_lm_state()
    state[f"0.rnns.{layer}.weight_hh_l0_raw"] = torch.zeros(4, 1)
    err = convert_awd_lstm_error(capsys, tmp_path, state)
    assert f"unexpected key '0.rnns.{layer}.weight_hh_l0_raw' (shape (4, 1))" in err and len(err) < 2000


def test_many_unexpected_keys_are_listed_a_few(tmp_path, capsys):
    state = fastai_lm_state()
    shared = torch.zeros(1)
    state.update({f"junk.{i}": shared for i in range(5000)})
    state["x" * 100_000] = shared
    err = convert_awd_lstm_error(capsys, tmp_path, state)
    assert "unexpected key" in err and "more unexpected keys" in err and len(err) < 3000


def test_too_many_contiguous_layers_are_refused(tmp_path, capsys):
    state = fastai_lm_state()
    for layer in range(3, 70):
        state[f"0.rnns.{layer}.weight_hh_l0_raw"] = torch.zeros(4, 1)
    err = convert_awd_lstm_error(capsys, tmp_path, state)
    assert "more than 64 LSTM layers" in err


@pytest.mark.parametrize("key", ["0.encoder.weight", "1.decoder.weight"])
def test_expanded_views_do_not_size_the_model(tmp_path, capsys, key):
    """A stride-0 view saves one number but claims a 10^5 × 10^5 shape: the file's bytes bound what is allocated."""
    state = fastai_lm_state()
    state[key] = torch.zeros(1).expand(100_000, 100_000)
    err = convert_awd_lstm_error(capsys, tmp_path, state)
    assert f"tensor '{key}' of shape (100000, 100000)" in err and "expanded or overlapping view" in err


# --------------------------------------------------------------------------------------------------------------------
# 4. Options are validated strictly, against the file, before the model is built
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("section, key, value, option, fragment", [
    ("lstm", "dim", 64.7, "lstm.dim", "lstm_dim must be an integer, got 64.7"),
    ("lstm", "dim", 12.0, "lstm.dim", "lstm_dim must be an integer, got 12.0"),
    ("lstm", "dim", True, "lstm.dim", "lstm_dim must be an integer, got True"),
    ("lstm", "use_skip_connections", "false", "lstm.use_skip_connections", "must be true or false, got 'false'"),
    ("lstm", "use_skip_connections", 0, "lstm.use_skip_connections", "must be true or false, got 0"),
    ("lstm", "cell_clip", -3, "lstm.cell_clip", "cell_clip must be at least 0.0, got -3.0"),
    ("lstm", "proj_clip", "3", "lstm.proj_clip", "proj_clip must be a finite number, got '3'"),
    ("lstm", "n_layers", 10**6, "lstm.n_layers", "n_layers must be at most 64, got 1000000"),
    ("lstm", "projection_dim", -6, "lstm.projection_dim", "projection_dim must be positive, got -6"),
    ("char_cnn", "n_highway", -1, "char_cnn.n_highway", "n_highway must be at least 0, got -1"),
    ("char_cnn", "n_characters", 0, "char_cnn.n_characters", "n_characters must be at least 262, got 0"),
    ("char_cnn", "n_characters", 1e9, "char_cnn.n_characters", "n_characters must be an integer, got 1000000000.0"),
    ("char_cnn", "n_characters", 10**9, "char_cnn.n_characters", "n_characters must be at most"),
    ("char_cnn", "filters", [[1, 1e7]], "char_cnn.filters", "char_cnn_filters[0][1] (n_filters) must be an integer"),
    ("char_cnn", "filters", [[1, 10**7]], "char_cnn.filters", "char_cnn_filters[0][1] (n_filters) must be at most"),
    ("char_cnn", "filters", [[2, 4]] * 1000, "char_cnn.filters", "char_cnn_filters must be [[width, n_filters]"),
])
def test_options_are_validated_strictly_naming_the_option(tmp_path, capsys, section, key, value, option, fragment):
    options = elmo_options(**{section: {key: value}})
    options_path, weights_path = write_elmo_files(tmp_path / "in", elmo_arrays(), options=options)
    with pytest.raises(ValueError) as info:
        ElmoConfig.from_options_json(options_path)
    assert f"{options_path}: invalid ELMo option '{option}'" in str(info.value) and fragment in str(info.value)
    err = convert_elmo_error(capsys, tmp_path, options_path, weights_path)
    assert f"'{option}'" in err and fragment in err and len(err) < 1000


def test_embedding_dim_must_be_positive(tmp_path):
    options = elmo_options(char_cnn={"embedding": {"dim": -4}})
    path = tmp_path / "options.json"
    path.write_text(json.dumps(options), encoding="utf-8")
    with pytest.raises(ValueError, match=r"invalid ELMo option 'char_cnn.embedding.dim': char_embedding_dim must be "
                                         r"positive, got -4"):
        ElmoConfig.from_options_json(path)


@pytest.mark.parametrize("changes, fragment", [
    ({"lstm": {"n_layers": 1}}, "unexpected dataset 'RNN_0/RNN/MultiRNNCell/Cell1/LSTMCell/B'"),
    ({"char_cnn": {"n_highway": 0}}, "unexpected dataset 'CNN_high_0/W_carry'"),
    ({"char_cnn": {"n_highway": 2}}, "missing dataset 'CNN_high_1/W_carry'"),
    ({"char_cnn": {"filters": [[1, 4]]}}, "unexpected dataset 'CNN/W_cnn_1'"),
])
def test_every_dataset_of_the_file_is_accounted_for(tmp_path, capsys, changes, fragment):
    """Options describing fewer layers than the file holds used to drop the rest silently."""
    options_path, weights_path = write_elmo_files(tmp_path / "in", elmo_arrays(), options=elmo_options(**changes))
    err = convert_elmo_error(capsys, tmp_path, options_path, weights_path)
    assert fragment in err and str(weights_path) in err


def test_extra_dataset_is_refused(tmp_path, capsys):
    def extra(f):
        f["stolen"] = np.zeros(3, np.float32)
    options_path, weights_path = write_elmo_files(tmp_path / "in", extra=extra)
    err = convert_elmo_error(capsys, tmp_path, options_path, weights_path)
    assert "unexpected dataset 'stolen' (shape (3,))" in err


def test_unwritten_dataset_does_not_allocate_its_shape(tmp_path, capsys):
    """A chunked dataset that was never written stores nothing, whatever its shape claims."""
    options = elmo_options(char_cnn={"n_characters": 1 << 20, "embedding": {"dim": 1024}})
    arrays = {k: v for k, v in elmo_arrays().items() if not k.startswith(("char_embed", "CNN/W_cnn"))}
    arrays.update({k: np.zeros(s, np.float32) for k, s in
                   expected_datasets(ElmoConfig.from_options_dict(options)).items() if k.startswith("CNN/W_cnn")})

    def sparse(f):
        f.create_dataset("char_embed", shape=((1 << 20) - 1, 1024), dtype="f4", chunks=(1024, 1024))
    options_path, weights_path = write_elmo_files(tmp_path / "in", arrays, options=options, extra=sparse)
    err = convert_elmo_error(capsys, tmp_path, options_path, weights_path)
    assert "dataset 'char_embed' of shape (1048575, 1024) stores 0 bytes" in err


@pytest.mark.parametrize("field, value, fragment", [
    ("emb_size", 64.7, "emb_size must be an integer, got 64.7"),
    ("hidden_size", "12", "hidden_size must be an integer, got '12'"),
    ("vocab_size", True, "vocab_size must be an integer, got True"),
    ("num_layers", 10**6, "num_layers must be at most 64"),
    ("hidden_size", 10**7, "hidden_size must be at most"),
    ("bidirectional", "false", "bidirectional must be true or false, got 'false'"),
    ("tie_weights", 1, "tie_weights must be true or false, got 1"),
    ("weight_p", "0.5", "weight_p must be a finite number, got '0.5'"),
    ("ar_alpha", float("nan"), "ar_alpha must be a finite number, got nan"),
    ("pad_token_id", 1.5, "pad_token_id must be an integer, got 1.5"),
])
def test_awd_lstm_config_is_strict(field, value, fragment):
    from awd_lstm_testing import tiny_config

    with pytest.raises(ValueError) as info:
        tiny_config(**{field: value})
    assert fragment in str(info.value)


def test_awd_lstm_parameter_cap():
    from awd_lstm_testing import tiny_config

    with pytest.raises(ValueError, match="parameters, more than"):
        tiny_config(vocab_size=1 << 24, emb_size=1 << 10)


def embed_run(tmp_path: Path, lines: int = 1) -> tuple[Path, list[str], Path]:
    """A saved tiny ELMo, an input of ``lines`` sentences, and the ``hf-elmo embed`` arguments and output."""
    from hf_elmo import ElmoModel, ElmoTokenizer

    folder = tmp_path / "elmo"
    ElmoModel(ElmoConfig.from_options_dict(ELMO_OPTIONS)).save_pretrained(folder)
    ElmoTokenizer().save_pretrained(folder)
    (tmp_path / "in.txt").write_text("a sentence\n" * lines, encoding="utf-8")
    output = tmp_path / "out.hdf5"
    return folder, ["embed", str(folder), str(tmp_path / "in.txt"), str(output)], output


@pytest.mark.parametrize("command", ["export", "embed"])
def test_absurd_config_json_fails_naming_the_folder_before_building(tmp_path, capsys, command):
    if command == "embed":
        folder, argv, output = embed_run(tmp_path)
        field = "n_layers"
    else:
        folder, field = tiny_awd_lstm_folder(tmp_path / "lm"), "num_layers"
        argv, output = ["export", str(folder), str(tmp_path / "onnx")], tmp_path / "onnx"
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config[field] = 10**6
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    err = cli_error(capsys, argv, output)
    assert f"{folder}: invalid config.json: {field} must be at most 64, got 1000000" in err


# --------------------------------------------------------------------------------------------------------------------
# 5. Weights are floating-point numbers
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["int32", "int8", "bool", "complex64"])
def test_non_float_hdf5_dataset_is_refused_by_name(tmp_path, capsys, dtype):
    arrays = elmo_arrays()
    arrays["CNN_high_0/b_carry"] = np.ones(arrays["CNN_high_0/b_carry"].shape, dtype=dtype)
    options_path, weights_path = write_elmo_files(tmp_path / "in", arrays)
    err = convert_elmo_error(capsys, tmp_path, options_path, weights_path)
    assert f"dataset 'CNN_high_0/b_carry' holds {np.dtype(dtype)} values, not floating-point weights" in err


@pytest.mark.parametrize("dtype", [torch.int64, torch.int8, torch.bool, torch.complex64])
def test_non_float_tensor_is_refused_by_name(tmp_path, capsys, dtype):
    state = fastai_lm_state()
    state["0.rnns.1.module.bias_ih_l0"] = torch.ones(state["0.rnns.1.module.bias_ih_l0"].shape, dtype=dtype)
    err = convert_awd_lstm_error(capsys, tmp_path, state)
    assert f"tensors of the wrong type" in err and f"0.rnns.1.module.bias_ih_l0 ({dtype})" in err


def test_nan_tensor_is_refused_at_conversion_by_name(tmp_path, capsys):
    state = fastai_lm_state()
    state["1.decoder.bias"] = state["1.decoder.bias"].clone()
    state["1.decoder.bias"][4] = float("nan")
    err = convert_awd_lstm_error(capsys, tmp_path, state)
    assert "tensors with NaN or infinite values: 1.decoder.bias" in err


def test_float_precisions_are_weights(tmp_path):
    """float16/float64 files are floating point: they convert (to float32), as before."""
    from hf_elmo.conversion.fastai_awd_lstm import read_fastai_awd_lstm

    state = {k: v.double() for k, v in fastai_lm_state().items()}
    torch.save(state, tmp_path / "lm.pth")
    checkpoint = read_fastai_awd_lstm(tmp_path / "lm.pth")
    assert all(v.dtype == torch.float32 for v in checkpoint.state_dict.values())
    arrays = {k: v.astype(np.float16) for k, v in elmo_arrays().items()}
    options_path, weights_path = write_elmo_files(tmp_path / "elmo", arrays)
    assert read_elmo_hdf5(weights_path, ElmoConfig.from_options_json(options_path))["char_embed"].dtype == np.float32


# --------------------------------------------------------------------------------------------------------------------
# 6. No raw tracebacks: one line naming the file
# --------------------------------------------------------------------------------------------------------------------
def test_deeply_nested_vocabulary_pickle(tmp_path):
    """pickle builds a 100,000-deep list without recursion; repr() of it in the message used to raise RecursionError."""
    from hf_elmo.conversion.safe_pickle import read_itos_pickle

    path = tmp_path / "itos.pkl"
    # pickle.dumps itself recurses: the opcodes by hand (protocol 4, 100,001 EMPTY_LISTs, each APPENDed to the one
    # below, STOP)
    path.write_bytes(b"\x80\x04" + b"]" * 100_001 + b"a" * 100_000 + b".")
    with pytest.raises(ValueError) as info:
        read_itos_pickle(path)
    assert str(path) in str(info.value) and "entry 0 is list" in str(info.value) and len(str(info.value)) < 500


@pytest.mark.parametrize("content", [b"hello world\n", b"\x80\x02}q\x00(X\x01\x00\x00\x00ah\x01u.", b"PK\x03\x04junk"])
def test_text_or_garbage_as_pth(tmp_path, capsys, content):
    err = convert_awd_lstm_error(capsys, tmp_path, content)
    assert "weights.pth is not a readable torch file" in err or "cannot be read with torch.load" in err


@pytest.mark.parametrize("command", ["export", "embed"])
@pytest.mark.parametrize("keep", [0, 5, 300, -10])
def test_truncated_safetensors(tmp_path, capsys, command, keep):
    if command == "embed":
        folder, argv, output = embed_run(tmp_path)
    else:
        folder = tiny_awd_lstm_folder(tmp_path / "lm")
        argv, output = ["export", str(folder), str(tmp_path / "onnx")], tmp_path / "onnx"
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    err = cli_error(capsys, argv, output)
    assert f"{weights} is truncated or not a safetensors file" in err


def test_config_of_the_other_family(tmp_path, capsys):
    folder = tiny_awd_lstm_folder(tmp_path / "lm")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["model_type"] = "elmo"
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    err = cli_error(capsys, ["export", str(folder), str(tmp_path / "onnx")], tmp_path / "onnx")
    assert f"{folder}: config.json does not hold a 'elmo' (ELMo) configuration" in err


# --------------------------------------------------------------------------------------------------------------------
# 7. The smaller ones
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opset, fragment", [("99", "opset 99 is above 23"), ("17", "opset 17 is too old")])
def test_export_opset_outside_the_exporters_range(tmp_path, capsys, opset, fragment):
    pytest.importorskip("onnxruntime")
    folder = tiny_awd_lstm_folder(tmp_path / "lm")
    err = cli_error(capsys, ["export", str(folder), str(tmp_path / "onnx"), "--opset", opset], tmp_path / "onnx")
    assert fragment in err


@pytest.mark.parametrize("file_name", ["../../elsewhere/model.onnx", "/tmp/model.onnx", "sub/../../model.onnx", 7])
def test_onnx_file_name_may_not_leave_the_folder(tmp_path, file_name):
    pytest.importorskip("onnxruntime")
    from hf_elmo.onnx import OnnxModel

    folder = tmp_path / "exported"
    folder.mkdir()
    (tmp_path / "model.onnx").write_bytes(b"not run")
    config = {"model_type": "awd_lstm", "onnx": {"task": "feature-extraction", "file_name": file_name}}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ValueError, match=r"onnx.file_name (.* is not a file inside|must be a file name)"):
        OnnxModel.from_pretrained(folder)


class NotATensor:
    pass


def test_refused_pickle_names_the_global_and_never_advises_weights_only_false(tmp_path, capsys):
    err = convert_awd_lstm_error(capsys, tmp_path, {"model": NotATensor()})
    assert "refers to test_hostile_files.NotATensor" in err
    assert "weights_only=False" not in err.replace(" ", "") and "weights_only` set to `False" not in err
    assert "likely succeed" not in err


@pytest.mark.parametrize("content, fragment", [
    (b'{"lstm": {"dim": "\xff\xfe"}}', "is not UTF-8 text"),
    (b'{"lstm": {"dim": ' + b"9" * 5000 + b"}}", "is not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "is not valid JSON"),
])
def test_unreadable_options_name_the_file(tmp_path, content, fragment):
    path = tmp_path / "options.json"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        ElmoConfig.from_options_json(path)
    assert f"{path} {fragment}" in str(info.value) and len(str(info.value)) < 600


@pytest.mark.parametrize("section, key, literal, fragment", [
    ("lstm", "dim", "1e999", "lstm_dim must be an integer, got inf"),
    ("lstm", "cell_clip", "NaN", "cell_clip must be a finite number, got nan"),
    ("lstm", "proj_clip", "-Infinity", "proj_clip must be a finite number, got -inf"),
])
def test_absurd_numbers_in_options_name_the_file_and_option(tmp_path, section, key, literal, fragment):
    text = json.dumps(elmo_options(**{section: {key: "PLACEHOLDER"}})).replace('"PLACEHOLDER"', literal)
    path = tmp_path / "options.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        ElmoConfig.from_options_json(path)
    assert f"{path}: invalid ELMo option '{section}.{key}'" in str(info.value)
    assert fragment in str(info.value)


def test_fastai_vocabulary_without_its_special_tokens(tmp_path, capsys):
    vocab = fastai_vocab(tmp_path, drop=("xxbos", "xxmaj"))
    err = convert_awd_lstm_error(capsys, tmp_path, fastai_lm_state(), vocab=vocab)
    assert f"{vocab} lacks fastai's special tokens xxbos, xxmaj" in err


def test_elmo_vocabulary_without_boundaries_says_what_was_added(tmp_path, capsys):
    options_path, weights_path = write_elmo_files(tmp_path / "in")
    vocab = tmp_path / "in" / "vocab.txt"
    vocab.write_text("the\ncat\n<UNK>\n", encoding="utf-8")
    output = tmp_path / "out"
    capsys.readouterr()
    assert cli_main(["convert-elmo", "--options", str(options_path), "--weights", str(weights_path), "--vocab",
                     str(vocab), "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert f"{vocab} lacks <S>, </S>: added at the end of the vocabulary (<S> = id 3, </S> = id 4)" in out


# --------------------------------------------------------------------------------------------------------------------
# 8. Mutated options / configs: a clear error naming the option before anything large, or the very same model
# --------------------------------------------------------------------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Values a careless or hostile file puts where a size, a flag or a clip belongs: wrong types, signs, huge sizes.
HOSTILE = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2, 3, 10**6, 10**9, 2**31, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.none(), st.text(max_size=4), st.lists(st.integers(-2, 2), max_size=3),
)
# options.json fields that the weight file determines (any other value must be refused) or whose type is checked
ELMO_MUTABLE = [("lstm", "dim"), ("lstm", "projection_dim"), ("lstm", "n_layers"), ("lstm", "cell_clip"),
                ("lstm", "proj_clip"), ("lstm", "use_skip_connections"), ("char_cnn", "n_highway"),
                ("char_cnn", "n_characters"), ("char_cnn", "filters"), ("char_cnn", "embedding", "dim")]
# growth of the process's peak memory one example may cause (the models here are a few kilobytes)
MAX_PEAK_GROWTH_BYTES = 256 << 20


def peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def same_option(original, value) -> bool:
    """Whether ``value`` is ``original`` written the same way: a size only as that int, a flag only as that bool."""
    if isinstance(original, bool) or isinstance(value, bool):
        return value is original
    return type(value) is type(original) and value == original


@st.composite
def elmo_mutation(draw):
    path = draw(st.sampled_from(ELMO_MUTABLE))
    original = ELMO_OPTIONS[path[0]][path[1]] if len(path) == 2 else ELMO_OPTIONS[path[0]][path[1]][path[2]]
    if path[-1] == "filters":
        value = draw(st.one_of(HOSTILE, st.just(original),
                               st.lists(st.lists(HOSTILE, min_size=2, max_size=2), min_size=1, max_size=3),
                               st.builds(lambda i, j, v: [[v if (a, b) == (i, j) else x for b, x in enumerate(f)]
                                                          for a, f in enumerate(original)],
                                         st.integers(0, 1), st.integers(0, 1), HOSTILE)))
    else:
        kin = [st.just(original)] + ([st.just(float(original))] if isinstance(original, int)
                                     and not isinstance(original, bool) else [])
        value = draw(st.one_of(HOSTILE, *kin))
    return path, original, value


def expected_outcome(path, original, value) -> str:
    """What the converter must do with ``value`` in place of ``original``: ``"same"`` (accept it and give the
    reference model), ``"other"`` (accept it: a setting the weight file does not determine, such as a clip or the
    skip connections, set to another valid value) or ``"refuse"``."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if path[-1] in ("cell_clip", "proj_clip"):  # None, 0 (no clip) or a finite non-negative number, 3 == 3.0
        if number and value == original:
            return "same"
        return "other" if value is None or (number and 0 <= value <= 3e38) else "refuse"
    if path[-1] == "use_skip_connections":
        return "same" if value is original else "other" if isinstance(value, bool) else "refuse"
    if path[-1] == "filters":
        ints = (isinstance(value, list) and len(value) == len(original)
                and all(isinstance(f, list) and len(f) == 2 and all(type(x) is int for x in f) for f in value))
        return "same" if ints and value == original else "refuse"
    return "same" if same_option(original, value) else "refuse"


@pytest.fixture(scope="module")
def elmo_reference(tmp_path_factory):
    """The tiny ELMo's weight file, and the reference conversion's outputs on a fixed batch."""
    from hf_elmo import ElmoModel, ElmoTokenizer
    from hf_elmo.conversion.allennlp_elmo import load_elmo_weights

    folder = tmp_path_factory.mktemp("elmo-reference")
    options_path, weights_path = write_elmo_files(folder, elmo_arrays(seed=3))
    model = ElmoModel(ElmoConfig.from_options_json(options_path)).eval()
    load_elmo_weights(model, weights_path)
    inputs = ElmoTokenizer()(["The cat sat.", "Zoë's café!"], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model(**inputs, output_hidden_states=True)
    return weights_path, inputs, want


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=elmo_mutation())
def test_mutated_elmo_options_fail_clearly_or_give_the_reference_model(elmo_reference, tmp_path_factory, mutation):
    from hf_elmo import ElmoModel
    from hf_elmo.conversion.allennlp_elmo import copy_elmo_state, hdf5_to_state_dict

    (path, original, value), (weights_path, inputs, want) = mutation, elmo_reference
    options = json.loads(json.dumps(ELMO_OPTIONS))
    section = options[path[0]] if len(path) == 2 else options[path[0]][path[1]]
    section[path[-1]] = value
    options_path = tmp_path_factory.mktemp("options") / "options.json"
    options_path.write_text(json.dumps(options), encoding="utf-8")
    option = ".".join(path)
    before = peak_rss_bytes()
    try:
        config = ElmoConfig.from_options_json(options_path)
        state = hdf5_to_state_dict(read_elmo_hdf5(weights_path, config), config)
    except ValueError as e:
        message = str(e)
        assert (f"{options_path}: invalid ELMo option '{option}'" in message
                or (str(weights_path) in message and "dataset" in message)), message
        assert expected_outcome(path, original, value) == "refuse", message
    else:
        outcome = expected_outcome(path, original, value)
        assert outcome != "refuse", f"{option} = {value!r} accepted"
        model = ElmoModel(config).eval()
        copy_elmo_state(model, state)
        with torch.no_grad():
            got = model(**inputs, output_hidden_states=True)
        assert torch.isfinite(got.last_hidden_state).all()
        if outcome == "same":
            assert torch.equal(got.last_hidden_state, want.last_hidden_state)
            assert all(torch.equal(g, w) for g, w in zip(got.hidden_states, want.hidden_states))
    assert peak_rss_bytes() - before < MAX_PEAK_GROWTH_BYTES


AWD_MUTABLE = ["vocab_size", "emb_size", "hidden_size", "num_layers", "bidirectional", "tie_weights", "out_bias"]


@pytest.fixture(scope="module")
def awd_lstm_reference(tmp_path_factory):
    """A saved tiny AWD-LSTM language model, its config.json and its logits on a fixed batch."""
    from transformers import AutoModelForCausalLM

    folder = tiny_awd_lstm_folder(tmp_path_factory.mktemp("awd-reference") / "lm")
    ids = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = AutoModelForCausalLM.from_pretrained(folder).eval()(ids).logits
    return folder, json.loads((folder / "config.json").read_text(encoding="utf-8")), ids, want


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(AWD_MUTABLE), data=st.data())
def test_mutated_awd_lstm_config_fails_clearly_or_gives_the_saved_model(awd_lstm_reference, tmp_path_factory, field,
                                                                         data):
    import shutil

    from transformers import AutoModelForCausalLM

    from hf_elmo.model_folders import check_model_folder, from_pretrained_checked

    source, config, ids, want = awd_lstm_reference
    original = config[field]
    kin = [st.just(original)] + ([st.just(float(original)), st.just(original + 1), st.just(original - 1)]
                                 if type(original) is int else [st.just(not original)])
    value = data.draw(st.one_of(HOSTILE, *kin))
    folder = tmp_path_factory.mktemp("mutated") / "lm"
    shutil.copytree(source, folder)
    (folder / "config.json").write_text(json.dumps({**config, field: value}), encoding="utf-8")
    # tie_weights None means "as tie_word_embeddings", which the saved config.json holds (true)
    same = same_option(original, value) or (field == "tie_weights" and value is None)
    before = peak_rss_bytes()
    try:
        check_model_folder(folder, "awd_lstm")
        model = from_pretrained_checked(AutoModelForCausalLM, folder).eval()
    except ValueError as e:
        assert str(folder) in str(e) and len(str(e).splitlines()) == 1, str(e)
        assert not same, str(e)
    else:
        assert same, f"{field} = {value!r} accepted"
        with torch.no_grad():
            assert torch.equal(model(ids).logits, want)
    assert peak_rss_bytes() - before < MAX_PEAK_GROWTH_BYTES


# --------------------------------------------------------------------------------------------------------------------
# 9. Interrupted runs leave nothing at the output, and nothing that blocks the next run
# --------------------------------------------------------------------------------------------------------------------
def partials(output: Path) -> list[str]:
    return sorted(p.name for p in output.parent.glob(f".{output.name}.partial-*"))


def awd_lstm_convert_argv(tmp_path: Path, output: Path) -> list[str]:
    weights = tmp_path / "weights.pth"
    if not weights.exists():
        torch.save(fastai_lm_state(), weights)
    vocab = tmp_path / "itos.pkl" if (tmp_path / "itos.pkl").exists() else fastai_vocab(tmp_path)
    return ["convert-awd-lstm", "--weights", str(weights), "--vocab", str(vocab), "--output", str(output)]


def test_failed_conversion_leaves_nothing_and_the_rerun_succeeds(tmp_path, capsys, monkeypatch):
    import hf_elmo.conversion.fastai_awd_lstm as fastai_awd_lstm
    from hf_elmo.conversion.common import ConversionError

    output = tmp_path / "out"
    output.mkdir()  # an empty folder given as the output is fine, and stays usable

    def fail(*args, **kwargs):
        raise ConversionError("the reloaded folder differs (simulated)")

    monkeypatch.setattr(fastai_awd_lstm, "verify_saved_folder", fail)
    assert cli_main(awd_lstm_convert_argv(tmp_path, output)) == 1
    assert "simulated" in capsys.readouterr().err
    assert list(output.iterdir()) == [] and partials(output) == []
    monkeypatch.undo()
    assert cli_main(awd_lstm_convert_argv(tmp_path, output)) == 0
    assert (output / "README.md").is_file() and (output / "model.safetensors").is_file() and partials(output) == []


def test_stale_partial_of_a_dead_run_is_removed_and_never_blocks(tmp_path, capsys):
    output = tmp_path / "out"
    stale = tmp_path / ".out.partial-999999999-abc"  # no such process
    (stale / "sub").mkdir(parents=True)
    alive = tmp_path / f".out.partial-{os.getppid()}-xyz"  # another run, still going: left alone
    alive.mkdir()
    assert cli_main(awd_lstm_convert_argv(tmp_path, output)) == 0
    assert not stale.exists() and alive.is_dir() and (output / "config.json").is_file()


CHILD = "import sys; from hf_elmo.cli import main; sys.exit(main(sys.argv[1:]))"


def run_and_stop(argv: list[str], output: Path, signum: int, delay: float, cwd: Path) -> tuple[int, str]:
    """Runs ``hf-elmo ARGV`` in a child process, sends ``signum`` ``delay`` s after its partial output appears (or at
    once if it never does before it ends); returns the status and stderr."""
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", CHILD, *argv], cwd=cwd, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while child.poll() is None and not partials(output) and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    if child.poll() is None:
        child.send_signal(signum)
    _, err = child.communicate(timeout=120)
    return child.returncode, err


@pytest.mark.parametrize("command, signum, delay", [
    ("convert-awd-lstm", "SIGTERM", 0.0),
    ("convert-awd-lstm", "SIGHUP", 0.1),
    ("convert-elmo", "SIGTERM", 0.05),
    ("export", "SIGTERM", 0.5),
    ("embed", "SIGTERM", 0.0),
    ("ulmfit", "SIGTERM", 0.0),  # while the data is encoded / the first stage starts
    ("ulmfit", "SIGTERM", 0.6),  # in the training (the whole run takes ~2 s)
    ("convert-elmoformanylangs", "SIGTERM", 0.05),
    ("quickstart", "SIGTERM", 3.0),  # in the ELMo or the ULMFiT stage (the export's own case is above)
])
def test_signal_midway_leaves_nothing_and_the_rerun_succeeds(tmp_path, capsys, command, signum, delay):
    import signal

    if command == "export":
        pytest.importorskip("onnxruntime")
        folder = tiny_awd_lstm_folder(tmp_path / "lm")
        output = tmp_path / "onnx"
        argv = ["export", str(folder), str(output)]
    elif command == "embed":
        folder, argv, output = embed_run(tmp_path, lines=600)
        argv += ["--batch-size", "4"]
    elif command == "convert-elmoformanylangs":
        model_dir = Path(__file__).resolve().parents[1].parent / "shared/fixtures/elmo/elmoformanylangs/model"
        if not model_dir.is_dir():
            pytest.skip(f"the ELMoForManyLangs fixture is not at {model_dir} (../shared is beside the repository)")
        output = tmp_path / "out"
        argv = ["convert-elmoformanylangs", "--model-dir", str(model_dir), "--output", str(output)]
    elif command in ("ulmfit", "quickstart"):
        output = tmp_path / "out"
        argv = (ulmfit_argv if command == "ulmfit" else quickstart_argv)(tmp_path, output)
    elif command == "convert-elmo":
        options_path, weights_path = write_elmo_files(tmp_path / "in")
        output = tmp_path / "out"
        argv = ["convert-elmo", "--options", str(options_path), "--weights", str(weights_path), "--output",
                str(output)]
    else:
        output = tmp_path / "out"
        argv = awd_lstm_convert_argv(tmp_path, output)
    sig = getattr(signal, signum)
    code, err = run_and_stop(argv, output, sig, delay, tmp_path)
    if output.exists():  # finished before the signal came (or while it exited): then the output is whole
        assert code in (0, -sig) and partials(output) == [], err
        last_file = {"ulmfit": "metrics.json", "quickstart": "ulmfit/classifier/README.md"}.get(command, "README.md")
        assert (output / last_file).is_file() if output.is_dir() else h5py.is_hdf5(output)
        pytest.skip(f"{command} finished within {delay} s of its partial output appearing, before {signum}")
    assert code == 128 + sig, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].endswith(f"stopped by {signum}"), err
    assert not output.exists() and partials(output) == [], (sorted(p.name for p in tmp_path.iterdir()), err)
    capsys.readouterr()
    assert cli_main(argv) == 0, capsys.readouterr().err
    assert output.exists() and partials(output) == []
    for card in (output.rglob("README.md") if output.is_dir() else ()):  # the snippets load the final folders
        text = card.read_text(encoding="utf-8")
        assert PARTIAL_MARK not in text and str(card.parent) in text, card


def ulmfit_argv(tmp_path: Path, output: Path) -> list[str]:
    """A tiny ``hf-elmo ulmfit`` run (a few seconds) on a labelled CSV file, saved under ``output``."""
    import csv
    import random

    rng = random.Random(0)
    train = tmp_path / "train.csv"
    with open(train, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(80):
            words = ["red", "blue"][i % 2]
            writer.writerow([" ".join(rng.choice([words, "a", "the", "of"]) for _ in range(8)), words])
    return ["ulmfit", "--train", str(train), "--scratch", "--emb-size", "16", "--hidden-size", "24",
            "--num-layers", "2", "--min-freq", "1", "--bptt", "10", "--batch-size", "16", "--lm-epochs", "2",
            "--classifier-epochs", "4", "--threads", "1", "--output", str(output)]


def quickstart_argv(tmp_path: Path, output: Path) -> list[str]:
    """A tiny quickstart (its ELMo and ULMFiT stages; ~8 s), its folders under ``output``."""
    return ["quickstart", "--stages", "elmo,ulmfit", "--limit", "400", "--elmo-steps", "3",
            "--ulmfit-lm-epochs", "1",
            "--ulmfit-classifier-epochs", "1", "--ulmfit-emb-size", "16", "--ulmfit-hidden-size", "24",
            "--threads", "1", "--output", str(output)]


def test_ulmfit_output_is_checked_before_the_run(tmp_path, capsys):
    output = tmp_path / "out"
    (output / "classifier").mkdir(parents=True)  # a previous result
    err = cli_error(capsys, ulmfit_argv(tmp_path, output))
    assert f"output directory {output} is not empty" in err
    assert [p.name for p in output.iterdir()] == ["classifier"] and partials(output) == []


def test_a_run_that_finds_its_output_taken_at_the_end_refuses_and_leaves_it(tmp_path, capsys, monkeypatch):
    """Two conversions to one output: the one that finishes second says so and leaves the first one's result."""
    import hf_elmo.conversion.fastai_awd_lstm as fastai_awd_lstm

    output = tmp_path / "out"
    verify = fastai_awd_lstm.verify_saved_folder

    def other_run_finishes_first(*args, **kwargs):
        result = verify(*args, **kwargs)
        output.mkdir()
        (output / "README.md").write_text("the other run's result")
        return result

    monkeypatch.setattr(fastai_awd_lstm, "verify_saved_folder", other_run_finishes_first)
    err = cli_error(capsys, awd_lstm_convert_argv(tmp_path, output))
    assert f"{output} appeared while the converted checkpoint was being written (another run?)" in err
    assert [p.name for p in output.iterdir()] == ["README.md"] and partials(output) == []
    assert (output / "README.md").read_text() == "the other run's result"


def test_ulmfit_refuses_a_pretrained_folder_its_model_does_not_fill(tmp_path):
    """A --pretrained folder whose config.json was edited (here: one layer fewer than its weights hold) stops the
    recipe, naming the folder, instead of fine-tuning a different model."""
    from hf_elmo.model_folders import ModelFolderError
    from hf_elmo.training.ulmfit import run_ulmfit

    folder = tiny_awd_lstm_folder(tmp_path / "lm")
    config = json.loads((folder / "config.json").read_text())
    config["num_layers"] -= 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match=re.escape(str(folder))):
        run_ulmfit(["word1 word2", "word3 word4"], [0, 1], pretrained=folder)


def test_embed_checks_its_output_before_running(tmp_path, capsys):
    (tmp_path / "in.txt").write_text("a sentence\n", encoding="utf-8")
    before = (tmp_path / "in.txt").read_bytes()
    err = cli_error(capsys, ["embed", "./no-such-model", str(tmp_path / "in.txt"), str(tmp_path / "in.txt")])
    assert "is the input file: it would be overwritten" in err and (tmp_path / "in.txt").read_bytes() == before
    (tmp_path / "adir").mkdir()
    err = cli_error(capsys, ["embed", "./no-such-model", str(tmp_path / "in.txt"), str(tmp_path / "adir")])
    assert "adir is a directory" in err
    err = cli_error(capsys, ["embed", "./no-such-model", str(tmp_path / "in.txt"), str(tmp_path / "out.hdf5")])
    assert "./no-such-model: no such folder" in err


def test_embed_lines_end_at_newlines_only(tmp_path):
    from hf_elmo.commands.embed import read_sentences

    path = tmp_path / "in.txt"
    path.write_bytes(b"one\rtwo\r\nthree\nfour")
    assert read_sentences(path) == ["one\rtwo", "three", "four"]


def test_concurrent_embed_runs_have_their_own_partial_files(tmp_path):
    from hf_elmo import ElmoModel, ElmoTokenizer
    from hf_elmo.commands.embed import embed_to_hdf5

    output = tmp_path / "out.hdf5"
    other = tmp_path / f".out.hdf5.partial-{os.getppid()}-other"  # another live run's file
    other.write_bytes(b"in progress")
    model = ElmoModel(ElmoConfig.from_options_dict(ELMO_OPTIONS)).eval()
    assert embed_to_hdf5(model, ElmoTokenizer(), ["a b", "c"], output, progress=False) == 2
    assert other.read_bytes() == b"in progress" and h5py.is_hdf5(output)
    assert partials(output) == [other.name]
