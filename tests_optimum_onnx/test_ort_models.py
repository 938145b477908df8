"""The folders ``hf_elmo.onnx.export_onnx`` writes load with optimum-onnx's ORTModel classes where hf_elmo is not
installed, as a user of optimum-onnx 0.1.0 (transformers < 4.58) loads them, and reproduce the PyTorch outputs that
the main environment saved beside them."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys

import numpy as np
import pytest
import torch
import transformers
from transformers import AutoTokenizer, pipeline

import optimum.onnxruntime
from conftest import for_tasks

ATOL = 1e-4
# what each ORTModel class returns: the fields compared with the PyTorch outputs (None: every ONNX output, by name)
COMPARED = {
    "ORTModelForCustomTasks": None,
    "ORTModelForFeatureExtraction": ("last_hidden_state",),
    "ORTModelForSequenceClassification": ("logits",),
    "ORTModelForTokenClassification": ("logits",),
}


def expected(case: dict, name: str) -> np.ndarray:
    return np.load(case["expected"] / f"{name}.npy")


def load_tokenizer(case: dict):
    return AutoTokenizer.from_pretrained(case["folder"], trust_remote_code=True)


def load(case: dict, ort_class: str):
    return getattr(optimum.onnxruntime, ort_class).from_pretrained(case["folder"], trust_remote_code=True)


def test_environment():
    """transformers 4.57 and optimum-onnx 0.1.0; hf_elmo is not installed, so the folders' own code is all there is."""
    assert transformers.__version__.startswith("4.57."), transformers.__version__
    assert importlib.metadata.version("optimum-onnx") == "0.1.0"
    assert importlib.util.find_spec("hf_elmo") is None, "hf_elmo is importable in the optimum-onnx environment"


def test_tokenizer_is_the_folders_code(case):
    tokenizer = load_tokenizer(case)
    assert type(tokenizer).__module__.startswith("transformers_modules."), type(tokenizer).__module__
    enc = tokenizer(case["texts"], padding=True, return_tensors="np")
    for name in ("input_ids", "attention_mask"):
        np.testing.assert_array_equal(enc[name], expected(case, name), err_msg=name)


@pytest.mark.parametrize("tensors", ["pt", "np"])
def test_ort_model_reproduces_pytorch(case, ort_class, tensors):
    model = load(case, ort_class)
    assert type(model.config).__module__.startswith("transformers_modules."), type(model.config).__module__
    assert model.config.architectures == [case["model_class"]]
    assert list(model.input_names) == ["input_ids", "attention_mask"]
    enc = load_tokenizer(case)(case["texts"], padding=True, return_tensors=tensors)
    out = model(**enc)
    fields = COMPARED[ort_class] or case["outputs"]
    if COMPARED[ort_class] is None:
        assert list(out.keys()) == case["outputs"]
    for name in fields:
        got = out[name]
        assert isinstance(got, torch.Tensor if tensors == "pt" else np.ndarray), (name, type(got))
        got = got.numpy() if tensors == "pt" else got
        want = expected(case, name)
        assert got.shape == want.shape, (name, got.shape, want.shape)
        diff = float(np.abs(got - want).max())
        assert diff <= ATOL, f"{name}: ONNX Runtime (through {ort_class}) differs from PyTorch by {diff:.3g}"


@for_tasks("text-classification")
def test_text_classification_pipeline(case):
    """transformers' pipeline over ORTModelForSequenceClassification (which reads one text at a time, unpadded):
    every label's score is the softmax of the PyTorch model's logits for that text alone."""
    model = load(case, "ORTModelForSequenceClassification")
    classifier = pipeline("text-classification", model=model, tokenizer=load_tokenizer(case))
    logits = expected(case, "logits.one_at_a_time").astype(np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    for text, row in zip(case["texts"], probs):
        scores = {r["label"]: r["score"] for r in classifier(text, top_k=None)}
        want = {model.config.id2label[i]: p for i, p in enumerate(row)}
        assert scores.keys() == want.keys()
        for label, p in want.items():
            assert abs(scores[label] - p) <= ATOL, (text, label, scores[label], p)


def test_loading_needs_trust_remote_code(case):
    """The folders' model_type is unknown to transformers 4.57: without trust_remote_code=True, loading stops with
    transformers' own request for it (what the README tells users to pass)."""
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        optimum.onnxruntime.ORTModelForCustomTasks.from_pretrained(case["folder"])


def test_hf_elmo_was_never_imported():
    assert not [m for m in sys.modules if m == "hf_elmo" or m.startswith("hf_elmo.")]
