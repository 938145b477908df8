"""Hostile and careless input files (issue 14): every crafted file is refused with one line naming the file and the
dataset, key or option, before anything large is allocated, nothing is read from elsewhere and nothing is left in
the output location. The files are tiny and made in each test's tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from hf_elmo import ElmoConfig
from hf_elmo.cli import main as cli_main
from hf_elmo.conversion.allennlp_elmo import ElmoWeightsError, expected_datasets, read_elmo_hdf5

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
    """Runs ``hf-elmo ARGV``, which must fail with one line on stderr and leave ``output`` absent; returns it."""
    code = cli_main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
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
