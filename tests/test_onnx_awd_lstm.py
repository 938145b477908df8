"""ONNX export of AWD-LSTM (hf_elmo.onnx.awd_lstm): ONNX Runtime against PyTorch for the encoder, the language model
and the ULMFiT classifier (its chunked reading included), against fastai itself for the converted fixture models,
the int8/fp16 variants and their accuracy bounds, the exported folder and its card, bad inputs.

Every model is exported ONCE (batch 2 × 8 tokens; the classifier over 2·bptt + 1 tokens) and run at batch 1, 3 and 8
× lengths 1, 7, 40 and 300 with padding on both sides. The tiny random models have bptt 5 and max_len 15, so that
300-token documents are read in 60 chunks of which only the last few are pooled (one classifier has bptt 40 and
max_len 100, above the exported graph's read block of 24 tokens).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from awd_lstm_testing import FASTAI_FIXTURE, fixture_config, load_expected, one_thread, randomize_, requires_fixture
from awd_lstm_testing import tiny_config
from conftest import run_card_snippets

pytest.importorskip("onnxruntime")
pytest.importorskip("optimum.exporters.tasks")

import onnx  # noqa: E402
from huggingface_hub import ModelCard  # noqa: E402
from optimum.exporters.tasks import TasksManager  # noqa: E402

from hf_elmo import (  # noqa: E402
    AWDLSTMForLanguageModeling,
    AWDLSTMForSequenceClassification,
    AWDLSTMModel,
    AWDLSTMTokenizer,
)
from hf_elmo.cli import main  # noqa: E402
from hf_elmo.conversion.fastai_awd_lstm import convert_fastai_awd_lstm  # noqa: E402
from hf_elmo.onnx import AWDLSTMOnnxConfig, OnnxModel, UnsupportedExportError, export_onnx, get_onnx_config  # noqa: E402

FP32_ATOL = 1e-4  # the bound; measured: <= 1e-6 on every case here
FASTAI_ATOL = 1e-5  # ONNX Runtime against fastai's own logits (the PyTorch port is held to the same)
# float16 weights/activations on the CPU provider against PyTorch float32, tiny random LM: measured min cosine of
# the logits vectors 0.9999999, max abs diff 7e-4
FP16_MIN_COSINE = 0.999
# int8 (DynamicQuantizeLSTM + MatMulInteger, per-tensor 7-bit weights) against float32 on the fastai fixture
# classifier (random N(0, 0.3²) weights), 200 random documents: measured agreement of the predicted class 1.0 (200 of
# 200), min cosine similarity of the logits 0.99982
INT8_MIN_AGREEMENT = 0.95
LENGTHS = (1, 7, 40, 300)
BATCHES = (1, 3, 8)
TASK_OF = {AWDLSTMModel: "feature-extraction", AWDLSTMForLanguageModeling: "text-generation",
           AWDLSTMForSequenceClassification: "text-classification"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield


def tokenizer_for(vocab_size: int) -> AWDLSTMTokenizer:
    """A tokenizer whose vocabulary has ``vocab_size`` entries (fastai's special tokens, then made-up words)."""
    itos = AWDLSTMTokenizer.build_vocab(["a"], min_freq=1)
    itos = [t for t in itos if t != "a"][: vocab_size]
    itos += [f"word{i}" for i in range(vocab_size - len(itos))]
    return AWDLSTMTokenizer(itos=itos)


MODELS = {
    "encoder": (AWDLSTMModel, {}),
    "lm": (AWDLSTMForLanguageModeling, {}),
    "classifier": (AWDLSTMForSequenceClassification, {"num_labels": 3}),
    "bidirectional-classifier": (AWDLSTMForSequenceClassification, {"num_labels": 2, "bidirectional": True}),
    # bptt above the graph's read block (24 tokens): pooling starts inside a block (at a multiple of 40)
    "long-bptt-classifier": (AWDLSTMForSequenceClassification, {"num_labels": 2, "bptt": 40, "max_len": 100}),
    # ... and bidirectional: its backward direction reads each bptt chunk from the chunk's end
    "long-bptt-bidirectional-classifier": (AWDLSTMForSequenceClassification,
                                           {"num_labels": 2, "bptt": 40, "max_len": 100, "bidirectional": True}),
}


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, tuple[torch.nn.Module, Path]]:
    root = tmp_path_factory.mktemp("awd-onnx")
    out = {}
    for name, (cls, kw) in MODELS.items():
        model = randomize_(cls(tiny_config(**kw)), seed=3).eval()
        export_onnx(model, root / name, tokenizer=tokenizer_for(model.config.vocab_size))
        out[name] = (model, root / name)
    return out


def padded_batch(batch: int, length: int, vocab: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row 0 is ``length`` tokens long; the others are shorter, padded on the right (odd rows) or the left."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(8, vocab, (batch, length), generator=gen)
    mask = torch.ones(batch, length, dtype=torch.long)
    for row in range(1, batch):
        n = int(torch.randint(1, length + 1, (), generator=gen))
        if row % 2:
            mask[row, n:] = 0
        else:
            mask[row, : length - n] = 0
    ids[mask == 0] = 1
    return ids, mask


def output_of(out) -> torch.Tensor:
    return out["last_hidden_state"] if "last_hidden_state" in out else out["logits"]


@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_runtime_matches_pytorch_at_every_shape(exports, name):
    model, folder = exports[name]
    onnx_model = OnnxModel.from_pretrained(folder)
    assert onnx_model.task == TASK_OF[type(model)]
    worst = 0.0
    for batch in BATCHES:
        for length in LENGTHS:
            ids, mask = padded_batch(batch, length, model.config.vocab_size, seed=batch * 1000 + length)
            with torch.no_grad():
                expected = output_of(model(input_ids=ids, attention_mask=mask))
            got = output_of(onnx_model(input_ids=ids, attention_mask=mask))
            assert got.shape == expected.shape
            worst = max(worst, float((got - expected).abs().max()))
    assert worst <= FP32_ATOL, f"{name}: ONNX Runtime differs from PyTorch by {worst:.3g}"


def test_lstm_layers_are_onnx_lstm_ops_and_the_classifier_loops_over_chunks(exports):
    def op_types(graph: onnx.GraphProto) -> list[str]:
        types = []
        for node in graph.node:
            types.append(node.op_type)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    types += op_types(attr.g)
        return types

    lm = onnx.load(str(exports["lm"][1] / "model.onnx"))
    assert op_types(lm.graph).count("LSTM") == 3 and "Scan" not in op_types(lm.graph)
    classifier = onnx.load(str(exports["classifier"][1] / "model.onnx"))
    top = [n.op_type for n in classifier.graph.node]
    assert "Scan" in top and "LSTM" not in top and op_types(classifier.graph).count("LSTM") == 3
    for graph in (lm.graph, classifier.graph):  # dynamic batch and tokens, never a fixed padded length
        for value in graph.input:
            assert [d.dim_param for d in value.type.tensor_type.shape.dim] == ["batch", "tokens"]


def test_lstm_op_skips_the_trailing_rows_of_length_zero():
    """hf_elmo_onnx::lstm (PyTorch side): rows of length 0 keep their states and output zeros, the others are what
    torch's LSTM gives them; a row of length 0 before a running row is refused (the ONNX side slices a prefix)."""
    from hf_elmo.onnx.awd_lstm import _onnx_gates

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(4, 6)
    w = _onnx_gates(lstm.weight_ih_l0.detach())[None]
    r = _onnx_gates(lstm.weight_hh_l0.detach())[None]
    b = torch.cat([_onnx_gates(lstm.bias_ih_l0.detach()), _onnx_gates(lstm.bias_hh_l0.detach())])[None]
    x, h0, c0 = torch.randn(5, 3, 4), torch.randn(1, 3, 6), torch.randn(1, 3, 6)
    y, h, c = torch.ops.hf_elmo_onnx.lstm(x, torch.tensor([5, 3, 0]), h0, c0, w, r, b, False)
    with torch.no_grad():
        full, (h_full, c_full) = lstm(x[:, :1], (h0[:, :1], c0[:, :1]))
        short, (h_short, c_short) = lstm(x[:3, 1:2], (h0[:, 1:2], c0[:, 1:2]))
    torch.testing.assert_close(y[:, 0], full[:, 0])
    torch.testing.assert_close(y[:3, 1], short[:, 0])
    assert not y[3:, 1].any() and not y[:, 2].any()
    torch.testing.assert_close(h, torch.cat([h_full, h_short, h0[:, 2:]], 1))
    torch.testing.assert_close(c, torch.cat([c_full, c_short, c0[:, 2:]], 1))
    with pytest.raises(ValueError, match="rows of length 0 must be the batch's last rows"):
        torch.ops.hf_elmo_onnx.lstm(x, torch.tensor([5, 0, 3]), h0, c0, w, r, b, False)


def test_long_document_is_read_in_chunks(exports):
    """A 20,000-token document (4,000 chunks of the tiny model's bptt): same logits as PyTorch."""
    model, folder = exports["classifier"]
    onnx_model = OnnxModel.from_pretrained(folder)
    ids = torch.randint(8, model.config.vocab_size, (1, 20_000), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    assert float((onnx_model(input_ids=ids).logits - expected).abs().max()) <= FP32_ATOL


def test_padding_side_does_not_change_a_row(exports):
    model, folder = exports["lm"]
    onnx_model = OnnxModel.from_pretrained(folder)
    ids = torch.randint(8, 50, (1, 6))
    right = torch.cat([ids, torch.ones(1, 3, dtype=torch.long)], 1)
    left = torch.cat([torch.ones(1, 3, dtype=torch.long), ids], 1)
    mask_r = torch.tensor([[1] * 6 + [0] * 3])
    got_r = onnx_model(input_ids=right, attention_mask=mask_r).logits[0, :6]
    got_l = onnx_model(input_ids=left, attention_mask=mask_r.flip(1)).logits[0, 3:]
    assert float((got_r - got_l).abs().max()) <= 1e-5


# --------------------------------------------------------------------------------------------------------------------
# The converted fastai fixtures: ONNX Runtime gives fastai's numbers; the CLI's folder and its card
# --------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fastai_classifier_export(tmp_path_factory) -> Path:
    cfg = fixture_config()
    root = tmp_path_factory.mktemp("awd-fastai")
    converted = convert_fastai_awd_lstm(FASTAI_FIXTURE / "clas_state_dict.pth", FASTAI_FIXTURE / "vocab.pkl",
                                        root / "classifier", bptt=cfg["bptt"], max_len=cfg["max_len"])
    assert main(["export", str(converted), str(root / "onnx")]) == 0
    return root / "onnx"


@requires_fixture
def test_exported_classifier_gives_fastais_logits(fastai_classifier_export):
    expected = load_expected("clas_expected.pt")
    model = OnnxModel.from_pretrained(fastai_classifier_export)
    ids = expected["input"]
    got = model(input_ids=ids).logits  # no mask: xxpad is padding, as in fastai (its pad_input_chunk layout)
    assert float((got - expected["logits"]).abs().max()) <= FASTAI_ATOL


@requires_fixture
def test_exported_language_model_gives_fastais_logits(tmp_path):
    converted = convert_fastai_awd_lstm(FASTAI_FIXTURE / "lm_state_dict.pth", FASTAI_FIXTURE / "vocab.pkl",
                                        tmp_path / "lm")
    export_onnx(converted, tmp_path / "onnx")
    expected = load_expected("lm_expected.pt")
    model = OnnxModel.from_pretrained(tmp_path / "onnx")
    bptt = expected["bptt"]
    got = model(input_ids=expected["input"][:, :bptt]).logits
    assert float((got - expected["logits_call1"]).abs().max()) <= FASTAI_ATOL
    got = model(input_ids=expected["input"][:, bptt:]).logits  # a fresh state: fastai's call after reset()
    assert float((got - expected["logits_after_reset"]).abs().max()) <= FASTAI_ATOL


@requires_fixture
def test_exported_folder_card_and_tokenizer(fastai_classifier_export):
    folder = fastai_classifier_export
    assert {"model.onnx", "config.json", "README.md", "tokenizer_config.json"} <= {p.name for p in folder.iterdir()}
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "awd_lstm" and config["onnx"]["task"] == "text-classification"
    assert config["architectures"] == ["AWDLSTMForSequenceClassification"]
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "onnx" and card.data.pipeline_tag == "text-classification"
    assert {"awd-lstm", "ulmfit", "onnx"} <= set(card.data.tags)
    # the card's usage snippets run against the folder, as written
    namespaces = run_card_snippets(card.text)  # hf-elmo's OnnxModel, and ONNX Runtime alone
    assert len(namespaces) == 2 and all(ns["predicted"].shape == (2,) for ns in namespaces)


@requires_fixture
def test_int8_classifier_agrees_with_float32(fastai_classifier_export, tmp_path):
    """Dynamic int8 (LSTM weights included) on the fastai fixture classifier: predicted classes agree with float32."""
    source = fastai_classifier_export
    export_onnx(str(source.parent / "classifier"), tmp_path / "int8", quantize="int8")
    config = json.loads((tmp_path / "int8" / "config.json").read_text())["onnx"]
    assert config["dtype"] == "int8" and "LSTM" in config["quantization"]["op_types"]
    graph = onnx.load(str(tmp_path / "int8" / "model.onnx"))
    body = next(a.g for n in graph.graph.node if n.op_type == "Scan" for a in n.attribute if a.name == "body")
    assert sum(n.op_type == "DynamicQuantizeLSTM" for n in body.node) == 3
    fp32, int8 = OnnxModel.from_pretrained(source), OnnxModel.from_pretrained(tmp_path / "int8")
    gen = np.random.default_rng(0)
    agree, total = 0, 0
    for _ in range(10):
        ids, mask = padded_batch(20, int(gen.integers(5, 80)), fp32.config.vocab_size, seed=int(gen.integers(1e6)))
        a = fp32(input_ids=ids.numpy(), attention_mask=mask.numpy()).logits
        b = int8(input_ids=ids.numpy(), attention_mask=mask.numpy()).logits
        agree += int((a.argmax(-1) == b.argmax(-1)).sum())
        total += len(a)
    assert agree / total >= INT8_MIN_AGREEMENT


def test_fp16_language_model(exports, tmp_path):
    model, _ = exports["lm"]
    export_onnx(model, tmp_path / "fp16", fp16=True, tokenizer=tokenizer_for(model.config.vocab_size))
    onnx_model = OnnxModel.from_pretrained(tmp_path / "fp16")
    ids, mask = padded_batch(3, 40, model.config.vocab_size, seed=5)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
    got = onnx_model(input_ids=ids, attention_mask=mask).logits
    assert got.dtype == torch.float32
    a, b = got[mask.bool()].double(), expected[mask.bool()].double()
    cosine = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    assert float(cosine.min()) >= FP16_MIN_COSINE


# --------------------------------------------------------------------------------------------------------------------
# Registration and bad input
# --------------------------------------------------------------------------------------------------------------------
def test_registered_with_optimum():
    for task in ("feature-extraction", "text-generation", "text-classification"):
        constructor = TasksManager.get_exporter_config_constructor(
            exporter="onnx", model_type="awd_lstm", task=task, library_name="transformers")
        assert isinstance(constructor(tiny_config()), AWDLSTMOnnxConfig)
    assert isinstance(get_onnx_config(tiny_config(), "sequence-classification"), AWDLSTMOnnxConfig)
    with pytest.raises(UnsupportedExportError, match="token-classification"):
        get_onnx_config(tiny_config(), "token-classification")


def test_export_needs_a_tokenizer_for_a_model_instance(tmp_path):
    model = AWDLSTMForLanguageModeling(tiny_config()).eval()
    with pytest.raises(ValueError, match="needs its tokenizer"):
        export_onnx(model, tmp_path / "out")


@pytest.mark.parametrize(
    "inputs, error, message",
    [
        (dict(input_ids=np.zeros((2, 3), dtype=np.float32)), TypeError, "integer token ids"),
        (dict(input_ids=np.zeros((2, 3, 4), dtype=np.int64)), ValueError, r"shape \(batch, tokens\)"),
        (dict(input_ids=np.full((1, 3), 50)), ValueError, r"\[0, 50\)"),
        (dict(input_ids=np.zeros((2, 3), dtype=np.int64), attention_mask=np.ones((2, 4))), ValueError, "does not match"),
        (dict(input_ids=np.full((2, 3), 9), attention_mask=np.array([[1, 1, 1], [0, 0, 0]])), ValueError,
         r"rows \[1\] .* no real token"),
    ],
)
def test_bad_inputs_get_clear_errors(exports, inputs, error, message):
    onnx_model = OnnxModel.from_pretrained(exports["classifier"][1])
    with pytest.raises(error, match=message):
        onnx_model(**inputs)


def test_empty_batch_gives_empty_outputs(exports):
    for name in ("lm", "classifier"):
        model, folder = exports[name]
        out = OnnxModel.from_pretrained(folder)(input_ids=np.zeros((0, 4), dtype=np.int64))
        expected = (0, 4, model.config.vocab_size) if name == "lm" else (0, model.config.num_labels)
        assert out.logits.shape == expected


def test_missing_onnx_file(exports, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(exports["lm"][1], folder)
    (folder / "model.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="no ONNX model file 'model.onnx'"):
        OnnxModel.from_pretrained(folder)
