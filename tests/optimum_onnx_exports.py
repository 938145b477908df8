"""The exported folders that the ``optimum_onnx`` nox session loads with optimum-onnx's ORTModel classes (in an
environment with transformers 4.57 and without hf_elmo, see noxfile.py and tests_optimum_onnx/), and the PyTorch
outputs they must reproduce there.

This side runs in the main environment (hf_elmo, transformers 5): ``write_exports(root)`` (the fixture of
tests/test_optimum_onnx.py) or ``python tests/optimum_onnx_exports.py ROOT`` (what the nox session runs when it is
started on its own). It writes::

    ROOT/manifest.json          {"cases": {name: {"folder", "task", "model_class", "texts", "outputs"}}, "versions"}
    ROOT/<name>/                the folder hf_elmo.onnx.export_onnx wrote (small random-weight model)
    ROOT/<name>.expected/       input_ids.npy and attention_mask.npy: the folder's tokenizer on the texts (padded);
                                <output>.npy for each ONNX output: the PyTorch model's value on those inputs;
                                for text classification, logits.one_at_a_time.npy: the logits of each text alone

A case is a small model of one class (and its tokenizer) exported for its task; a model family that
``hf_elmo.onnx.registered_model_types()`` lists gets its cases here, and the nox side tests every case the manifest
names with the ORTModel classes that fit its task.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import transformers

import hf_elmo
from hf_elmo import (
    AWDLSTMForSequenceClassification,
    AWDLSTMTokenizer,
    ElmoForLanguageModeling,
    ElmoForSequenceClassification,
    ElmoForTokenClassification,
    ElmoModel,
    ElmoTokenizer,
)
from hf_elmo.onnx import export_onnx, get_onnx_config, registered_model_types

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: the helpers beside this file

import awd_lstm_testing  # noqa: E402
from conftest import randomize_, tiny_config  # noqa: E402

ELMO_TEXTS = ["The quick brown fox didn't jump.", "Zoë's café (12.50 €)!", "ELMo"]
AWD_LSTM_TEXTS = ["The cat sat on the mat.", "ULMFiT is great!", "a much longer text about the quick brown fox"]
AWD_LSTM_ITOS = ["xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxrep", "xxwrep", "xxup", "xxmaj", "the", "cat",
                 "sat", "on", "mat", ".", "is", "great", "!", "quick", "brown", "fox", "a"] + [f"w{i}" for i in range(28)]


@dataclass(frozen=True)
class Case:
    name: str
    model_type: str
    build: Callable[[], tuple[Any, Any]]  # -> (model in eval mode, tokenizer)
    texts: list[str]


def _elmo(cls: type, seed: int, **config: Any) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        torch.manual_seed(seed)
        # N(0, 0.35²) weights, as tests/test_onnx_elmo.py: at 0.5 the tiny LSTMs are close to chaotic
        return randomize_(cls(tiny_config(**config)), seed, std=0.35).eval(), ElmoTokenizer()

    return build


def _awd_lstm(cls: type, seed: int, **config: Any) -> Callable[[], tuple[Any, Any]]:
    def build() -> tuple[Any, Any]:
        model = awd_lstm_testing.tiny_model(cls, seed=seed, vocab_size=len(AWD_LSTM_ITOS), **config)
        return model, AWDLSTMTokenizer(itos=AWD_LSTM_ITOS)

    return build


CASES = (
    Case("elmo-feature-extraction", "elmo", _elmo(ElmoModel, 0), ELMO_TEXTS),
    Case("elmo-text-classification", "elmo",
         _elmo(ElmoForSequenceClassification, 1, num_labels=3, do_layer_norm=True), ELMO_TEXTS),
    Case("elmo-token-classification", "elmo", _elmo(ElmoForTokenClassification, 2, num_labels=4), ELMO_TEXTS),
    Case("elmo-bidirectional-lm", "elmo", _elmo(ElmoForLanguageModeling, 3, vocab_size=23), ELMO_TEXTS),
    Case("awd_lstm-text-classification", "awd_lstm", _awd_lstm(AWDLSTMForSequenceClassification, 4, num_labels=3),
         AWD_LSTM_TEXTS),
)


def active_cases() -> list[Case]:
    """The cases of the model families that have an ONNX exporter (hf_elmo.onnx.registered_model_types())."""
    registered = registered_model_types()
    return [case for case in CASES if case.model_type in registered]


def write_exports(root: str | Path, cases: list[Case] | None = None) -> dict[str, Any]:
    """Exports every case into ``root`` (a new or empty folder) with its expected outputs; returns the manifest."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "cases": {},
        "versions": {"hf_elmo": hf_elmo.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__},
    }
    for case in active_cases() if cases is None else cases:
        model, tokenizer = case.build()
        folder = root / case.name
        export_onnx(model, folder, tokenizer=tokenizer)
        onnx_section = json.loads((folder / "config.json").read_text(encoding="utf-8"))["onnx"]
        exporter_config = get_onnx_config(model.config, onnx_section["task"])
        enc = tokenizer(case.texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            values = exporter_config.wrap_model(model).eval()(*(enc[n] for n in exporter_config.input_names))
        expected = root / f"{case.name}.expected"
        expected.mkdir()
        for name in ("input_ids", "attention_mask"):
            np.save(expected / f"{name}.npy", enc[name].numpy())
        for name, value in zip(exporter_config.output_names, values):
            np.save(expected / f"{name}.npy", value.float().numpy())
        if onnx_section["task"] == "text-classification":
            # what transformers' text-classification pipeline computes: one text at a time, without padding (ELMo's
            # layer-normalised scalar mix takes its statistics over the whole batch)
            with torch.no_grad():
                rows = [model(**tokenizer([text], return_tensors="pt")).logits for text in case.texts]
            np.save(expected / "logits.one_at_a_time.npy", torch.cat(rows).float().numpy())
        outputs = [o["name"] for o in onnx_section["outputs"]]
        if outputs != list(exporter_config.output_names):  # the folder describes the graph the values are named for
            raise RuntimeError(f"{case.name}: config.json lists the outputs {outputs}, the exporter config "
                               f"{exporter_config.output_names}")
        manifest["cases"][case.name] = {"folder": case.name, "task": onnx_section["task"],
                                        "model_class": onnx_section["model_class"], "texts": case.texts,
                                        "outputs": outputs}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: python {Path(__file__).name} OUTPUT_DIR")
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    written = write_exports(sys.argv[1])
    print(f"exported {', '.join(written['cases'])} to {sys.argv[1]}")
