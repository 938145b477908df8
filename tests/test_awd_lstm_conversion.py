"""Converting fastai AWD-LSTM checkpoints (``hf-elmo convert-awd-lstm``, conversion/convert_fastai_awd_lstm.py):
every fixture file, what the folder and its model card hold, and clear errors for files that are not what they
should be."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

import hf_elmo.conversion.fastai_awd_lstm as fastai_awd_lstm
from awd_lstm_testing import (
    FASTAI_FIXTURE,
    LM_FILES,
    REPO,
    fixture_config,
    one_thread,
    randomize_,
    requires_fixture,
    tiny_config,
)
from hf_elmo import AWDLSTMForSequenceClassification
from hf_elmo.cli import main as cli_main
from hf_elmo.commands.convert_awd_lstm import main as convert_main
from hf_elmo.conversion.fastai_awd_lstm import AWDLSTMWeightsError, convert_fastai_awd_lstm, read_fastai_awd_lstm

pytestmark = requires_fixture
SCRIPT = REPO / "conversion/convert_fastai_awd_lstm.py"
VOCAB = FASTAI_FIXTURE / "vocab.pkl"
EXPECTED_FILES = {"README.md", "config.json", "configuration_awd_lstm.py", "cpu_lstm.py", "english_splitter.py",
                  "model.safetensors", "modeling_awd_lstm.py", "packed_linear.py", "tokenization_awd_lstm.py",
                  "tokenizer_config.json", "vocab.json"}



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every fixture file converted through the ``hf-elmo convert-awd-lstm`` command."""
    cfg = fixture_config()
    root = tmp_path_factory.mktemp("cli")
    out = {}
    for name in (*LM_FILES, "clas_state_dict.pth"):
        folder = root / name.split(".")[0]
        extra = ["--bptt", str(cfg["bptt"]), "--max-len", str(cfg["max_len"])]
        if name.startswith("clas"):
            extra += ["--base-model", "user/awd-lstm-lm"]
        assert cli_main(["convert-awd-lstm", "--weights", str(FASTAI_FIXTURE / name), "--vocab", str(VOCAB),
                         "--output", str(folder), *extra]) == 0
        out[name] = folder
    return out


def fastai_state(name: str = "lm_state_dict.pth") -> dict[str, torch.Tensor]:
    return dict(torch.load(FASTAI_FIXTURE / name, map_location="cpu", weights_only=True))


def convert_error(tmp_path: Path, state, capsys, vocab: Path = VOCAB) -> str:
    """Converts ``state`` (saved to a file) through the command; returns its one-line error."""
    weights = tmp_path / "weights.pth"
    torch.save(state, weights)
    code = convert_main(["--weights", str(weights), "--vocab", str(vocab), "--output", str(tmp_path / "out")],
                        prog="convert")
    err = capsys.readouterr().err
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("convert: error: "), err
    assert not (tmp_path / "out").exists()  # nothing is written before the file is checked
    return err


# --------------------------------------------------------------------------------------------------------------------
# The fixture files
# --------------------------------------------------------------------------------------------------------------------
def test_every_file_converts_to_a_complete_folder(converted):
    for name, folder in converted.items():
        files = {p.name for p in folder.iterdir()}
        want = EXPECTED_FILES | ({"generation_config.json"} if name.startswith("lm") else set())
        assert files == want, name


def test_language_model_formats_give_the_same_checkpoint(converted):
    """A plain state dict, Learner.save's {'model', 'opt'} and the fastai v1 layout hold the same weights."""
    weights = [load_file(converted[name] / "model.safetensors") for name in LM_FILES]
    for other in weights[1:]:
        assert other.keys() == weights[0].keys()
        for key in weights[0]:
            assert torch.equal(other[key], weights[0][key]), key
    state = fastai_state()
    assert torch.equal(weights[0]["awd_lstm.layers.2.weight_hh_l0"], state["0.rnns.2.weight_hh_l0_raw"])
    assert torch.equal(weights[0]["awd_lstm.embeddings.weight"], state["0.encoder.weight"])


def test_configs_are_read_from_the_shapes(converted):
    cfg = fixture_config()
    lm = json.loads((converted["lm_v1_state_dict.pth"] / "config.json").read_text())
    want = {"vocab_size": cfg["vocab_size"], "emb_size": cfg["lm_config"]["emb_sz"],
            "hidden_size": cfg["lm_config"]["n_hid"], "num_layers": cfg["lm_config"]["n_layers"],
            "bidirectional": False, "tie_weights": True, "out_bias": True, "pad_token_id": 1, "bos_token_id": 2,
            "eos_token_id": 3, "architectures": ["AWDLSTMForLanguageModeling"], "model_type": "awd_lstm"}
    assert {k: lm[k] for k in want} == want
    assert {k: lm[k] for k in ("output_p", "hidden_p", "input_p", "embed_p", "weight_p")} == {
        k: v for k, v in cfg["lm_config"].items() if k.endswith("_p")}
    clas = json.loads((converted["clas_state_dict.pth"] / "config.json").read_text())
    assert clas["architectures"] == ["AWDLSTMForSequenceClassification"]
    assert len(clas["id2label"]) == cfg["n_class"] and clas["classifier_hidden_sizes"] == cfg["lin_ftrs"]
    assert (clas["bptt"], clas["max_len"]) == (cfg["bptt"], cfg["max_len"])
    assert {k: clas[k] for k in ("output_p", "hidden_p", "input_p", "embed_p", "weight_p")} == {
        k: v for k, v in cfg["clas_config"].items() if k.endswith("_p")}
    model = AutoModelForSequenceClassification.from_pretrained(converted["clas_state_dict.pth"], trust_remote_code=True)
    assert [block.dropout.p for block in model.classifier.layers] == [0.4, 0.1]  # get_text_classifier's ps


def test_conversion_script(tmp_path):
    out = tmp_path / "script"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--weights", str(FASTAI_FIXTURE / "lm_learner.pth"),
                           "--vocab", str(VOCAB), "--output", str(out)], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Wrote the converted AWD-LSTM to {out}" in proc.stdout
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()


def test_vocabulary_becomes_the_tokenizer(converted):
    itos = pickle.loads(VOCAB.read_bytes())
    saved = json.loads((converted["lm_state_dict.pth"] / "vocab.json").read_text(encoding="utf-8"))
    assert saved == itos
    tokenization = json.loads((FASTAI_FIXTURE / "tokenization.json").read_text(encoding="utf-8"))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(converted["lm_state_dict.pth"], trust_remote_code=True)
    assert tokenizer(tokenization["texts"][0])["input_ids"] == tokenization["ids"][0]


# --------------------------------------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, pipeline", [("lm_v1_state_dict.pth", "text-generation"),
                                            ("clas_state_dict.pth", "text-classification")])
def test_model_card(converted, name, pipeline):
    folder = converted[name]
    card = ModelCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers" and data["license"] == "apache-2.0" and data["language"] == "en"
    assert data["pipeline_tag"] == pipeline
    assert {"awd-lstm", "ulmfit", "fastai", pipeline} <= set(data["tags"])
    assert data.get("base_model") == ("user/awd-lstm-lm" if name.startswith("clas") else None)
    text = card.text
    for needle in ("## Architecture", "## Usage", "## Conversion", "## Parity", "howard-ruder-2018-universal",
                   name, "vocab.pkl", "32 → 48 → 48 → 32"):
        assert needle in text, needle
    assert ("fastai v1 state dict" in text) == (name == "lm_v1_state_dict.pth")
    assert "the vocabulary\nwith an unpickler that resolves no class or function" in text  # vocab.pkl
    sha = re.search(r"sha256 `([0-9a-f]{64})`", text)
    assert sha and sha.group(1) == hashlib.sha256((FASTAI_FIXTURE / name).read_bytes()).hexdigest()
    if name.startswith("clas"):
        assert "96 → 50 → 3" in text and "chunks of 8 tokens" in text and "the last 24 tokens" in text


@pytest.mark.parametrize("name", ["lm_state_dict.pth", "clas_state_dict.pth"])
def test_model_card_usage_snippet_runs(converted, name, capsys):
    """The card's snippet is the exact code for this checkpoint: it must run as written."""
    text = (converted[name] / "README.md").read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert json.dumps(str(converted[name])) in snippet and "trust_remote_code=True" in snippet
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out.strip()
    if name.startswith("clas"):
        assert len(namespace["predictions"]) == 2 and printed.startswith("[")
    else:
        prompt = namespace["inputs"]["input_ids"]
        assert namespace["generated"].shape[1] > prompt.shape[1]
        assert "xxbos" not in printed  # decoded as text
        assert printed.startswith(namespace["tokenizer"].decode(prompt[0], skip_special_tokens=True))


def test_push_to_hub_pushes_the_finished_folder(tmp_path, monkeypatch):
    pushed = []

    def fake_push(folder, repo_id, **kwargs):
        pushed.append((Path(folder), repo_id, kwargs, sorted(p.name for p in Path(folder).iterdir())))
        return "https://huggingface.co/user/awd/commit/0"

    monkeypatch.setattr(fastai_awd_lstm, "push_folder", fake_push)
    out = convert_fastai_awd_lstm(FASTAI_FIXTURE / "lm_state_dict.pth", VOCAB, tmp_path / "out",
                                  push_to_hub="user/awd", private=True, revision="v1")
    [(folder, repo_id, kwargs, files)] = pushed
    assert folder == out and repo_id == "user/awd" and kwargs["private"] is True and kwargs["revision"] == "v1"
    assert set(files) == EXPECTED_FILES | {"generation_config.json"}
    text = (out / "README.md").read_text(encoding="utf-8")
    assert '"user/awd"' in text and "revision='v1'" in text


# --------------------------------------------------------------------------------------------------------------------
# Other layouts
# --------------------------------------------------------------------------------------------------------------------
def test_data_parallel_prefix(tmp_path, converted):
    state = {"module." + k: v for k, v in fastai_state().items()}
    torch.save(state, tmp_path / "dp.pth")
    out = convert_fastai_awd_lstm(tmp_path / "dp.pth", VOCAB, tmp_path / "out")
    a, b = load_file(out / "model.safetensors"), load_file(converted["lm_state_dict.pth"] / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def to_fastai_classifier(model: AWDLSTMForSequenceClassification, drop_block: int | None = None) -> dict:
    """A classifier's weights in fastai's classifier layout (``0.module.`` encoder, ``1.layers.{k}`` head)."""
    state = {}
    for name, value in model.state_dict().items():
        if name == "awd_lstm.embeddings.weight":
            state["0.module.encoder.weight"] = value
            state["0.module.encoder_dp.emb.weight"] = value
        elif name.startswith("awd_lstm.layers."):
            _, _, layer, param = name.split(".")
            key = "weight_hh_l0_raw" if param == "weight_hh_l0" else f"module.{param}"
            state[f"0.module.rnns.{layer}.{key}"] = value
        else:
            _, _, block, module, param = name.split(".")
            index = {"batch_norm": 0, "linear": 2 if int(block) != drop_block else 1}[module]
            state[f"1.layers.{block}.{index}.{param}"] = value
    return state


def test_bidirectional_classifier_without_a_head_dropout(tmp_path):
    """Directions, sizes and the head (a block whose dropout fastai left out, p = 0) come from the shapes."""
    torch.manual_seed(0)
    config = tiny_config(vocab_size=392, bidirectional=True, num_labels=4, classifier_hidden_sizes=[7],
                         classifier_dropouts=[0.4, 0.0], bptt=8, max_len=24)
    model = randomize_(AWDLSTMForSequenceClassification(config)).eval()
    torch.save(to_fastai_classifier(model, drop_block=1), tmp_path / "bidir.pth")
    out = convert_fastai_awd_lstm(tmp_path / "bidir.pth", VOCAB, tmp_path / "out", bptt=8, max_len=24)
    loaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert loaded.config.bidirectional and loaded.config.num_labels == 4 and loaded.config.hidden_size == 12
    assert [b.dropout.p for b in loaded.classifier.layers] == [0.4, 0.0]
    x = torch.randint(3, 392, (2, 30), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits)


def to_fastai_v1_classifier(model: AWDLSTMForSequenceClassification) -> dict:
    """A classifier's weights as fastai 1 saved them: the raw weights' dropped copies beside them, and one flat
    head ``Sequential`` of BatchNorm1d, Dropout, Linear (with bias), ReLU, BatchNorm1d, Dropout, Linear."""
    state, index = {}, 0
    for name, value in to_fastai_classifier(model).items():
        if name.startswith("0."):
            state[name] = value
            if name.endswith("weight_hh_l0_raw"):
                state[name.replace("weight_hh_l0_raw", "module.weight_hh_l0")] = torch.zeros_like(value)
    for k, block in enumerate(model.classifier.layers):
        for param, value in block.batch_norm.state_dict().items():
            state[f"1.layers.{index}.{param}"] = value
        for param, value in block.linear.state_dict().items():
            state[f"1.layers.{index + 2}.{param}"] = value
        index += 4  # BatchNorm1d, Dropout, Linear, ReLU
    return state


def test_fastai_v1_classifier(tmp_path):
    torch.manual_seed(0)
    config = tiny_config(vocab_size=392, num_labels=3, classifier_bias=True, bptt=8, max_len=24)
    model = randomize_(AWDLSTMForSequenceClassification(config)).eval()
    torch.save(to_fastai_v1_classifier(model), tmp_path / "v1.pth")
    out = convert_fastai_awd_lstm(tmp_path / "v1.pth", VOCAB, tmp_path / "out", bptt=8, max_len=24)
    loaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert loaded.config.classifier_bias and loaded.config.classifier_hidden_sizes == [50]
    assert "fastai v1 state dict" in (out / "README.md").read_text(encoding="utf-8")
    x = torch.randint(3, 392, (2, 30), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits)


# --------------------------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------------------------
def test_missing_key(tmp_path, capsys):
    state = fastai_state()
    del state["0.rnns.1.module.bias_ih_l0"]
    err = convert_error(tmp_path, state, capsys)
    assert "missing key '0.rnns.1.module.bias_ih_l0' (expected shape (192,))" in err


def test_unexpected_key(tmp_path, capsys):
    state = fastai_state()
    state["0.rnns.0.module.weight_ih_l1"] = torch.zeros(192, 48)
    err = convert_error(tmp_path, state, capsys)
    assert "unexpected key '0.rnns.0.module.weight_ih_l1' (shape (192, 48))" in err


def test_misshaped_tensors_are_all_named(tmp_path, capsys):
    state = fastai_state()
    state["0.rnns.2.module.weight_ih_l0"] = torch.zeros(128, 47)
    state["1.decoder.bias"] = torch.zeros(391)
    err = convert_error(tmp_path, state, capsys)
    assert "key '0.rnns.2.module.weight_ih_l0' has shape (128, 47), expected (128, 48)" in err
    assert "key '1.decoder.bias' has shape (391,), expected (392,)" in err


def test_misshaped_classifier_head(tmp_path, capsys):
    state = fastai_state("clas_state_dict.pth")
    state["1.layers.1.0.running_mean"] = torch.zeros(49)
    err = convert_error(tmp_path, state, capsys)
    assert "key '1.layers.1.0.running_mean' has shape (49,), expected (50,)" in err


def test_vocabulary_of_the_wrong_size(tmp_path, capsys):
    vocab = tmp_path / "itos.pkl"
    vocab.write_bytes(pickle.dumps(pickle.loads(VOCAB.read_bytes())[:-1]))
    err = convert_error(tmp_path, fastai_state(), capsys, vocab=vocab)
    assert "the vocabulary has 391 tokens but the embedding '0.encoder.weight'" in err and "(392, 32)" in err


def test_not_an_awd_lstm(tmp_path, capsys):
    err = convert_error(tmp_path, {"weight": torch.zeros(3), "bias": torch.zeros(3)}, capsys)
    assert "is not a fastai AWD-LSTM" in err and "'0.encoder.weight'" in err


class NotATensor:
    pass


def test_only_weights_are_unpickled(tmp_path):
    torch.save({"model": NotATensor()}, tmp_path / "object.pth")
    with pytest.raises(AWDLSTMWeightsError, match=r"weights_only=True"):
        read_fastai_awd_lstm(tmp_path / "object.pth")


def test_bad_arguments(tmp_path, converted):
    weights = FASTAI_FIXTURE / "lm_state_dict.pth"
    with pytest.raises(ValueError, match="not empty"):
        convert_fastai_awd_lstm(weights, VOCAB, converted["lm_state_dict.pth"])
    with pytest.raises(ValueError, match="push_to_hub"):
        convert_fastai_awd_lstm(weights, VOCAB, tmp_path / "x", revision="v1")
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        convert_fastai_awd_lstm(weights, tmp_path / "missing.pkl", tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="weight file not found"):
        convert_fastai_awd_lstm(tmp_path / "missing.pth", VOCAB, tmp_path / "x")
    with pytest.raises(ValueError, match="base_model"):
        convert_fastai_awd_lstm(weights, VOCAB, tmp_path / "x", base_model="user/lm")
    assert not (tmp_path / "x").exists()
