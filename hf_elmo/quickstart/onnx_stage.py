"""Quickstart stage: export the ULMFiT classifier to ONNX (float32 and int8), check ONNX Runtime against PyTorch on
the validation texts, and time both.

The figures it reports: the largest absolute difference of the float32 export's logits to PyTorch's, the share of
validation texts on which each export predicts PyTorch's class, and the tokens/s of PyTorch eager, ONNX Runtime
float32 and int8 on the same batches (CPU provider, tokenizer excluded). The exported folders are Hub-ready
(``model.onnx``, config, tokenizer, card).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from ..models.awd_lstm import AWDLSTMForSequenceClassification


def _tokens_per_s(run: Callable[[dict], Any], batches: list[dict], rounds: int = 2) -> float:
    """Tokens (real positions) per second over ``batches``, the best of ``rounds`` after one warm-up call."""
    run(batches[0])
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for batch in batches:
            run(batch)
        best = min(best, time.perf_counter() - start)
    return tokens / best


def run(classifier_folder: Path, texts: list[str], output: Path, batch_size: int = 32,
        shown_as: Path | None = None) -> dict[str, Any]:
    """Exports ``classifier_folder`` to ``output / "onnx"`` (float32) and ``output / "onnx-int8"``; returns the
    figures. ``texts`` are the validation texts the exports are checked and timed on; ``shown_as`` is where ``output``
    will be once the run completes (the cards' snippets and the figures name the folders there)."""
    from ..onnx import OnnxModel, export_onnx

    tokenizer = AutoTokenizer.from_pretrained(classifier_folder)
    model = AWDLSTMForSequenceClassification.from_pretrained(classifier_folder).eval()
    folders = {"float32": output / "onnx", "int8": output / "onnx-int8"}
    start = time.perf_counter()
    for dtype, folder in tqdm(folders.items(), desc="ONNX export", leave=False):
        export_onnx(str(classifier_folder), folder, quantize="int8" if dtype == "int8" else None,
                    shown_as=(shown_as or output) / folder.name)
    export_seconds = time.perf_counter() - start
    # similar lengths in a batch, as a server would batch them
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches = [tokenizer([texts[i] for i in order[k : k + batch_size]], padding=True, return_tensors="pt")
               for k in range(0, len(order), batch_size)]
    with torch.inference_mode():
        expected = [model(**b).logits for b in batches]
    figures: dict[str, Any] = {"folders": ", ".join(str((shown_as or output) / f.name) for f in folders.values()),
                               "export seconds": round(export_seconds, 1)}
    speeds = {}
    with torch.inference_mode():
        speeds["PyTorch eager float32"] = _tokens_per_s(lambda b: model(**b), batches)
    for dtype, folder in folders.items():
        onnx_model = OnnxModel.from_pretrained(folder, provider="CPUExecutionProvider")
        got = [onnx_model(**{k: v.numpy() for k, v in b.items()}).logits for b in batches]
        diff = float(np.max([np.abs(g - e.numpy()).max() for g, e in zip(got, expected)]))  # NaN stays NaN
        agree = np.mean(np.concatenate([g.argmax(-1) == e.numpy().argmax(-1) for g, e in zip(got, expected)]))
        figures[f"{dtype} max abs diff to PyTorch"] = f"{diff:.2g}"
        figures[f"{dtype} predictions equal to PyTorch's"] = f"{100 * agree:.1f}%"
        numpy_batches = [{k: v.numpy() for k, v in b.items()} for b in batches]
        speeds[f"ONNX Runtime CPU {dtype}"] = _tokens_per_s(onnx_model, numpy_batches)
    base = speeds["PyTorch eager float32"]
    for name, value in speeds.items():
        figures[f"{name} tokens/s"] = f"{value:,.0f}" + ("" if value == base else f" ({value / base:.2f}x)")
    return figures
