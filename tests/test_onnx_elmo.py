"""ONNX export of ELMo (hf_elmo.onnx): parity of ONNX Runtime with PyTorch, the fp16/int8/optimised variants and
their accuracy bounds, the exported folder, OnnxModel, optimum's TasksManager registration, bad inputs, the CLI.

Every model is exported ONCE, at one shape (batch 2 × 8 words), and run at other batch sizes and lengths. Tiny
random models keep the exports at a few seconds each; the int8 accuracy is measured on the bilm-tf fixture model
(trained weights, real sentences), where quantisation error is meaningful.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import load_fixture_model, randomize_, tiny_config, tiny_model

pytest.importorskip("onnxruntime")
pytest.importorskip("optimum.exporters.tasks")

import onnx  # noqa: E402
from huggingface_hub import ModelCard  # noqa: E402
from optimum.exporters.tasks import TasksManager  # noqa: E402
from transformers import AutoTokenizer, BertConfig, BertModel  # noqa: E402

from hf_elmo import (  # noqa: E402
    ElmoForLanguageModeling,
    ElmoForSequenceClassification,
    ElmoForTokenClassification,
    ElmoModel,
    ElmoTokenizer,
)
from hf_elmo.cli import main  # noqa: E402
from hf_elmo.onnx import (  # noqa: E402
    ELMO_TASKS,
    ElmoDummyInputGenerator,
    ElmoOnnxConfig,
    OnnxModel,
    UnsupportedExportError,
    export_onnx,
    get_onnx_config,
)
from hf_elmo.onnx.export import cosine_similarity  # noqa: E402

FP32_ATOL = 1e-4
# float16 (weights, activations and LSTM cell state) against PyTorch float32, on the tiny random model (saturating
# weights, outputs up to ~2): measured max abs diff 7e-3 at 7 words, 2.0e-2 at 300 words; min cosine similarity of
# the word vectors 0.99987 (at 300 words). (On the bilm-tf fixture: max abs diff 8e-4, cosine > 0.999999.)
FP16_ATOL = 5e-2
FP16_MIN_COSINE = 0.999
# int8 dynamic quantisation (per-tensor int8 weights, 7-bit range; uint8 activations) against PyTorch float32, on
# the bilm-tf fixture model and its 30 news sentences: measured min cosine similarity of the word vectors 0.99992
# (token layer; 0.99998 for the scalar mix), mean >= 0.99996; max abs diff 1.2e-2. (The original size with random
# weights, benchmarks/bench_onnx.py: min 0.99978, mean 0.99986.)
INT8_MIN_COSINE = 0.999
INT8_MEAN_COSINE = 0.9999
# int8 classifier (tiny random model, random sentences): share of rows whose predicted label is PyTorch's (measured:
# 320 of 320 rows over 40 batches of 8).
INT8_MIN_AGREEMENT = 0.9

BATCHES = (1, 3, 8)
LENGTHS = (1, 7, 40, 300)
WORDS = "the cat sat on a mat while dogs barked at 42 small birds , and then everyone went home .".split()


def random_batch(tokenizer: ElmoTokenizer, batch: int, length: int, seed: int, padding_side: str = "right"):
    """``batch`` rows of random words: the first ``length`` words long, the others shorter (padding), as the
    tokenizer encodes them without the <S>/</S> boundaries (so ``length`` is the padded width)."""
    rng = random.Random(seed)
    lengths = [length] + [rng.randint(1, length) for _ in range(batch - 1)]
    rows = [[rng.choice(WORDS) + rng.choice(["", "s", "ing"]) for _ in range(n)] for n in lengths]
    return tokenizer(rows, is_split_into_words=True, add_special_tokens=False, padding=True, return_tensors="pt",
                     padding_side=padding_side)


def assert_same_outputs(got, expected, atol: float) -> None:
    for key in got.keys():
        a, b = got[key], expected[key]
        if isinstance(a, tuple):
            assert len(a) == len(b), key
            a, b = torch.stack(list(a)), torch.stack(list(b))
        assert a.shape == b.shape, (key, a.shape, b.shape)
        diff = (a - b).abs().max().item() if a.numel() else 0.0
        assert diff <= atol, f"{key}: max abs diff {diff:.3g} > {atol}"


# --------------------------------------------------------------------------------------------------------------------
# Exports shared by the tests (each model exported once)
# --------------------------------------------------------------------------------------------------------------------
def _head(cls, seed: int, **config):
    """A tiny random task model. Weights N(0, 0.35²): at conftest's 0.5 the tiny LSTMs are close to chaotic, and one
    seed of the LM amplified float32 rounding to 8e-5 on its logits after 40 words (5e-7 at 0.35)."""
    torch.manual_seed(seed)
    return randomize_(cls(tiny_config(**config)), seed, std=0.35).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, SimpleNamespace]:
    """Every ELMo class exported at its default task, fp32 (token classification with optimize=True, so the
    ORT-optimised graph is held to the same bound; the sequence classifier layer-normalises before its mix)."""
    models = {
        "feature-extraction": (tiny_model(seed=0), {}),
        "text-classification": (_head(ElmoForSequenceClassification, 1, num_labels=3, do_layer_norm=True), {}),
        "token-classification": (_head(ElmoForTokenClassification, 2, num_labels=4), {"optimize": True}),
        "bidirectional-lm": (_head(ElmoForLanguageModeling, 3, vocab_size=23), {}),
    }
    out = {}
    for task, (model, kwargs) in models.items():
        folder = tmp_path_factory.mktemp(task)
        path = export_onnx(model, folder, **kwargs)
        out[task] = SimpleNamespace(model=model, folder=folder, path=path, onnx=OnnxModel.from_pretrained(folder))
    return out


# --------------------------------------------------------------------------------------------------------------------
# Parity
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ELMO_TASKS)
def test_fp32_parity_at_every_batch_and_length(exported, tokenizer, task):
    """ORT vs PyTorch (eager, packed path) within 1e-4, at batch 1/3/8 × 1/7/40/300 words, rows of different
    lengths, padded right or left; the graph was traced at batch 2 × 8 words only."""
    ex = exported[task]
    assert ex.onnx.task == task
    for b in BATCHES:
        for n in LENGTHS:
            side = "left" if (b + n) % 2 else "right"
            enc = random_batch(tokenizer, b, n, seed=b * 1000 + n, padding_side=side)
            with torch.no_grad():
                expected = ex.model(**enc)
            got = ex.onnx(**enc)
            assert_same_outputs(got, expected, FP32_ATOL)


def test_feature_extraction_outputs_mirror_the_model(exported, tokenizer):
    ex = exported["feature-extraction"]
    enc = tokenizer(["the cat sat", "hello"], padding=True, return_tensors="pt")
    got = ex.onnx(**enc)
    assert type(got).__name__ == "ElmoModelOutput"
    assert isinstance(got.last_hidden_state, torch.Tensor)
    assert isinstance(got.hidden_states, tuple) and len(got.hidden_states) == ex.model.config.n_layers + 1
    assert got.elmo_representations[0] is got.last_hidden_state
    as_tuple = ex.onnx(**enc, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], got.last_hidden_state)
    assert ex.onnx(**enc, output_hidden_states=False).hidden_states is None
    with pytest.raises(ValueError, match="output_hidden_states=True needs the feature-extraction export"):
        exported["text-classification"].onnx(**enc, output_hidden_states=True)
    names = [o["name"] for o in json.loads((ex.folder / "config.json").read_text())["onnx"]["outputs"]]
    assert names == ["last_hidden_state", "hidden_states.0", "hidden_states.1", "hidden_states.2"]


def test_optimized_graph_is_ort_optimized(exported):
    info = json.loads((exported["token-classification"].folder / "config.json").read_text())["onnx"]
    assert info["optimization"] == {"level": "extended", "provider": "CPUExecutionProvider"}
    assert json.loads((exported["text-classification"].folder / "config.json").read_text())["onnx"]["optimization"] \
        is None


def test_fp16_with_external_data(tmp_path, tokenizer):
    """fp16 (float16 converter, inputs int64, outputs float32) and the external-data path, forced on a small model:
    the weights go to model.onnx.data and the folder still loads. (Two scalar mixes: elmo_representations.k.)"""
    model = tiny_model(seed=4, num_output_representations=2)
    path = export_onnx(model, tmp_path / "fp16", fp16=True, external_data=True)
    folder = path.parent
    assert (folder / "model.onnx.data").is_file()
    graph = onnx.load(str(path), load_external_data=False).graph
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer)
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer)
    info = json.loads((folder / "config.json").read_text())["onnx"]
    assert info["dtype"] == "float16" and info["external_data_file"] == "model.onnx.data"
    assert [i["dtype"] for i in info["inputs"]] == ["int64", "int64"]
    assert {o["dtype"] for o in info["outputs"]} == {"float32"}
    assert [o["name"] for o in info["outputs"]][-2:] == ["elmo_representations.0", "elmo_representations.1"]
    onnx_model = OnnxModel.from_pretrained(folder)
    for b, n in ((1, 7), (3, 40), (8, 300)):
        enc = random_batch(tokenizer, b, n, seed=n)
        with torch.no_grad():
            expected = model(**enc)
        got = onnx_model(**enc)
        assert got.last_hidden_state.dtype == torch.float32
        assert_same_outputs(got, expected, FP16_ATOL)
        mask = enc["attention_mask"].bool().numpy()
        for a, e in zip(got.hidden_states, expected.hidden_states):
            assert cosine_similarity(a.numpy(), e.numpy(), mask) >= FP16_MIN_COSINE


def test_int8_elmo_vectors_stay_close_on_the_fixture(tmp_path, elmo_fixture_dir, fixture_sentences, tokenizer):
    """int8 dynamic quantisation (MatMul/Gemm weights, the Scan loops' products included): ELMo vectors of every
    layer keep a cosine similarity >= INT8_MIN_COSINE (mean >= INT8_MEAN_COSINE) to float32 PyTorch."""
    model = load_fixture_model(elmo_fixture_dir)
    path = export_onnx(model, tmp_path / "int8", quantize="int8")
    graph = onnx.load(str(path)).graph
    ops = {n.op_type for n in graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
    scan_ops = {n.op_type for node in graph.node if node.op_type == "Scan"
                for attr in node.attribute if attr.name == "body" for n in attr.g.node}
    assert "MatMulInteger" in scan_ops, "the recurrence inside the Scan loops is quantised too"
    info = json.loads((path.parent / "config.json").read_text())["onnx"]
    assert info["dtype"] == "int8" and info["quantization"]["weight_type"] == "int8"
    onnx_model = OnnxModel.from_pretrained(path.parent)
    sentences = [s.split(" ") for group in fixture_sentences for s in group]
    enc = tokenizer(sentences, is_split_into_words=True, padding=True, return_tensors="np")
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in enc.items()})
    got = onnx_model(**enc)
    assert isinstance(got.last_hidden_state, np.ndarray)
    mask = enc["attention_mask"].astype(bool)
    pairs = [(got.last_hidden_state, expected.last_hidden_state)] + list(zip(got.hidden_states,
                                                                             expected.hidden_states))
    for a, e in pairs:
        a, e = a[mask].astype(np.float64), e.numpy()[mask].astype(np.float64)
        cos = (a * e).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(e, axis=-1))
        assert cos.min() >= INT8_MIN_COSINE and cos.mean() >= INT8_MEAN_COSINE, (cos.min(), cos.mean())


# --------------------------------------------------------------------------------------------------------------------
# The folder, OnnxModel
# --------------------------------------------------------------------------------------------------------------------
def test_exported_folder_round_trips(exported, tokenizer):
    ex = exported["text-classification"]
    folder = ex.folder
    files = {p.name for p in folder.iterdir()}
    assert {"model.onnx", "config.json", "README.md", "tokenizer_config.json", "tokenization_elmo.py",
            "configuration_elmo.py"} <= files
    assert not any(name.startswith(".") for name in files), "no leftover work folder"
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["ElmoForSequenceClassification"]
    assert set(config["auto_map"]) == {"AutoConfig"}, "auto_map names only the code the folder holds"
    info = config["onnx"]
    assert info["task"] == "text-classification" and info["opset"] == 20 and info["dtype"] == "float32"
    assert [i["name"] for i in info["inputs"]] == ["input_ids", "attention_mask"]
    assert info["inputs"][0]["shape"] == ["batch", "words", 50]
    assert [o["name"] for o in info["outputs"]] == ["logits"] and info["outputs"][0]["shape"] == ["batch", 3]
    assert info["validation"]["float32_max_abs_diff"] <= FP32_ATOL

    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "onnx"
    assert "onnx" in card.data.tags and card.data.pipeline_tag == "text-classification"
    assert "OnnxModel.from_pretrained" in card.text and "ort.InferenceSession" in card.text

    reloaded = OnnxModel.from_pretrained(folder, provider="CPUExecutionProvider")
    assert reloaded.provider == "CPUExecutionProvider"
    folder_tokenizer = AutoTokenizer.from_pretrained(folder)
    enc = folder_tokenizer(["the cat sat on the mat", "dogs"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = ex.model(**enc).logits
    torch.testing.assert_close(reloaded(**enc).logits, expected, atol=FP32_ATOL, rtol=0)
    # numpy in, numpy out; the BatchEncoding itself as the only argument
    np_enc = folder_tokenizer(["the cat sat on the mat", "dogs"], padding=True, return_tensors="np")
    out = reloaded(np_enc)
    assert isinstance(out.logits, np.ndarray)
    np.testing.assert_allclose(out.logits, expected.numpy(), atol=FP32_ATOL, rtol=0)
    # no attention mask: all-zero words are padding, as in the PyTorch model
    torch.testing.assert_close(reloaded(input_ids=enc["input_ids"]).logits, expected, atol=FP32_ATOL, rtol=0)


def test_bidirectional_lm_folder_and_card(exported):
    ex = exported["bidirectional-lm"]
    card = ModelCard.load(ex.folder / "README.md")
    assert card.data.pipeline_tag is None and "bidirectional-lm" in card.data.tags
    assert ex.onnx.config.vocab_size == 23
    out = ex.onnx(input_ids=np.full((2, 3, 50), 261, dtype=np.int64))
    assert out.logits.shape == (2, 3, 2, 23)


def test_provider_choice_is_logged(exported, caplog):
    with caplog.at_level(logging.INFO, logger="hf_elmo"):
        model = OnnxModel.from_pretrained(exported["feature-extraction"].folder)
    assert model.provider in ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert any(model.provider in r.getMessage() for r in caplog.records if r.name.startswith("hf_elmo"))


# --------------------------------------------------------------------------------------------------------------------
# optimum registration
# --------------------------------------------------------------------------------------------------------------------
def test_tasks_manager_returns_the_elmo_config(exported):
    config = exported["feature-extraction"].model.config
    supported = TasksManager.get_supported_tasks_for_model_type("elmo", "onnx", library_name="transformers")
    assert set(ELMO_TASKS) <= set(supported)
    for task, cls in zip(ELMO_TASKS, (ElmoModel, ElmoForSequenceClassification, ElmoForTokenClassification,
                                      ElmoForLanguageModeling)):
        constructor = TasksManager.get_exporter_config_constructor(
            exporter="onnx", model_type="elmo", task=task, library_name="transformers"
        )
        onnx_config = constructor(config)
        assert isinstance(onnx_config, ElmoOnnxConfig) and onnx_config.task == task
        assert onnx_config.model_class is cls
        assert list(onnx_config.inputs) == ["input_ids", "attention_mask"]
    # optimum's synonyms (mapped as optimum's own exporters do), and the custom task's model class
    assert TasksManager.map_from_synonym("sequence-classification") == "text-classification"
    assert get_onnx_config(config, "sequence-classification").task == "text-classification"
    assert "bidirectional-lm" in TasksManager.get_all_tasks()
    assert TasksManager.get_model_class_for_task("bidirectional-lm", model_type="elmo") is ElmoForLanguageModeling


def test_dummy_inputs_are_valid_character_ids():
    config = tiny_config()
    onnx_config = ElmoOnnxConfig(config, task="feature-extraction")
    assert onnx_config.DUMMY_INPUT_GENERATOR_CLASSES == (ElmoDummyInputGenerator,)
    for framework in ("pt", "np"):
        for side in ("right", "left"):
            dummy = onnx_config.generate_dummy_inputs(framework=framework, batch_size=4, sequence_length=9,
                                                      padding_side=side)
            ids, mask = np.asarray(dummy["input_ids"]), np.asarray(dummy["attention_mask"])
            assert ids.shape == (4, 9, 50) and mask.shape == (4, 9)
            assert ids.dtype == np.int64 and mask.dtype == np.int64
            assert ids.min() >= 0 and ids.max() < config.n_characters
            assert (mask.sum(1) >= 1).all() and mask[0].all(), "first row full, every row at least one word"
            assert ((ids != 0).any(-1) == mask.astype(bool)).all(), "padded words are all-zero rows"
            assert (ids[mask.astype(bool)][:, 0] == 259).all(), "every word starts with the begin-of-word id"
            if side == "left":
                assert (mask[:, -1] == 1).all()
    # the tokenizer's ids for a real word are of the same form
    assert ElmoTokenizer()(["ab"], is_split_into_words=True, add_special_tokens=False,
                           return_tensors="np")["input_ids"][0, 0, :4].tolist() == [259, 98, 99, 260]


# --------------------------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors(exported, tokenizer):
    model = exported["feature-extraction"].onnx
    enc = tokenizer(["the cat", "a"], padding=True, return_tensors="pt")
    with pytest.raises(TypeError, match="integer character ids.*float32"):
        model(input_ids=enc["input_ids"].float(), attention_mask=enc["attention_mask"])
    with pytest.raises(ValueError, match=r"shape \(batch, words, max_characters_per_token=50\)"):
        model(input_ids=enc["input_ids"][0], attention_mask=enc["attention_mask"][0])
    with pytest.raises(ValueError, match=r"shape \(batch, words, max_characters_per_token=50\)"):
        model(input_ids=enc["input_ids"][..., :10])
    with pytest.raises(ValueError, match="attention_mask shape"):
        model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"][:, :1])
    with pytest.raises(ValueError, match=r"character ids must lie in \[0, 262\)"):
        model(input_ids=enc["input_ids"] + 300)
    with pytest.raises(ValueError, match="input_ids is required"):
        model(attention_mask=enc["attention_mask"])
    with pytest.raises(TypeError, match="unexpected arguments"):
        model(**enc, labels=torch.zeros(2))
    with pytest.raises(ValueError, match="at least one position"):
        model(input_ids=torch.zeros(2, 0, 50, dtype=torch.long))


def test_empty_batch_gives_empty_outputs(exported):
    """An empty batch returns empty outputs of the right shape (ONNX Runtime itself fails on one)."""
    out = exported["feature-extraction"].onnx(input_ids=np.zeros((0, 5, 50), np.int64),
                                              attention_mask=np.zeros((0, 5), np.int64))
    assert out.last_hidden_state.shape == (0, 5, 12) and len(out.hidden_states) == 3
    logits = exported["text-classification"].onnx(input_ids=torch.zeros(0, 4, 50, dtype=torch.long)).logits
    assert isinstance(logits, torch.Tensor) and logits.shape == (0, 3)


def test_missing_files_are_named(exported, tmp_path):
    folder = exported["feature-extraction"].folder
    with pytest.raises(FileNotFoundError, match=r"no ONNX model file 'other\.onnx' in .*feature-extraction"):
        OnnxModel.from_pretrained(folder, file_name="other.onnx")
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "model.onnx").unlink()
    with pytest.raises(FileNotFoundError, match=rf"no ONNX model file 'model\.onnx' in {copy}"):
        OnnxModel.from_pretrained(copy)
    with pytest.raises(FileNotFoundError, match="not found"):
        OnnxModel.from_pretrained(tmp_path / "does-not-exist")
    (tmp_path / "pt").mkdir()
    tiny_model().save_pretrained(tmp_path / "pt")
    with pytest.raises(ValueError, match="no 'onnx' section"):
        OnnxModel.from_pretrained(tmp_path / "pt")
    with pytest.raises(ValueError, match="not available"):
        OnnxModel.from_pretrained(folder, provider="NoSuchExecutionProvider")


def test_unsupported_exports_are_named(tmp_path):
    bert = BertModel(BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=8))
    with pytest.raises(UnsupportedExportError, match="BertModel.*'bert'"):
        export_onnx(bert, tmp_path / "bert")
    with pytest.raises(UnsupportedExportError, match="no ONNX exporter for Linear"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "linear")
    with pytest.raises(UnsupportedExportError, match="ElmoModel is exported for 'feature-extraction', not "
                                                     "'text-classification'.*ElmoForSequenceClassification"):
        export_onnx(tiny_model(), tmp_path / "mismatch", task="text-classification")
    with pytest.raises(UnsupportedExportError, match="'elmo'.*'fill-mask'"):
        get_onnx_config(tiny_config(), "fill-mask")
    with pytest.raises(ValueError, match="fp16 and quantize are exclusive"):
        export_onnx(tiny_model(), tmp_path / "both", fp16=True, quantize="int8")
    with pytest.raises(ValueError, match="quantize must be one of"):
        export_onnx(tiny_model(), tmp_path / "int4", quantize="int4")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        export_onnx(tiny_model(), tmp_path / "full")
    assert not (tmp_path / "bert").exists() or not any((tmp_path / "bert").iterdir())


# --------------------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------------------
def test_cli_export_int8_optimized_and_pushed(tmp_path, tokenizer, capsys, monkeypatch):
    """`hf-elmo export` of a saved classifier with --quantize int8 --optimize --external-data --push-to-hub (the Hub
    faked): the folder loads with OnnxModel and agrees with PyTorch on the predicted labels; one commit holds its
    files. External data goes through the quantiser and ORT's optimiser."""
    import huggingface_hub

    model = _head(ElmoForSequenceClassification, 5, num_labels=3)
    model.save_pretrained(tmp_path / "pt")
    tokenizer.save_pretrained(tmp_path / "pt")
    commits = []
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo",
                        lambda self, repo_id, **kw: SimpleNamespace(repo_id=repo_id))
    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit", lambda self, repo_id, operations, **kw: (
        commits.append((repo_id, sorted(op.path_in_repo for op in operations)))
        or SimpleNamespace(commit_url=f"https://huggingface.co/{repo_id}/commit/0")))

    out = tmp_path / "onnx"
    code = main(["export", str(tmp_path / "pt"), str(out), "--quantize", "int8", "--optimize", "--external-data",
                 "--push-to-hub", "user/elmo-onnx"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"Wrote the ONNX export to {out / 'model.onnx'}" in printed
    assert "Pushed to https://huggingface.co/user/elmo-onnx/commit/0" in printed
    assert commits == [("user/elmo-onnx", sorted(p.name for p in out.iterdir()))]
    info = json.loads((out / "config.json").read_text())["onnx"]
    assert info["task"] == "text-classification" and info["dtype"] == "int8" and info["optimization"]
    assert info["external_data_file"] == "model.onnx.data" and (out / "model.onnx.data").is_file()
    card = (out / "README.md").read_text()
    assert 'snapshot_download("user/elmo-onnx")' in card and "int8" in card

    onnx_model = OnnxModel.from_pretrained(out)
    agree = total = 0
    for seed in range(4):
        enc = random_batch(tokenizer, 8, 12, seed=seed)
        with torch.no_grad():
            expected = model(**enc).logits.argmax(-1)
        agree += int((onnx_model(**enc).logits.argmax(-1) == expected).sum())
        total += len(expected)
    assert agree / total >= INT8_MIN_AGREEMENT, f"{agree}/{total} labels agree"


def test_cli_export_errors_are_one_line(tmp_path, capsys):
    folder = tmp_path / "pt"
    tiny_model().save_pretrained(folder)
    capsys.readouterr()
    assert main(["export", str(folder), str(tmp_path / "out"), "--task", "fill-mask"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hf-elmo export: error: ") and "'fill-mask'" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(folder), str(tmp_path / "out"), "--quantize", "int4"])
    assert exit_info.value.code == 2
