"""Converting an original ELMo (options.json + HDF5 weights) into a transformers folder, and what that folder holds.

The reference is the original TensorFlow implementation's output on its own test model (../shared fixture), so
these tests check the whole path a user takes: convert, reload with the Auto classes, get TensorFlow's numbers.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModel, AutoModelForPreTraining, AutoTokenizer

from hf_elmo import ElmoConfig
from hf_elmo.commands.convert import main as convert_main
from hf_elmo.conversion.allennlp_elmo import convert_allennlp_elmo, published_size
from conftest import CONVERTED_ELMO_FILES

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT.parent / "shared/fixtures/elmo/bilm-tf"
MAKE_WEIGHTS = ROOT.parent / "shared/tools/make_elmo_weights.py"
SCRIPT = ROOT / "conversion/convert_allennlp_elmo.py"

pytestmark = pytest.mark.skipif(
    not (FIXTURE / "lm_weights.hdf5").is_file(),
    reason=f"the bilm-tf ELMo fixture is not at {FIXTURE} (../shared is not part of a fresh clone)",
)

EXPECTED_FILES = set(CONVERTED_ELMO_FILES)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("conv") / "elmo"
    return convert_allennlp_elmo(FIXTURE / "options.json", FIXTURE / "lm_weights.hdf5", out)


@pytest.fixture(scope="module")
def converted_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("conv") / "elmo-lm"
    return convert_allennlp_elmo(
        FIXTURE / "options.json", FIXTURE / "lm_weights.hdf5", out, vocab=FIXTURE / "vocab_test.txt"
    )


def tensorflow_first_batch() -> tuple[list[list[str]], list[np.ndarray]]:
    """The first batch the original ran (sentence 0 of each of the 3 lists, from zero states) and its top layer,
    forward and backward concatenated: (n_words, 2 * projection_dim) each."""
    sentences = json.loads((FIXTURE / "lm_embeddings_sentences.json").read_text(encoding="utf-8"))
    words, tops = [], []
    for k in range(3):
        words.append(sentences[k][0].split(" "))
        with h5py.File(FIXTURE / f"lm_embeddings_{k}.hdf5", "r") as f:
            ref = f["0"][...]
        tops.append(np.concatenate([ref[0], ref[1]], axis=-1))
    return words, tops


def top_layer_without_boundaries(folder: Path, words: list[list[str]]) -> list[np.ndarray]:
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    enc = tokenizer(words, is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        top = model(**enc).hidden_states[-1]
    out = []
    for row in range(len(words)):
        positions = [p for p, w in enumerate(enc.word_ids(row)) if w is not None]
        out.append(top[row, positions].numpy())
    return out


def test_reloaded_model_matches_tensorflow(converted: Path) -> None:
    words, want = tensorflow_first_batch()
    got = top_layer_without_boundaries(converted, words)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"sentence list {k}"
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=0, err_msg=f"lm_embeddings_{k}.hdf5 dataset '0'")


def test_folder_contents(converted: Path) -> None:
    assert {p.name for p in converted.iterdir()} == EXPECTED_FILES
    assert (converted / "elmo_options.json").read_bytes() == (FIXTURE / "options.json").read_bytes()
    config = json.loads((converted / "config.json").read_text())
    assert config["architectures"] == ["ElmoModel"]
    assert config["vocab_size"] == 0
    assert config["auto_map"]["AutoModel"] == "modeling_elmo.ElmoModel"
    assert config["auto_map"]["AutoModelForTokenClassification"] == "modeling_elmo.ElmoForTokenClassification"
    assert "AutoModelForPreTraining" not in config["auto_map"]  # no vocabulary, no LM head
    tokenizer_config = json.loads((converted / "tokenizer_config.json").read_text())
    assert tokenizer_config["auto_map"]["AutoTokenizer"][0] == "tokenization_elmo.ElmoTokenizer"


def test_language_model_conversion(converted_lm: Path, converted: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(converted_lm, trust_remote_code=True)
    words = [w.strip() for w in (FIXTURE / "vocab_test.txt").read_text(encoding="utf-8").splitlines() if w.strip()]
    assert tokenizer.vocab_size >= len(set(words)) and tokenizer.get_vocab()[words[0]] == 0
    config = json.loads((converted_lm / "config.json").read_text())
    assert config["architectures"] == ["ElmoForLanguageModeling"]
    assert config["vocab_size"] == tokenizer.vocab_size
    assert config["auto_map"]["AutoModelForPreTraining"] == "modeling_elmo.ElmoForLanguageModeling"
    lm = AutoModelForPreTraining.from_pretrained(converted_lm, trust_remote_code=True).eval()
    assert lm.softmax.weight.shape == (tokenizer.vocab_size, 16)
    # The biLM is the same as without a vocabulary (and so still TensorFlow's), whichever class reads it.
    words_tf, want = tensorflow_first_batch()
    for g, w in zip(top_layer_without_boundaries(converted_lm, words_tf), want):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=0)
    enc = tokenizer(["the cat"], return_tensors="pt", return_token_ids=True)
    with torch.no_grad():
        out = lm(input_ids=enc["input_ids"], labels=enc["token_ids"])
    assert out.logits.shape == (1, 4, 2, tokenizer.vocab_size) and torch.isfinite(out.loss)
    assert "**freshly initialised**" in (converted_lm / "README.md").read_text(encoding="utf-8")


def test_model_card(converted: Path) -> None:
    card = ModelCard.load(converted / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers"
    assert data["license"] == "apache-2.0"
    assert data["language"] == "en"
    assert data["pipeline_tag"] == "feature-extraction"
    assert {"elmo", "feature-extraction", "hf-elmo"} <= set(data["tags"])
    assert "datasets" not in data  # a custom size: its training data is unknown
    text = card.text
    for needle in ("## Architecture", "## Usage", "## Conversion", "## Parity", "@inproceedings{peters-etal-2018-deep",
                   "lm_weights.hdf5", "options.json", "cell size 64, projection 16", "custom size"):
        assert needle in text, needle
    sha = re.search(r"sha256 `([0-9a-f]{64})`", text)
    assert sha and sha.group(1) == hashlib.sha256((FIXTURE / "lm_weights.hdf5").read_bytes()).hexdigest()


def test_model_card_usage_snippet_runs(converted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The card's snippet is the exact code for this checkpoint: it must run as written."""
    text = (converted / "README.md").read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert json.dumps(str(converted)) in snippet and "trust_remote_code=True" in snippet and "word_ids(" in snippet
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == namespace["words"]
    assert len(namespace["vectors"]) == len(namespace["words"])


def test_published_size_detection() -> None:
    assert published_size(ElmoConfig()) == "original"
    assert published_size(ElmoConfig(), "elmo_2x4096_512_2048cnn_2xhighway_5.5B_weights.hdf5") == "original 5.5B"
    assert published_size(ElmoConfig(lstm_dim=2048, projection_dim=256, n_highway=1)) == "medium"
    assert published_size(ElmoConfig(lstm_dim=1024, projection_dim=128, n_highway=1)) == "small"
    assert published_size(ElmoConfig(lstm_dim=1024, projection_dim=128, n_highway=2)) == "custom"
    assert published_size(ElmoConfig(n_layers=3)) == "custom"
    assert published_size(ElmoConfig.from_options_json(FIXTURE / "options.json")) == "custom"


@pytest.mark.skipif(not MAKE_WEIGHTS.is_file(), reason=f"{MAKE_WEIGHTS} not found")
def test_published_small_size_is_named_in_the_card(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(MAKE_WEIGHTS), "small", str(tmp_path / "src")], check=True, timeout=60)
    out = convert_allennlp_elmo(tmp_path / "src/options.json", tmp_path / "src/weights.hdf5", tmp_path / "out")
    card = ModelCard.load(out / "README.md")
    assert card.data.to_dict()["datasets"] == ["1b-word-benchmark"]
    assert "elmo-small" in card.data.tags
    assert card.text.lstrip().startswith("# ELMo (small)")
    assert "1B Word Benchmark" in card.text and "cell size 1024, projection 128" in card.text


def test_conversion_script_reports_a_missing_weight_file_on_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_weights.hdf5"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--options", str(FIXTURE / "options.json"), "--weights", str(missing),
         "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"convert_allennlp_elmo.py: error: ELMo weight file not found: {missing}"]
    assert not (tmp_path / "out").exists()


def test_mismatched_weight_file_is_one_line_naming_datasets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A real HDF5 file, but not ELMo weights: every expected dataset is missing.
    code = convert_main(["--options", str(FIXTURE / "options.json"), "--weights", str(FIXTURE / "lm_embeddings_0.hdf5"),
                         "--output", str(tmp_path / "out")], prog="convert")
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("convert: error: ") and "missing dataset 'char_embed' (expected shape (261, 4))" in err
    assert "CNN/W_cnn_0" in err and "; " in err


def test_cli_convert_matches_the_function(tmp_path: Path, converted_lm: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from hf_elmo.cli import main

    out = tmp_path / "cli"
    assert main(["convert-elmo", "--options", str(FIXTURE / "options.json"), "--weights",
                 str(FIXTURE / "lm_weights.hdf5"), "--vocab", str(FIXTURE / "vocab_test.txt"),
                 "--output", str(out)]) == 0
    assert f"Wrote the converted ELMo to {out}" in capsys.readouterr().out
    # Same function, and the fresh LM softmax is seeded: the same checkpoint, byte for byte.
    assert (out / "model.safetensors").read_bytes() == (converted_lm / "model.safetensors").read_bytes()
    assert (out / "vocab.txt").read_bytes() == (converted_lm / "vocab.txt").read_bytes()


def test_bad_arguments_are_rejected(tmp_path: Path, converted: Path) -> None:
    args = (FIXTURE / "options.json", FIXTURE / "lm_weights.hdf5")
    with pytest.raises(ValueError, match="not empty"):
        convert_allennlp_elmo(*args, converted)
    with pytest.raises(ValueError, match="push_to_hub"):
        convert_allennlp_elmo(*args, tmp_path / "x", revision="v1")
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        convert_allennlp_elmo(*args, tmp_path / "x", vocab=tmp_path / "missing.txt")
    assert not (tmp_path / "x").exists()



def test_cli_token_cache_is_saved_and_gives_tensorflows_numbers(tmp_path: Path, converted: Path) -> None:
    """`convert-elmo --token-cache WORDS`: the folder holds the cache of those words, from_pretrained loads it, and
    the cached path (the words of the first batch, some in the cache, some not) still gives TensorFlow's numbers
    and the uncached folder's outputs."""
    from hf_elmo.cli import main

    words, tops = tensorflow_first_batch()
    cached = sorted({w for sentence in words for w in sentence})[::2]  # half of the batch's words
    (tmp_path / "words.txt").write_text("\n".join(cached) + "\n\n", encoding="utf-8")
    out = tmp_path / "cached"
    assert main(["convert-elmo", "--options", str(FIXTURE / "options.json"), "--weights",
                 str(FIXTURE / "lm_weights.hdf5"), "--token-cache", str(tmp_path / "words.txt"),
                 "--token-cache-input-products", "--output", str(out)]) == 0
    assert (out / "token_embeddings.safetensors").is_file()
    model = AutoModel.from_pretrained(out, trust_remote_code=True)
    assert len(model.token_cache) == len(cached) + 2 and model.token_cache.gates is not None
    for got, want in zip(top_layer_without_boundaries(out, words), tops, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    for got, want in zip(top_layer_without_boundaries(out, words), top_layer_without_boundaries(converted, words)):
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("content, fragment", [
    (b"the cat\nsat\n", "a word list is one word a line; 1 lines hold several, e.g. 'the cat'"),
    (b"\n \n", "no words"),
    (b"caf\xe9\n", "not UTF-8 text (byte 3)"),
])
def test_bad_token_cache_word_lists_are_named(tmp_path: Path, content: bytes, fragment: str) -> None:
    (tmp_path / "words.txt").write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'words.txt'}: ") + ".*" + re.escape(fragment)):
        convert_allennlp_elmo(FIXTURE / "options.json", FIXTURE / "lm_weights.hdf5", tmp_path / "out",
                              token_cache=tmp_path / "words.txt")
    with pytest.raises(ValueError, match="token_cache_input_products applies with a token_cache"):
        convert_allennlp_elmo(FIXTURE / "options.json", FIXTURE / "lm_weights.hdf5", tmp_path / "out",
                              token_cache_input_products=True)
    assert not (tmp_path / "out").exists()
