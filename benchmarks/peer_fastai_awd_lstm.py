"""fastai's AWD-LSTM language model at ULMFiT's size, timed as bench_awd_lstm.py times hf-elmo's: the peer figure
measured on the same machine, beside hf-elmo, rather than read from ../shared/REFERENCE.md (this machine kind is
shared and its speed moves by tens of percent from day to day; REFERENCE.md says to compare ratios from one run).

Run it with a Python that has fastai (not one of hf-elmo's dependencies), e.g. a virtual environment made with
``pip install torch==2.13.0 fastai==2.8.12``; bench_awd_lstm.py ``--fastai-python PY`` runs it between its own rounds.

The model is ``get_language_model(AWD_LSTM, 60000, config=awd_lstm_lm_config)`` (fastai's defaults: tied weights,
its dropouts), random ids, batch 32, bptt 70. A training step is forward, cross-entropy, fastai's AR and TAR (as its
``RNNRegularizer`` adds them), backward and an Adam step (torch's ``Adam``: faster than fastai's own optimizer, so
the peer is not handicapped); evaluation is the forward pass without gradient. bf16: under
``torch.autocast("cpu", torch.bfloat16)``. One warm-up step, then ``--steps`` timed ones; one line per figure:

    fastai float32 train 361.2
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F


def autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=int, default=60000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bptt", type=int, default=70)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--precision", nargs="+", choices=["float32", "bf16"], default=["float32", "bf16"])
    args = ap.parse_args()
    from fastai.text.all import AWD_LSTM, awd_lstm_lm_config, get_language_model

    torch.manual_seed(0)
    model = get_language_model(AWD_LSTM, args.vocab, config=dict(awd_lstm_lm_config))
    batch = torch.randint(0, args.vocab, (args.batch_size, args.bptt + 1))
    inputs, targets = batch[:, :-1], batch[:, 1:].reshape(-1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    tokens = inputs.numel()

    def train_step(bf16: bool) -> None:
        model.reset()
        with autocast(bf16):
            logits, raw, dropped = model(inputs)
            loss = F.cross_entropy(logits.float().view(-1, args.vocab), targets)
            # fastai's RNNRegularizer: alpha 2 on the last layer's dropped output, beta 1 on its raw output's steps
            loss = (loss + 2.0 * dropped[-1].float().pow(2).mean()
                    + 1.0 * (raw[-1][:, 1:] - raw[-1][:, :-1]).float().pow(2).mean())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    @torch.no_grad()
    def eval_step(bf16: bool) -> None:
        model.reset()
        with autocast(bf16):
            model(inputs)

    for precision in args.precision:
        bf16 = precision == "bf16"
        for phase, step in (("train", train_step), ("eval", eval_step)):
            model.train(phase == "train")
            step(bf16)  # warm-up
            start = time.perf_counter()
            for _ in range(args.steps):
                step(bf16)
            print(f"fastai {precision} {phase} {args.steps * tokens / (time.perf_counter() - start):.1f}", flush=True)


if __name__ == "__main__":
    main()
