"""ELMoForManyLangs models converted into ElmoModel folders, against the original package's outputs.

The reference is ../shared/fixtures/elmo/elmoformanylangs/ (its README states the original's facts): a small random
model in the package's format, ``Embedder.sents2elmo`` for every ``output_layer`` (each on a fresh ``Embedder``), the
ids ``create_one_batch`` fed the model (``inputs.npz``) and a second, stateful call.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

from awd_lstm_testing import TF457_PYTHON
from clean_process import BLOCK_HF_ELMO, run_child
from conftest import FIXTURES, run_card_snippet
from hf_elmo.cli import main as cli_main
from hf_elmo.conversion.elmoformanylangs import (ElmoForManyLangsError, convert_elmoformanylangs, read_model_dir,
                                                 select_output_layer, sentence_layers, sents2elmo)
from hf_elmo.models.elmo import ElmoModel
from hf_elmo.models.elmo.tokenization_elmoformanylangs import (ElmoForManyLangsTokenizer, LexiconError, read_lexicon,
                                                               write_lexicon)
from test_hub_cache_load import lay_out_as_hub_cache

EFML = FIXTURES / "elmo" / "elmoformanylangs"
pytestmark = pytest.mark.skipif(not (EFML / "model").is_dir(), reason=f"the ELMoForManyLangs fixture is not at {EFML} "
                                "(../shared is beside the repository, not part of a fresh clone)")
ATOL = 1e-5
# output_layer → the fixture's tag
LAYERS = {-1: "avg", 0: "0", 1: "1", 2: "2", -2: "all"}
REPO_ID = "user/elmoformanylangs-tiny"


def sentences() -> list[list[str]]:
    return json.loads((EFML / "sentences.json").read_text(encoding="utf-8"))["sentences"]


def reference(output_layer: int) -> list[np.ndarray]:
    with np.load(EFML / "sents2elmo.npz") as data:
        return [data[f"layer_{LAYERS[output_layer]}_sent{i}"] for i in range(len(sentences()))]


def worst(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    assert [g.shape for g in got] == [w.shape for w in want]
    return max(float(np.abs(g - w).max()) if g.size else 0.0 for g, w in zip(got, want))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("efml") / "converted"
    convert_elmoformanylangs(EFML / "model", out, language="en")
    return out


@pytest.fixture(scope="module")
def loaded(folder):
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    return model, tokenizer


def test_folder_loads_as_remote_code(folder, loaded):
    model, tokenizer = loaded
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    assert type(model).__name__ == "ElmoModel"  # hf_elmo's own here (registered); remote code: the clean process
    assert type(tokenizer).__name__ == "ElmoForManyLangsTokenizer"
    assert (config.char_vocabulary, config.word_embedding_dim, config.n_characters) == ("lexicon", 16, 202)
    assert {"word.dic", "char.dic", "tokenization_elmoformanylangs.py", "elmoformanylangs_config.json",
            "README.md"} <= {p.name for p in folder.iterdir()}
    card = (folder / "README.md").read_text()
    assert "ELMoForManyLangs" in card and "language: en" in card and "sents2elmo" in card


def test_card_snippet_gives_sents2elmo(folder, loaded):
    namespace = run_card_snippet((folder / "README.md").read_text())
    model, tokenizer = loaded
    last = namespace["sentences"][-1]
    want = sents2elmo(model, tokenizer, [last], output_layer=-2)[0]
    assert float(np.abs(namespace["every_layer"].numpy() - want).max()) <= 1e-6
    assert float(np.abs(namespace["average"].numpy() - want.mean(0)).max()) <= 1e-6


def test_inputs_are_create_one_batch_ids(loaded):
    """The fixture's batch (rows in its length-sorted order) encodes to the same word ids, character ids and mask,
    padding included."""
    _, tokenizer = loaded
    with np.load(EFML / "inputs.npz") as data:
        inputs = dict(data)
    batch = [sentences()[i] for i in inputs["sentence_index"]]
    enc = tokenizer(batch, is_split_into_words=True, padding=True, return_tensors="np")
    np.testing.assert_array_equal(enc["input_ids"], inputs["char_ids"])
    np.testing.assert_array_equal(enc["token_ids"], inputs["word_ids"])
    np.testing.assert_array_equal(enc["attention_mask"], inputs["mask"])
    np.testing.assert_array_equal(enc["attention_mask"].sum(1), inputs["lengths"])


@pytest.mark.parametrize("output_layer", list(LAYERS))
def test_sents2elmo_every_output_layer(loaded, output_layer):
    model, tokenizer = loaded
    got = sents2elmo(model, tokenizer, sentences(), output_layer=output_layer)
    assert worst(got, reference(output_layer)) <= ATOL


def test_last_hidden_state_is_the_average(loaded):
    """The scalar mix of a converted folder starts as the plain average: sents2elmo's output_layer=-1."""
    model, tokenizer = loaded
    enc = tokenizer(sentences(), is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc)
    mixed = [out.last_hidden_state[row, [p for p, w in enumerate(enc.word_ids(row)) if w is not None]].numpy()
             for row in range(len(sentences()))]
    assert worst(mixed, reference(-1)) <= ATOL


def test_padded_batch_equals_each_sentence_alone(loaded):
    model, tokenizer = loaded
    alone = sents2elmo(model, tokenizer, sentences(), output_layer=-2, batch_size=1)
    batched = sents2elmo(model, tokenizer, sentences(), output_layer=-2)
    assert worst(alone, batched) <= 5e-6
    enc = tokenizer(sentences(), is_split_into_words=True, padding=True, padding_side="left", return_tensors="pt")
    with torch.no_grad():
        left = sentence_layers(model(**enc).hidden_states, enc)
    assert worst(left, batched) <= 5e-6


def test_no_drift_between_calls_and_the_stateful_original_on_request(loaded):
    """Stateless by default: a second call gives the first call's arrays (the original's second call differs by
    2.7). Passing the state back reproduces the original's second call on the same Embedder."""
    model, tokenizer = loaded
    first = sents2elmo(model, tokenizer, sentences(), output_layer=-2)
    assert worst(sents2elmo(model, tokenizer, sentences(), output_layer=-2), first) == 0.0
    order = np.load(EFML / "inputs.npz")["sentence_index"]
    enc = tokenizer([sentences()[i] for i in order], is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        state = model(**enc, use_cache=True).state
        second = sentence_layers(model(**enc, state=state).hidden_states, enc)
    with np.load(EFML / "sents2elmo_second_call.npz") as data:
        want = [data[f"layer_all_sent{i}"] for i in order]
    assert worst(second, want) <= ATOL
    assert worst(second, [first[i] for i in order]) > 0.1


def test_output_layer_semantics_and_empty_sentence(loaded):
    model, tokenizer = loaded
    layers = np.arange(3 * 2 * 4, dtype=np.float32).reshape(3, 2, 4)
    np.testing.assert_array_equal(select_output_layer(layers, -3), layers[0])
    with pytest.raises(IndexError, match="output_layer 3"):
        select_output_layer(layers, 3)
    got = {k: sents2elmo(model, tokenizer, [[], ["Hello"]], output_layer=k) for k in LAYERS}
    assert {k: v[0].shape for k, v in got.items()} == {-1: (0, 64), 0: (0, 64), 1: (0, 64), 2: (0, 64),
                                                       -2: (3, 0, 64)}
    hello = sentences().index(["Hello"])
    assert float(np.abs(got[-2][1] - reference(-2)[hello]).max()) <= ATOL


def test_save_load_round_trip(loaded, tmp_path):
    model, tokenizer = loaded
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    again_model = AutoModel.from_pretrained(tmp_path, trust_remote_code=True).eval()
    again_tokenizer = AutoTokenizer.from_pretrained(tmp_path, trust_remote_code=True)
    assert again_tokenizer.vocab == tokenizer.vocab and again_tokenizer.char_vocab == tokenizer.char_vocab
    got = sents2elmo(again_model, again_tokenizer, sentences(), output_layer=-2)
    assert worst(got, sents2elmo(model, tokenizer, sentences(), output_layer=-2)) == 0.0


def test_tokenizer_words_and_decoding(loaded):
    _, tokenizer = loaded
    long_word = sentences()[6][0]
    enc = tokenizer(["a\u3000b", "<eos>", long_word, "😀"], is_split_into_words=True)
    assert enc["token_ids"][0] == tokenizer.vocab["<bos>"] and enc["token_ids"][-1] == tokenizer.vocab["<eos>"]
    assert tokenizer.decode(enc["input_ids"]) == f"<bos> a\u3000b <eos> {long_word[:48]} <oov> <eos>"
    # a literal <eos> word has the boundary's very row (as in the original): skipped with the boundaries
    assert tokenizer.decode(enc["input_ids"], skip_special_tokens=True) == f"a\u3000b {long_word[:48]} <oov>"
    c = tokenizer.char_vocab
    assert enc["input_ids"][2][:3] == [c["<eow>"], c["<eos>"], c["<bow>"]]  # the swapped markers, as trained
    assert tokenizer.tokenize("two  words\n") == ["two", "words"]
    assert tokenizer.convert_tokens_to_ids(["the", "nonexistent-word"]) == [tokenizer.vocab["the"], 0]


def test_lexicon_reading_rules(tmp_path):
    path = tmp_path / "char.dic"
    path.write_text("a\t0\n\u3000\t1\nb\t2\n\n\xa0\t3\n", encoding="utf-8")
    assert read_lexicon(path) == {"a": 0, "\u3000": 3, "b": 2}  # whitespace keys stripped: U+3000, the last wins
    write_lexicon({"x ": 0, "\u3000": 1}, path)
    assert read_lexicon(path) == {"x ": 0, "\u3000": 1}
    path.write_text("a\t0\nb\tc\t1\n", encoding="utf-8")
    with pytest.raises(LexiconError, match=r"char\.dic, line 2: expected 'token<TAB>id'"):
        read_lexicon(path)


def test_embed_command_on_a_converted_folder(folder, tmp_path):
    import h5py

    kept = [i for i, s in enumerate(sentences()) if not any(c.isspace() for w in s for c in w)]
    (tmp_path / "in.txt").write_text("".join(" ".join(sentences()[i]) + "\n" for i in kept), encoding="utf-8")
    assert cli_main(["embed", str(folder), str(tmp_path / "in.txt"), str(tmp_path / "out.hdf5"),
                     "--pre-tokenized", "--batch-size", "3"]) == 0
    want = reference(-2)
    with h5py.File(tmp_path / "out.hdf5", "r") as f:
        got = [f[str(line)][...] for line in range(len(kept))]
    assert worst(got, [want[i] for i in kept]) <= ATOL


# ---- bad model folders: one line naming the file ------------------------------------------------------------------
def broken(tmp_path: Path, edit) -> Path:
    model_dir = tmp_path / "model"
    shutil.copytree(EFML / "model", model_dir)
    edit(model_dir)
    return model_dir


def resave(name: str, change):
    def edit(model_dir: Path) -> None:
        state = torch.load(model_dir / name, weights_only=True)
        change(state)
        torch.save(state, model_dir / name)

    return edit


BAD = {
    "missing word.dic": (lambda d: (d / "word.dic").unlink(), FileNotFoundError, r"word\.dic"),
    "missing char.dic": (lambda d: (d / "char.dic").unlink(), FileNotFoundError, r"char\.dic"),
    "missing config.json": (lambda d: (d / "config.json").unlink(), FileNotFoundError, r"config\.json"),
    "missing architecture": (lambda d: (d / "cnn_16_8_32_64_small.json").unlink(), FileNotFoundError,
                             r"config\.json: the architecture file .*cnn_16_8_32_64_small\.json"),
    "missing encoder.pkl": (lambda d: (d / "encoder.pkl").unlink(), FileNotFoundError, r"encoder\.pkl"),
    "char.dic lacks <bow>": (lambda d: (d / "char.dic").write_text(
        "".join(line + "\n" for line in (d / "char.dic").read_text(encoding="utf-8").splitlines()
                if not line.startswith("<bow>")), encoding="utf-8"), LexiconError, r"char\.dic lacks <bow>"),
    "shape mismatch": (resave("token_embedder.pkl", lambda s: s.update({"projection.bias": torch.zeros(31)})),
                       ElmoForManyLangsError,
                       r"token_embedder\.pkl .*'projection\.bias' has shape \(31,\), .* say \(32,\)"),
    "lexicon and embedding disagree": (lambda d: (d / "word.dic").write_text(
        (d / "word.dic").read_text(encoding="utf-8") + "extra\t520\n", encoding="utf-8"), ElmoForManyLangsError,
        r"token_embedder\.pkl .*'word_emb_layer\.embedding\.weight' has shape \(520, 16\), .* say \(521, 16\)"),
    "missing key": (resave("encoder.pkl", lambda s: s.pop("backward_layer_1.state_projection.weight")),
                    ElmoForManyLangsError, r"encoder\.pkl .*missing key 'backward_layer_1\.state_projection\.weight'"),
    "unexpected key": (resave("encoder.pkl", lambda s: s.update({"forward_layer_2.x": torch.zeros(1)})),
                       ElmoForManyLangsError, r"encoder\.pkl .*unexpected key 'forward_layer_2\.x'"),
    "non-finite": (resave("encoder.pkl", lambda s: s["forward_layer_0.state_linearity.bias"].__setitem__(0, np.nan)),
                   ValueError, r"encoder\.pkl: .*NaN or infinite values: forward_layer_0\.state_linearity\.bias"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_model_dir_one_line_naming_the_file(tmp_path, case, capsys):
    edit, error, pattern = BAD[case]
    model_dir = broken(tmp_path, edit)
    with pytest.raises(error, match=pattern) as info:
        read_model_dir(model_dir)
    assert "\n" not in str(info.value)
    status = cli_main(["convert-elmoformanylangs", "--model-dir", str(model_dir), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_model_needs_word_ids_and_refuses_the_token_cache(loaded):
    model, tokenizer = loaded
    enc = tokenizer([["Hello"]], is_split_into_words=True, return_tensors="pt")
    with pytest.raises(ValueError, match="pass token_ids"):
        model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    with pytest.raises(ValueError, match=r"token_ids\) must lie in \[0, 520\)"):
        model(input_ids=enc["input_ids"], token_ids=enc["token_ids"] + 1000)
    with pytest.raises(ValueError, match="not supported"):
        model.cache_token_embeddings(["Hello"])
    # without attention_mask, the all-<pad> rows of padding are no words
    enc = tokenizer([["Hello"], ["a", "b", "c"]], is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        a = model(input_ids=enc["input_ids"], token_ids=enc["token_ids"]).hidden_states[-1]
        b = model(**enc).hidden_states[-1]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


# ---- by repo id, offline, in a process without hf_elmo (transformers 5 and 4.57) ----------------------------------
CHILD = BLOCK_HF_ELMO + textwrap.dedent(
    r'''
    import numpy as np
    import torch
    import transformers

    repo, words = sys.argv[1], json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
    tokenizer = transformers.AutoTokenizer.from_pretrained(repo, trust_remote_code=True)
    model = transformers.AutoModel.from_pretrained(repo, trust_remote_code=True).eval()
    enc = tokenizer(words, is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        layers = torch.stack(model(**enc).hidden_states).numpy()
    arrays = {}
    for row in range(len(words)):
        positions = [p for p, w in enumerate(enc.word_ids(row)) if w is not None]
        arrays[f"sent{row}"] = layers[:, row, positions]
    np.savez("out.npz", **arrays)
    print(json.dumps({"transformers": transformers.__version__, "blocked": BLOCKED,
                      "model": type(model).__module__, "tokenizer": type(tokenizer).__name__}))
    '''
)


@pytest.mark.parametrize("python", ["current", "tf457"])
def test_loads_by_repo_id_from_a_hub_cache_offline(folder, tmp_path, python):
    import sys

    executable = sys.executable if python == "current" else TF457_PYTHON
    if python == "tf457" and not TF457_PYTHON.exists():
        pytest.skip(f"{TF457_PYTHON} (the transformers 4.57 environment) is not set up")
    lay_out_as_hub_cache(folder, tmp_path / "hf_home" / "hub", REPO_ID)
    (tmp_path / "words.json").write_text(json.dumps(sentences()), encoding="utf-8")
    report = run_child(executable, CHILD, tmp_path, REPO_ID, str(tmp_path / "words.json"))
    assert report["blocked"] == [] and report["tokenizer"] == "ElmoForManyLangsTokenizer"
    assert report["model"].startswith("transformers_modules")
    assert report["transformers"].startswith("4.57" if python == "tf457" else "5.")
    with np.load(tmp_path / "out.npz") as data:
        got = [data[f"sent{i}"] for i in range(len(sentences()))]
    assert worst(got, reference(-2)) <= ATOL


def test_onnx_export_refuses_a_word_embedding_model(folder, tmp_path):
    from hf_elmo.onnx.export import export_onnx

    with pytest.raises(ValueError, match="word ids"):
        export_onnx(folder, tmp_path / "onnx")


def test_converted_model_matches_an_in_memory_conversion(folder):
    config, state, _ = read_model_dir(EFML / "model")
    model = ElmoModel(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert unexpected == [] and set(missing) == {"scalar_mixes.0.scalar_parameters", "scalar_mixes.0.gamma"}
    tokenizer = ElmoForManyLangsTokenizer(str(EFML / "model" / "word.dic"), str(EFML / "model" / "char.dic"))
    assert worst(sents2elmo(model.eval(), tokenizer, sentences(), -2), reference(-2)) <= ATOL
