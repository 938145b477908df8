"""`hf-elmo embed`: sentences → HDF5 in the layout of AllenNLP's `allennlp elmo` command.

Run on the converted bilm-tf test model, in-process through ``hf_elmo.cli.main`` and once as the installed console
script, and checked against the model's own output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hf_elmo import ElmoModel, ElmoTokenizer
from hf_elmo.cli import main
from hf_elmo.conversion.allennlp_elmo import convert_allennlp_elmo

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared/fixtures/elmo/bilm-tf"

pytestmark = pytest.mark.skipif(
    not (FIXTURE / "lm_weights.hdf5").is_file(),
    reason=f"the bilm-tf ELMo fixture is not at {FIXTURE} (../shared is not part of a fresh clone)",
)

SENTENCES = [
    "The quick brown fox didn't jump over the lazy dog.",
    "Zoë's café served crème brûlée (12.50 €) in Kraków!",
    "Москва — столица России.",
    "ELMo",
    "東京 は 日本 の 首都 です 。",
]
N_LAYERS, DIM = 2, 32  # the fixture: 2 biLSTM layers, projection 16 per direction


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("embed") / "elmo"
    return convert_allennlp_elmo(FIXTURE / "options.json", FIXTURE / "lm_weights.hdf5", out)


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> tuple[ElmoModel, ElmoTokenizer]:
    return ElmoModel.from_pretrained(model_dir).eval(), ElmoTokenizer.from_pretrained(model_dir)


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    path = tmp_path / "sentences.txt"
    path.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    return path


def layers_of(reference: tuple[ElmoModel, ElmoTokenizer], sentence: str, pre_tokenized: bool = False) -> np.ndarray:
    """(n_layers + 1, n_words, 2P) of one sentence run alone, without its boundary tokens."""
    model, tokenizer = reference
    words = sentence.split() if pre_tokenized else tokenizer.tokenize(sentence)
    enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        layers = torch.stack(model(**enc).hidden_states)[:, 0]
    return layers[:, 1:-1].numpy()


def read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    with h5py.File(path, "r") as f:
        arrays = {k: f[k][...] for k in f if k != "sentence_to_index"}
        assert f["sentence_to_index"].shape == (1,)
        index = json.loads(f["sentence_to_index"].asstr()[0])
    return arrays, index


@pytest.mark.parametrize("mode", ["all", "top", "average"])
def test_embed_layers(mode: str, model_dir: Path, input_file: Path, tmp_path: Path, reference) -> None:
    out = tmp_path / f"{mode}.hdf5"
    assert main(["embed", str(model_dir), str(input_file), str(out), "--layers", mode, "--batch-size", "2"]) == 0
    arrays, index = read(out)
    assert set(arrays) == {str(i) for i in range(len(SENTENCES))}
    assert index == {sentence: str(i) for i, sentence in enumerate(SENTENCES)}
    for i, sentence in enumerate(SENTENCES):
        want = layers_of(reference, sentence)  # (3, n_words, 32)
        n_words = want.shape[1]
        got = arrays[str(i)]
        assert got.dtype == np.float32
        if mode == "all":
            assert got.shape == (N_LAYERS + 1, n_words, DIM)
            np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        elif mode == "top":
            assert got.shape == (n_words, DIM)
            np.testing.assert_allclose(got, want[-1], atol=1e-5, rtol=0)
        else:
            assert got.shape == (n_words, DIM)
            np.testing.assert_allclose(got, want.mean(axis=0), atol=1e-5, rtol=0)


def test_embed_pre_tokenized_splits_on_whitespace_only(model_dir: Path, input_file: Path, tmp_path: Path,
                                                       reference) -> None:
    out = tmp_path / "pre.hdf5"
    assert main(["embed", str(model_dir), str(input_file), str(out), "--layers", "top", "--pre-tokenized"]) == 0
    arrays, _ = read(out)
    for i, sentence in enumerate(SENTENCES):
        assert arrays[str(i)].shape == (len(sentence.split()), DIM)
        np.testing.assert_allclose(arrays[str(i)], layers_of(reference, sentence, pre_tokenized=True)[-1],
                                   atol=1e-5, rtol=0)
    # The tokenizer splits differently from whitespace here ("dog." → "dog", "."), so the two modes differ.
    _, tokenizer = reference
    assert len(tokenizer.tokenize(SENTENCES[0])) > len(SENTENCES[0].split())


def test_embed_failing_midway_leaves_no_partial_file(model_dir: Path, tmp_path: Path, reference,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that fails after some batches were written leaves neither a partial output nor its temporary file,
    and an older output at that path is left as it was."""
    from hf_elmo.commands import embed

    model, tokenizer = reference
    out = tmp_path / "out.hdf5"
    out.write_bytes(b"an older output")
    calls = {"n": 0}
    original = embed.select_layers

    def failing_select(layers, mode):
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("disk full (simulated)")
        return original(layers, mode)

    monkeypatch.setattr(embed, "select_layers", failing_select)
    with pytest.raises(RuntimeError, match="disk full"):
        embed.embed_to_hdf5(model, tokenizer, SENTENCES, out, batch_size=1, progress=False)
    assert out.read_bytes() == b"an older output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.hdf5"]


def test_embed_console_script(model_dir: Path, input_file: Path, tmp_path: Path, reference) -> None:
    """The installed `hf-elmo` entry point, in a fresh process (batch of 1 here: results do not depend on batching)."""
    script = shutil.which("hf-elmo", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "hf_elmo.cli"]
    out = tmp_path / "script.hdf5"
    proc = subprocess.run(command + ["embed", str(model_dir), str(input_file), str(out), "--layers", "top",
                                     "--batch-size", "1", "--device", "cpu"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"of {len(SENTENCES)} sentences to {out}" in proc.stdout
    arrays, index = read(out)
    assert index[SENTENCES[2]] == "2"
    for i, sentence in enumerate(SENTENCES):
        np.testing.assert_allclose(arrays[str(i)], layers_of(reference, sentence)[-1], atol=1e-5, rtol=0)


def test_embed_bfloat16_writes_float32_close_to_float32(model_dir: Path, input_file: Path, tmp_path: Path,
                                                      reference) -> None:
    out = tmp_path / "bf16.hdf5"
    assert main(["embed", str(model_dir), str(input_file), str(out), "--layers", "top", "--dtype", "bfloat16"]) == 0
    arrays, _ = read(out)
    for i, sentence in enumerate(SENTENCES):
        want = layers_of(reference, sentence)[-1]
        assert arrays[str(i)].dtype == np.float32 and arrays[str(i)].shape == want.shape
        np.testing.assert_allclose(arrays[str(i)], want, atol=0.05, rtol=0)  # measured: ~0.006


@pytest.mark.parametrize("empty_line", ["", "   \t"])
def test_embed_rejects_empty_lines(empty_line: str, model_dir: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "with_empty.txt"
    path.write_text(f"{SENTENCES[0]}\n{SENTENCES[1]}\n{empty_line}\n{SENTENCES[3]}\n", encoding="utf-8")
    out = tmp_path / "never.hdf5"
    assert main(["embed", str(model_dir), str(path), str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("hf-elmo embed: error: ") and "line number 3" in err and str(path) in err
    assert not out.exists()


def test_embed_usage_errors(model_dir: Path, input_file: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["embed", str(model_dir), str(tmp_path / "missing.txt"), str(tmp_path / "o.hdf5")]) == 1
    assert "input file not found" in capsys.readouterr().err
    assert main(["embed", str(model_dir), str(input_file), str(tmp_path / "o.hdf5"), "--device", "nonsense"]) == 1
    assert "unknown device 'nonsense'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse: usage errors exit with 2
        main(["embed", str(model_dir), str(input_file), str(tmp_path / "o.hdf5"), "--layers", "bottom"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main(["embed", str(model_dir), str(input_file), str(tmp_path / "o.hdf5"), "--batch-size", "0"])
