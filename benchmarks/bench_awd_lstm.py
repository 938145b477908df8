"""AWD-LSTM language model speed at ULMFiT's size: training and evaluation tokens/s, float32 and bfloat16 autocast.

Mirrors the reference measurement of ../shared/REFERENCE.md (fastai 2.8.12, vocab 60,000, batch 32, bptt 70, random
ids): a training step is forward + cross-entropy + backward + Adam step (dropouts on, AR/TAR included as fastai's
RNNRegularizer adds them); evaluation is the forward pass without grad. bfloat16 runs under
``torch.autocast("cpu", torch.bfloat16)``, which is what the Trainer's ``bf16=True`` does. It also trains the same
model twice from the same seed on real text (the standard library's docstrings), in float32 and under bf16 autocast,
and prints how far apart the two loss curves are.

    python benchmarks/bench_awd_lstm.py
    python benchmarks/bench_awd_lstm.py --rounds 3 --fastai-python /path/to/fastai-venv/bin/python   # fastai beside it
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from machine import cpu_name, reference_kind_warning

from hf_elmo.models.awd_lstm import AWDLSTMConfig, AWDLSTMForLanguageModeling, AWDLSTMTokenizer

# REFERENCE.md: fastai 2.8.12 on this machine kind (2-core Zen 4), the two quietest rounds' range, tokens/s
FASTAI_TOKENS_PER_S = {
    ("float32", "train"): (383.0, 406.0), ("float32", "eval"): (1291.0, 1421.0),
    ("bf16 autocast", "train"): (485.0, 579.0), ("bf16 autocast", "eval"): (2473.0, 3295.0),
}


def versus_fastai(low: float, precision: str, phase: str, high: float | None = None) -> str:
    """``1.02-1.08x fastai`` against REFERENCE.md's fastai range in the same precision and phase."""
    ref_low, ref_high = FASTAI_TOKENS_PER_S[precision, phase]
    return f"{low / ref_high:.2f}-{(low if high is None else high) / ref_low:.2f}x fastai"


def fastai_round(args: argparse.Namespace) -> dict[tuple[str, str], float]:
    """One round of peer_fastai_awd_lstm.py under ``--fastai-python``: {(precision, phase): tokens/s}."""
    script = Path(__file__).with_name("peer_fastai_awd_lstm.py")
    out = subprocess.run([args.fastai_python, str(script), "--vocab", str(args.vocab), "--batch-size",
                          str(args.batch_size), "--bptt", str(args.bptt), "--steps", str(args.steps)],
                         check=True, capture_output=True, text=True).stdout
    names = {"float32": "float32", "bf16": "bf16 autocast"}
    figures = {}
    for line in out.splitlines():
        _, precision, phase, value = line.split()
        figures[names[precision], phase] = float(value)
    return figures


def autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def make_model(vocab: int, seed: int = 0) -> AWDLSTMForLanguageModeling:
    torch.manual_seed(seed)
    return AWDLSTMForLanguageModeling(AWDLSTMConfig.for_language_model(vocab_size=vocab))


def time_training(model, batch: torch.Tensor, steps: int, bf16: bool, loss_path: str = "fused") -> float:
    """Training tokens/s; ``loss_path`` "fused": the blocked linear + cross-entropy (the default of a training step
    with labels), "logits": the decoder's full logits, then the cross-entropy."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    model.train()

    # "fused" is what a training step with labels does by default (so that a version before it times its own)
    options = {"return_logits": True} if loss_path == "logits" else {}

    def step() -> None:
        with autocast(bf16):
            loss = model(input_ids=batch[:, :-1], labels=batch, **options).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch[:, :-1].numel() / (time.perf_counter() - start)


@torch.inference_mode()
def time_eval(model, batch: torch.Tensor, steps: int, bf16: bool) -> float:
    model.eval()
    with autocast(bf16):
        model(input_ids=batch[:, :-1])
        start = time.perf_counter()
        for _ in range(steps):
            model(input_ids=batch[:, :-1])
    return steps * batch[:, :-1].numel() / (time.perf_counter() - start)


def loss_curves(steps: int, batch_size: int, bptt: int) -> tuple[list[float], list[float]]:
    """The same seeded ULMFiT-size LM trained on the standard library's docstrings, float32 vs bf16 autocast."""
    from hf_elmo.data.stdlib_corpus import stdlib_sentences

    texts = stdlib_sentences()
    tokenizer = AWDLSTMTokenizer.from_texts(texts, min_freq=2)
    ids = torch.tensor([i for t in texts for i in tokenizer(t)["input_ids"]])
    n = (ids.numel() - 1) // batch_size
    rows = ids[: n * batch_size + 1]
    curves = []
    for bf16 in (False, True):
        model = make_model(len(tokenizer.get_vocab()), seed=0).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, fused=True)
        torch.manual_seed(1)
        losses = []
        for k in range(steps):
            start = (k * bptt) % (n - bptt - 1)
            x = torch.stack([rows[r * n + start : r * n + start + bptt + 1] for r in range(batch_size)])
            with autocast(bf16):
                loss = model(input_ids=x[:, :-1], labels=x).lm_loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        curves.append(losses)
    return curves[0], curves[1]


def peak_memory(loss_path: str, vocab: int, batch_size: int, bptt: int, bf16: bool) -> float:
    """Peak resident memory (MB) of a fresh process that builds the model and runs two training steps with
    ``loss_path``: the figure that holding the logits, or not, changes."""
    args = [sys.executable, __file__, "--memory-probe", loss_path, "--vocab", str(vocab), "--batch-size",
            str(batch_size), "--bptt", str(bptt)] + (["--probe-bf16"] if bf16 else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def memory_probe(loss_path: str, vocab: int, batch_size: int, bptt: int, bf16: bool) -> None:
    batch = torch.randint(0, vocab, (batch_size, bptt + 1))
    time_training(make_model(vocab), batch, 1, bf16, loss_path)
    print(peak_rss_mb())


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: Linux's VmHWM (reset by exec, so a child's own, unlike
    getrusage's ru_maxrss, which a child inherits from its parent), else ru_maxrss."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=int, default=60000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bptt", type=int, default=70)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds; the range of each figure is printed")
    ap.add_argument("--fastai-python", help="a Python with fastai 2.8.12: peer_fastai_awd_lstm.py runs between our "
                                            "rounds and each round's ratio is printed beside REFERENCE.md's")
    ap.add_argument("--curve-steps", type=int, default=40, help="steps of the float32-vs-bf16 loss curves (0: skip)")
    ap.add_argument("--loss", choices=("fused", "logits", "both"), default="both",
                    help="the training step's loss: fused blocks (the default path), full logits, or both")
    ap.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                    help="report each loss path's peak memory of a training step (fresh processes)")
    ap.add_argument("--memory-probe", choices=("fused", "logits"), help=argparse.SUPPRESS)
    ap.add_argument("--probe-bf16", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_probe:
        memory_probe(args.memory_probe, args.vocab, args.batch_size, args.bptt, args.probe_bf16)
        return
    print(f"# AWD-LSTM LM, ULMFiT size (400/1152/3), vocab {args.vocab}, batch {args.batch_size}, bptt {args.bptt}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_name()}")
    if warning := reference_kind_warning():
        print(warning)
    batch = torch.randint(0, args.vocab, (args.batch_size, args.bptt + 1))
    model = make_model(args.vocab)
    paths = ("fused", "logits") if args.loss == "both" else (args.loss,)
    precisions = {"float32": False, "bf16 autocast": True}
    ours: dict[tuple[str, str], list[float]] = defaultdict(list)
    peer: dict[tuple[str, str], list[float]] = defaultdict(list)
    for _ in range(args.rounds):  # alternating rounds: every figure once a round, fastai's between ours
        for name, bf16 in precisions.items():
            for path in paths:
                ours[name, f"train ({path} loss)"].append(time_training(model, batch, args.steps, bf16, path))
            ours[name, "eval"].append(time_eval(model, batch, args.steps, bf16))
        if args.fastai_python:
            for (name, phase), figure in fastai_round(args).items():
                peer[name, phase].append(figure)
    for (name, what), figures in ours.items():
        phase = what.split()[0]
        low, high = min(figures), max(figures)
        span = f"{low:7.0f}" if len(figures) == 1 else f"{low:5.0f}-{high:<5.0f}"
        line = f"{name:14s} {what:20s} {span} tokens/s ({versus_fastai(low, name, phase, high)} of REFERENCE.md"
        if peer.get((name, phase)):  # each round's ratio: the two figures of one round saw the same machine
            ratios = [a / b for a, b in zip(figures, peer[name, phase])]
            line += (f"; fastai beside it {min(peer[name, phase]):.0f}-{max(peer[name, phase]):.0f}, "
                     f"{min(ratios):.2f}-{max(ratios):.2f}x round by round")
        print(line + ")")
    if args.memory:
        for name, bf16 in precisions.items():
            peaks = {path: peak_memory(path, args.vocab, args.batch_size, args.bptt, bf16) for path in paths}
            print(f"{name:14s} peak memory of a training step: "
                  + ", ".join(f"{path} loss {mb:,.0f} MB" for path, mb in peaks.items()))
    if args.curve_steps:
        f32, bf = loss_curves(args.curve_steps, args.batch_size, args.bptt)
        worst = max(abs(a - b) / a for a, b in zip(f32, bf))
        print(f"loss curves over {args.curve_steps} steps: float32 {f32[0]:.3f} -> {f32[-1]:.3f}, "
              f"bf16 {bf[0]:.3f} -> {bf[-1]:.3f}; largest relative gap {100 * worst:.2f}%")


if __name__ == "__main__":
    main()
