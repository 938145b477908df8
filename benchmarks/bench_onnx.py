"""ONNX Runtime vs PyTorch eager: tokens/s on the same inputs, in one run, and the reduced-precision models'
accuracy, for ElmoModel and for the AWD-LSTM (ULMFiT) classifier: on the CPU (float32 and int8, ONNX Runtime's CPU
provider) or, with ``--device cuda``, on the GPU (float32 and float16 each side, ONNX Runtime's CUDA provider, which
needs onnxruntime-gpu: ``pip install 'hf-elmo[onnx-gpu]'``).

* ``--model elmo``: bench_elmo.py's set-up (whose helpers this script reuses): random weights of a published size in
  the original HDF5 layout (../shared/tools/make_elmo_weights.py), batches of 32 of the bilm-tf fixture's news
  sentences. A token is a word of the input sentences. Accuracy: cosine similarity of the word vectors.
* ``--model awd-lstm``: AWDLSTMForSequenceClassification at ULMFiT's size (vocab 60,000, embedding 400, hidden 1152,
  3 layers, bptt 72, max_len 1440, head 1200 → 50 → 2), random weights (seeded), batches of 32 documents of 10 to 40
  sentences of the standard library's docstrings (about 150 to 800 tokens each), in random order or, with
  ``--sorted-batches``, batched by similar length as fastai's SortedDL batches a classifier's inputs (both the eager
  path and the exported graph drop finished documents as they go). A token is a token of the tokenizer's output. Accuracy: agreement of the predicted class and cosine similarity of the logits.

Both: tokenizer included, one warm-up batch, a rest of ``--pause`` seconds before each timing (ONNX Runtime's
worker threads keep spinning after a run: without the rest they took ~11% of the CPU from the PyTorch run after
them), eval/no-grad for PyTorch (and a CUDA synchronisation after each of its
batches on the GPU; ONNX Runtime's outputs come back to the host). The model is exported with
hf_elmo.onnx.export_onnx (float32, and int8 dynamic quantisation for the CPU or float16 for the GPU) and run with ONNX
Runtime with as many CPU threads as torch uses. Each ONNX Runtime variant is compared with PyTorch at the same
precision where there is one (float16: the PyTorch model in float16), else with PyTorch float32 (int8).

    python benchmarks/bench_onnx.py --model elmo --size original
    python benchmarks/bench_onnx.py --model awd-lstm
    python benchmarks/bench_onnx.py --model awd-lstm --device cuda
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from machine import cpu_name

import hf_elmo
from bench_elmo import load, sentences  # benchmarks/bench_elmo.py, beside this script
from hf_elmo import ElmoTokenizer
from hf_elmo.onnx import OnnxModel, export_onnx


def source_digest() -> str:
    """A digest of hf_elmo's source files: the exports are cached under it, so that a change to the code that builds
    the graphs exports them again rather than timing a stale graph."""
    root = Path(hf_elmo.__file__).parent
    digest = hashlib.sha1()
    for file in sorted(root.rglob("*.py")):
        digest.update(file.relative_to(root).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:10]


def exported(model: torch.nn.Module, folder: Path, **kwargs) -> Path:
    if not (folder / "model.onnx").is_file():
        start = time.perf_counter()
        export_onnx(model, folder, **kwargs)
        print(f"# exported {folder.parent.name}/{folder.name} in {time.perf_counter() - start:.0f} s")
    return folder


def batches(batch_size: int, n: int) -> list[list[list[str]]]:
    pool = sentences()
    return [[pool[(b * batch_size + i) % len(pool)] for i in range(batch_size)] for b in range(n + 1)]


def tokens_per_s(run, plan, encode) -> tuple[float, float]:
    """(tokens per second of wall-clock time, tokens per second of this process's CPU time, all threads);
    ``encode(batch)`` → (the model's inputs, the number of tokens)."""
    run(encode(plan[0])[0])  # warm-up
    n_tokens, start, cpu_start = 0, time.perf_counter(), time.process_time()
    for batch in plan[1:]:
        inputs, n = encode(batch)
        run(inputs)
        n_tokens += n
    return n_tokens / (time.perf_counter() - start), n_tokens / (time.process_time() - cpu_start)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# --------------------------------------------------------------------------------------------------------------------
# The workloads: (model, plan of batches, encode(batch, tensors) -> (inputs, tokens), accuracy(onnx_model) -> text)
# --------------------------------------------------------------------------------------------------------------------
def elmo_workload(args):
    model = load(args.size, torch.float32, args.cache)
    tokenizer = ElmoTokenizer()

    def encode(batch, tensors):
        return (tokenizer(batch, is_split_into_words=True, padding=True, return_tensors=tensors),
                sum(len(s) for s in batch))

    def accuracy(onnx_model: OnnxModel) -> str:
        """On the 30 fixture sentences: largest absolute difference and cosine similarities (min, mean) of every
        real word's vectors, over the scalar mix and every layer, to PyTorch float32."""
        enc = tokenizer(sentences(), is_split_into_words=True, padding=True, return_tensors="pt")
        with torch.inference_mode():
            expected = model(**enc.to(model.device))
        got = onnx_model(**enc.to("cpu"))
        mask = enc["attention_mask"].bool().cpu().numpy()
        pairs = [(got.last_hidden_state, expected.last_hidden_state)] + list(zip(got.hidden_states,
                                                                                 expected.hidden_states))
        worst, cos_min, cos_means = 0.0, 1.0, []
        for a, b in pairs:
            a, b = a.numpy()[mask], b.float().cpu().numpy()[mask]
            worst = max(worst, float(np.abs(a.astype(np.float64) - b).max()))
            cos = cosines(a, b)
            cos_min = min(cos_min, float(cos.min()))
            cos_means.append(float(cos.mean()))
        return (f"max abs diff {worst:.2g}, cosine similarity of the word vectors min {cos_min:.6f}, mean "
                f"{min(cos_means):.6f}")

    return f"ElmoModel {args.size}", model, f"onnx-{args.size}", None, batches(args.batch_size, args.batches), \
        encode, accuracy


def awd_lstm_workload(args):
    from hf_elmo import AWDLSTMConfig, AWDLSTMForSequenceClassification, AWDLSTMTokenizer
    from hf_elmo.data.stdlib_corpus import stdlib_sentences

    texts = stdlib_sentences()
    rng = np.random.default_rng(0)
    documents, start = [], 0
    while len(documents) < args.batch_size * (args.batches + 1) + 64:
        n = int(rng.integers(10, 41))
        documents.append(" ".join(texts[(start + i) % len(texts)] for i in range(n)))
        start += n
    itos = AWDLSTMTokenizer.build_vocab(texts, min_freq=1, max_vocab=60000)
    itos += [f"xxfiller{i}" for i in range(60000 - len(itos))]  # ULMFiT's vocabulary size
    tokenizer = AWDLSTMTokenizer(itos=itos)
    torch.manual_seed(0)
    model = AWDLSTMForSequenceClassification(AWDLSTMConfig(vocab_size=60000, num_labels=2)).eval()
    with torch.no_grad():  # a trained-looking head: the default initialisation's logits are all near zero
        for block in model.classifier.layers:
            block.linear.weight.normal_(0, 0.1)
    held_out = documents[-64:]
    timed = documents[: args.batch_size * (args.batches + 1)]
    if args.sorted_batches:  # documents of similar lengths batched together, as fastai's SortedDL batches them
        timed = sorted(timed, key=len)
    plan = [timed[b * args.batch_size : (b + 1) * args.batch_size] for b in range(args.batches + 1)]

    def encode(batch, tensors):
        enc = tokenizer(batch, padding=True, return_tensors=tensors)
        return enc, int(enc["attention_mask"].sum())

    def accuracy(onnx_model: OnnxModel) -> str:
        """On 64 other documents: agreement of the predicted class with PyTorch float32, cosine of the logits."""
        enc = tokenizer(held_out, padding=True, return_tensors="pt")
        with torch.inference_mode():
            expected = model(**enc.to(model.device)).logits.float().cpu().numpy()
        got = onnx_model(**enc.to("cpu")).logits.numpy()
        agree = float((got.argmax(-1) == expected.argmax(-1)).mean())
        return (f"max abs diff {np.abs(got - expected).max():.2g}, predicted class agreement {agree:.3f}, cosine "
                f"similarity of the logits min {cosines(got, expected).min():.6f}")

    return "AWDLSTMForSequenceClassification (ULMFiT size)", model, "onnx-awd-lstm-classifier", tokenizer, plan, \
        encode, accuracy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["elmo", "awd-lstm"], default="elmo")
    ap.add_argument("--size", choices=["small", "medium", "original"], default="original", help="ELMo's size")
    ap.add_argument("--batches", type=int, default=5, help="timed batches after one warm-up batch")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3, help="rounds over all runners; the best of each is reported")
    ap.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads (default: torch's)")
    ap.add_argument("--pause", type=float, default=1.0,
                    help="seconds of rest before each runner's timing: ONNX Runtime's worker threads spin on after a "
                         "run and take the CPU from the next one (PyTorch eager ~11%% slower without it)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hf-elmo-bench")
    ap.add_argument("--sorted-batches", action="store_true",
                    help="AWD-LSTM: batch documents of similar lengths together (fastai's SortedDL) instead of in "
                         "their random order")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cpu: PyTorch on the CPU vs ONNX Runtime's CPU provider, float32 and int8; cuda: PyTorch on "
                         "the GPU vs ONNX Runtime's CUDA provider (onnxruntime-gpu), float32 and float16")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA device (a CUDA build of torch and a GPU are needed)")
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise SystemExit("--device cuda: this ONNX Runtime has no CUDA provider (pip install "
                             "'hf-elmo[onnx-gpu]', which installs onnxruntime-gpu instead of onnxruntime)")
        provider, hardware = "CUDAExecutionProvider", torch.cuda.get_device_name(device)
    else:
        provider, hardware = "CPUExecutionProvider", cpu_name()
    workload = elmo_workload if args.model == "elmo" else awd_lstm_workload
    title, model, cache_name, tokenizer, plan, encode, accuracy = workload(args)
    if args.model == "awd-lstm":
        title += ", length-sorted batches" if args.sorted_batches else ", batches in random order"
    print(f"# {title}, batch {args.batch_size}, {args.batches} batches, best of {args.rounds} rounds, "
          f"torch {torch.__version__}, onnxruntime {ort.__version__}, {threads} CPU threads, {hardware}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    reduced = {"int8": {"quantize": "int8"}} if device.type == "cpu" else {"float16": {"fp16": True}}
    exports = args.cache / f"{cache_name}-{source_digest()}"
    variants = {"float32": exported(model, exports / "float32", tokenizer=tokenizer)}
    for dtype, kwargs in reduced.items():
        variants[dtype] = exported(model, exports / dtype, tokenizer=tokenizer, **kwargs)
    # PyTorch at each precision it runs here: float32, and float16 on the GPU
    torch_models = {"float32": model.to(device)}
    if device.type == "cuda":
        torch_models["float16"] = copy.deepcopy(model).to(device, torch.float16)

    def torch_runner(torch_model):
        def run(enc):
            with torch.inference_mode():
                torch_model(**enc.to(device))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        return run

    runners = {f"PyTorch eager {dtype}": (torch_runner(m), "pt") for dtype, m in torch_models.items()}
    onnx_models = {}
    for dtype, folder in variants.items():
        onnx_models[dtype] = OnnxModel.from_pretrained(folder, provider=provider, session_options=options)
        runners[f"ONNX Runtime {dtype}"] = (onnx_models[dtype], "np")
    # rounds interleave the runners, and the best round of each is kept: on a shared machine, other work slows some
    # rounds down, which would otherwise favour whichever runner ran while the machine was quiet
    best = {name: (0.0, 0.0) for name in runners}
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    for _ in range(args.rounds):
        for name, (run, tensors) in runners.items():
            time.sleep(args.pause)  # ONNX Runtime's worker threads spin on after a run, taking the next one's CPU
            wall, cpu_time = tokens_per_s(run, plan, lambda batch: encode(batch, tensors))
            best[name] = (max(best[name][0], wall), max(best[name][1], cpu_time))
    print(f"# load average before timing: {load_average:.1f} (other processes slow the wall-clock figures down; "
          "tokens per CPU-second, all threads counted, are less sensitive to them)")
    for dtype in torch_models:
        tps, cpu_tps = best[f"PyTorch eager {dtype}"]
        print(f"{'PyTorch eager ' + device.type:22s} {dtype:7s} {tps:8.0f} tokens/s {cpu_tps:8.0f} tokens/CPU-s")
    runtime = "ONNX Runtime " + ("CPU" if device.type == "cpu" else "CUDA")
    for dtype, onnx_model in onnx_models.items():
        tps, cpu_tps = best[f"ONNX Runtime {dtype}"]
        versus = dtype if dtype in torch_models else "float32"
        torch_tps, torch_cpu = best[f"PyTorch eager {versus}"]
        print(f"{runtime:22s} {dtype:7s} {tps:8.0f} tokens/s {cpu_tps:8.0f} tokens/CPU-s "
              f"({tps / torch_tps:.2f}x / {cpu_tps / torch_cpu:.2f}x PyTorch {versus}); vs PyTorch float32: "
              f"{accuracy(onnx_model)}")


if __name__ == "__main__":
    main()
