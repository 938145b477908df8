"""Trains a tiny ELMo biLM with the plain transformers Trainer; launched by tests/test_distributed.py.

Run as one process (``python train_elmo_lm.py OUT --batch-size 2B``) or under torchrun with two processes
(``--batch-size B``): the global batches are the same, so the loss curves must be too. Rank 0 writes the logged
losses to ``OUT/losses.json``; every rank writes the words of every row it trained on to ``OUT/rows_rank{R}.json``
(the test checks the global batches coincide).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import random
from pathlib import Path

import torch
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from hf_elmo import ElmoConfig, ElmoForLanguageModeling, ElmoTokenizer

WORDS = "alpha beta gamma delta river stone cloud paper green quiet swift amber north lemon tiger violet".split()


def corpus(n_sentences: int, n_words: int, seed: int = 0) -> list[list[str]]:
    # every sentence has the same number of words: each rank's mean loss is over the same number of tokens, so the
    # mean of the ranks' means is the global batch's mean
    rng = random.Random(seed)
    return [[rng.choice(WORDS) for _ in range(n_words)] for _ in range(n_sentences)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--sentences", type=int, default=32)
    p.add_argument("--words", type=int, default=6)
    p.add_argument("--max-steps", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    sentences = corpus(a.sentences, a.words)
    vocab = a.out / f"vocab_rank{os.environ.get('RANK', '0')}.txt"
    vocab.write_text("\n".join(ElmoTokenizer.build_vocab(sentences, is_split_into_words=True)) + "\n")
    tok = ElmoTokenizer(vocab_file=str(vocab))
    data = []
    for words in sentences:
        enc = tok(words, is_split_into_words=True, return_token_ids=True)
        data.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                     "labels": enc["token_ids"]})

    torch.manual_seed(a.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    config = ElmoConfig(char_cnn_filters=[[1, 8], [2, 8], [3, 16]], n_highway=1, char_embedding_dim=8, lstm_dim=32,
                        projection_dim=16, n_layers=2, use_skip_connections=True, dropout=0.0,
                        vocab_size=tok.vocab_size)
    model = ElmoForLanguageModeling(config)

    # record which rows each step trains on (the words, decoded from the labels)
    id_to_word = {i: w for w, i in tok.get_vocab().items()}
    rows: list[list[list[str]]] = []

    def record(module, args, kwargs):
        labels = kwargs.get("labels")
        if labels is not None and module.training:
            rows.append([[id_to_word[int(t)] for t in row if int(t) != -100] for row in labels])

    model.register_forward_pre_hook(record, with_kwargs=True)

    # gloo only under torchrun: a single process given ddp_backend makes accelerate ask torch.distributed for a world
    # size before any process group exists (and fail)
    ddp_backend = "gloo" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None
    args = TrainingArguments(output_dir=str(a.out / "trainer"), per_device_train_batch_size=a.batch_size,
                             max_steps=a.max_steps, learning_rate=3e-2, report_to=[], use_cpu=True,
                             ddp_backend=ddp_backend, save_strategy="no", logging_steps=1, disable_tqdm=True,
                             seed=a.seed, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tok))
    trainer.train()

    rank = trainer.args.process_index
    (a.out / f"rows_rank{rank}.json").write_text(json.dumps(rows))
    if trainer.is_world_process_zero():
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        norms = [h.get("grad_norm") for h in trainer.state.log_history if "loss" in h]
        (a.out / "losses.json").write_text(json.dumps({"world_size": trainer.args.world_size, "losses": losses,
                                                       "grad_norms": norms}))


if __name__ == "__main__":
    main()
    # Every output is written: leave without the interpreter's shutdown, where gloo's threads still running can abort
    # the process ("terminate called without an active exception") although the work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
