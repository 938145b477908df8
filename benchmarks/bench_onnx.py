"""ONNX Runtime (CPU) vs PyTorch eager: ElmoModel tokens/s on the same inputs, in one run, and the int8 model's
accuracy.

The set-up is bench_elmo.py's (whose helpers this script reuses): random weights of a published size in the original
HDF5 layout (../shared/tools/make_elmo_weights.py), batches of 32 of the bilm-tf fixture's news sentences, tokenizer
included, one warm-up batch, eval/no-grad for PyTorch. The model is exported with hf_elmo.onnx.export_onnx (float32,
and int8 dynamic quantisation) and run with ONNX Runtime's CPU provider with as many threads as torch uses. A token is
a word of the input sentences.

    python benchmarks/bench_onnx.py --size original
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from machine import cpu_name

from bench_elmo import load, sentences  # benchmarks/bench_elmo.py, beside this script
from hf_elmo import ElmoTokenizer
from hf_elmo.onnx import OnnxModel, export_onnx


def exported(model: torch.nn.Module, folder: Path, **kwargs) -> Path:
    if not (folder / "model.onnx").is_file():
        start = time.perf_counter()
        export_onnx(model, folder, **kwargs)
        print(f"# exported {folder.name} in {time.perf_counter() - start:.0f} s")
    return folder


def batches(batch_size: int, n: int) -> list[list[list[str]]]:
    pool = sentences()
    return [[pool[(b * batch_size + i) % len(pool)] for i in range(batch_size)] for b in range(n + 1)]


def tokens_per_s(run, plan, tokenizer, tensors: str) -> tuple[float, float]:
    """(tokens per second of wall-clock time, tokens per second of this process's CPU time, all threads)."""
    run(tokenizer(plan[0], is_split_into_words=True, padding=True, return_tensors=tensors))  # warm-up
    n_tokens, start, cpu_start = 0, time.perf_counter(), time.process_time()
    for batch in plan[1:]:
        run(tokenizer(batch, is_split_into_words=True, padding=True, return_tensors=tensors))
        n_tokens += sum(len(s) for s in batch)
    return n_tokens / (time.perf_counter() - start), n_tokens / (time.process_time() - cpu_start)


def accuracy(onnx_model: OnnxModel, model: torch.nn.Module, tokenizer: ElmoTokenizer) -> dict[str, float]:
    """On the 30 fixture sentences: largest absolute difference and cosine similarities (min, mean) of every real
    word's vectors, over the scalar mix and every layer, to PyTorch float32."""
    enc = tokenizer(sentences(), is_split_into_words=True, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = model(**enc)
    got = onnx_model(**enc)
    mask = enc["attention_mask"].bool().numpy()
    pairs = [(got.last_hidden_state, expected.last_hidden_state)] + list(zip(got.hidden_states,
                                                                             expected.hidden_states))
    worst, cos_min, cos_means = 0.0, 1.0, []
    for a, b in pairs:
        a, b = a.numpy()[mask].astype(np.float64), b.numpy()[mask].astype(np.float64)
        worst = max(worst, float(np.abs(a - b).max()))
        cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
        cos_min = min(cos_min, float(cos.min()))
        cos_means.append(float(cos.mean()))
    return {"max_abs_diff": worst, "min_cos": cos_min, "mean_cos": min(cos_means)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["small", "medium", "original"], default="original")
    ap.add_argument("--batches", type=int, default=5, help="timed batches after one warm-up batch")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3, help="rounds over all runners; the best of each is reported")
    ap.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads (default: torch's)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hf-elmo-bench")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    cpu = cpu_name()
    print(f"# ElmoModel {args.size}, batch {args.batch_size}, {args.batches} batches, best of {args.rounds} rounds, "
          f"torch {torch.__version__}, "
          f"onnxruntime {ort.__version__}, {threads} threads, {cpu}")

    model = load(args.size, torch.float32, args.cache)
    tokenizer = ElmoTokenizer()
    plan = batches(args.batch_size, args.batches)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    variants = {
        "float32": exported(model, args.cache / f"onnx-{args.size}-float32"),
        "int8": exported(model, args.cache / f"onnx-{args.size}-int8", quantize="int8"),
    }

    def torch_run(enc):
        with torch.inference_mode():
            model(**enc)

    runners = {"PyTorch eager float32": (torch_run, "pt")}
    onnx_models = {}
    for dtype, folder in variants.items():
        onnx_models[dtype] = OnnxModel.from_pretrained(folder, provider="CPUExecutionProvider",
                                                       session_options=options)
        runners[f"ONNX Runtime CPU {dtype}"] = (onnx_models[dtype], "np")
    # rounds interleave the runners, and the best round of each is kept: on a shared machine, other work slows some
    # rounds down, which would otherwise favour whichever runner ran while the machine was quiet
    best = {name: (0.0, 0.0) for name in runners}
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for _ in range(args.rounds):
        for name, (run, tensors) in runners.items():
            wall, cpu_time = tokens_per_s(run, plan, tokenizer, tensors)
            best[name] = (max(best[name][0], wall), max(best[name][1], cpu_time))
    print(f"# load average before timing: {load_average:.1f} (other processes slow the wall-clock figures down; "
          "tokens per CPU-second, all threads counted, are less sensitive to them)")
    torch_tps, torch_cpu = best["PyTorch eager float32"]
    print(f"{'PyTorch eager':18s} float32 {torch_tps:8.0f} tokens/s {torch_cpu:8.0f} tokens/CPU-s")
    for dtype, onnx_model in onnx_models.items():
        tps, cpu_tps = best[f"ONNX Runtime CPU {dtype}"]
        acc = accuracy(onnx_model, model, tokenizer)
        print(f"{'ONNX Runtime CPU':18s} {dtype:7s} {tps:8.0f} tokens/s {cpu_tps:8.0f} tokens/CPU-s "
              f"({tps / torch_tps:.2f}x / {cpu_tps / torch_cpu:.2f}x PyTorch); vs PyTorch float32: max abs diff "
              f"{acc['max_abs_diff']:.2g}, cosine similarity min {acc['min_cos']:.6f}, mean {acc['mean_cos']:.6f}")


if __name__ == "__main__":
    main()
