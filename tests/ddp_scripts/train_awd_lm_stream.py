"""Trains a tiny AWD-LSTM LM on the contiguous stream with StatefulLMTrainer; launched by tests/test_distributed.py.

One process with a stream of 2B rows, or two processes (torchrun) with B rows each out of the same 2B-row stream:
each process continues its own rows, DDP averages the gradients, so the loss curves must match. Rank 0 writes the
logged losses to ``OUT/losses.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import random
from pathlib import Path

import torch
from transformers import TrainingArguments

from hf_elmo import AWDLSTMConfig, AWDLSTMForLanguageModeling
from hf_elmo.training import LMStreamDataset, StatefulLMTrainer


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--batch-size", type=int, required=True, help="rows per process")
    p.add_argument("--max-steps", type=int, default=6)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rng = random.Random(0)
    documents = [[rng.randrange(4, 40) for _ in range(rng.randint(20, 60))] for _ in range(40)]
    stream = LMStreamDataset(documents, batch_size=a.batch_size * world, bptt=10, jitter=True, seed=0)
    torch.manual_seed(0)
    config = AWDLSTMConfig.for_language_model(drop_mult=0.0, vocab_size=40, emb_size=16, hidden_size=24,
                                              num_layers=2, ar_alpha=0.0, tar_beta=0.0)
    model = AWDLSTMForLanguageModeling(config)
    args = TrainingArguments(output_dir=str(a.out / "trainer"), per_device_train_batch_size=a.batch_size,
                             max_steps=a.max_steps, learning_rate=1e-2, report_to=[], use_cpu=True,
                             ddp_backend="gloo" if world > 1 else None, save_strategy="no", logging_steps=1,
                             disable_tqdm=True, seed=0)
    trainer = StatefulLMTrainer(model=model, args=args, train_dataset=stream)
    trainer.train()
    if int(os.environ.get("RANK", "0")) == 0:
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        (a.out / "losses.json").write_text(json.dumps({"world_size": world, "losses": losses}))


if __name__ == "__main__":
    main()
    # Every output is written: leave without the interpreter's shutdown, where gloo's threads still running can abort
    # the process ("terminate called without an active exception") although the work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
