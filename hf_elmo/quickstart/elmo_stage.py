"""Quickstart stage: pretrain a small ELMo bidirectional LM with the Trainer, save it, and measure it.

The figures it reports: validation perplexity before and after pretraining (the mean of the forward and backward
LMs' losses, full softmax), and inference speed of the saved model (tokens/s, eval, no grad). The saved folder is
Hub-ready: its model card (README.md) describes the training and carries these figures.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from ..cards import TrainingReport, render_elmo_card
from ..models.elmo import ElmoConfig, ElmoForLanguageModeling, ElmoModel, ElmoTokenizer
from ..training.progress import label_progress

# A small ELMo (about 5M parameters) that learns something in a minute on two CPU cores.
SMALL_ELMO = dict(
    char_cnn_filters=[[1, 32], [2, 32], [3, 64], [4, 128], [5, 128]],
    n_highway=1,
    char_embedding_dim=16,
    lstm_dim=512,
    projection_dim=128,
    n_layers=2,
    use_skip_connections=True,
    dropout=0.1,
)


def _encode(tokenizer: ElmoTokenizer, texts: list[str]) -> list[dict[str, Any]]:
    rows = []
    for text in texts:
        enc = tokenizer(text, truncation=True, max_length=MAX_WORDS, return_token_ids=True)
        rows.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                     "labels": enc["token_ids"]})
    return rows


@torch.no_grad()
def perplexity(model: ElmoForLanguageModeling, tokenizer: ElmoTokenizer, rows: list[dict], batch_size: int = 64) -> float:
    """exp of the mean of the forward and backward LM losses (full softmax), weighted by predicted words."""
    model.eval()
    total, count = 0.0, 0
    for start in tqdm(range(0, len(rows), batch_size), desc="ELMo validation", leave=False):
        batch = tokenizer.pad(rows[start : start + batch_size], return_tensors="pt")
        out = model(**batch)
        n = int(batch["attention_mask"].sum() - batch["attention_mask"].shape[0])  # predicted words per direction
        total += out.loss.item() * n
        count += n
    return math.exp(total / max(count, 1))


LEARNING_RATE = 3e-3
MAX_WORDS = 64  # words per sentence in training (the tokenizer truncates)


def run(train_texts: list[str], valid_texts: list[str], output: Path, steps: int = 300, batch_size: int = 32,
        vocab_size: int = 8000, seed: int = 0, data: str | None = None,
        shown_as: Path | None = None) -> dict[str, Any]:
    """Builds the vocabulary, pretrains, saves ``output / "elmo"`` (model, tokenizer, model card) and returns the
    figures. ``data`` describes the texts for the card (default: "N sentences"); ``shown_as`` is where ``output``
    will be once the run completes (the card's snippet and the figures name the folder there; default ``output``)."""
    torch.manual_seed(seed)
    folder = output / "elmo"
    folder.mkdir(parents=True, exist_ok=True)
    words = ElmoTokenizer.build_vocab(train_texts, min_freq=2, max_size=vocab_size)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.txt"
        vocab_file.write_text("\n".join(words) + "\n", encoding="utf-8")
        tokenizer = ElmoTokenizer(vocab_file=str(vocab_file))
    config = ElmoConfig(vocab_size=tokenizer.vocab_size, **SMALL_ELMO)
    model = ElmoForLanguageModeling(config)
    train_rows, valid_rows = _encode(tokenizer, train_texts), _encode(tokenizer, valid_texts)
    ppl_before = perplexity(model, tokenizer, valid_rows)

    warmup = max(1, steps // 20)
    args = TrainingArguments(
        output_dir=str(output / "checkpoints" / "elmo"), max_steps=steps, per_device_train_batch_size=batch_size,
        learning_rate=LEARNING_RATE, warmup_steps=warmup, lr_scheduler_type="linear", weight_decay=0.0,
        logging_steps=max(1, steps // 10), save_strategy="no", report_to=[], use_cpu=True, seed=seed,
        dataloader_drop_last=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train_rows, data_collator=DataCollatorWithPadding(tokenizer))
    start = time.perf_counter()
    label_progress(trainer, "ELMo pretraining").train()
    train_seconds = time.perf_counter() - start
    ppl_after = perplexity(model, tokenizer, valid_rows)

    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    # Inference speed of the saved biLM, as a user loads it.
    encoder = ElmoModel.from_pretrained(folder).eval()
    sentences = valid_texts[: 4 * batch_size]
    with torch.inference_mode():
        encoder(**tokenizer(sentences[:batch_size], padding=True, return_tensors="pt"))  # warm-up
        n_words, start = 0, time.perf_counter()
        for i in range(0, len(sentences), batch_size):
            enc = tokenizer(sentences[i : i + batch_size], padding=True, return_tensors="pt")
            encoder(**enc)
            n_words += int(enc["attention_mask"].sum()) - 2 * enc["attention_mask"].shape[0]
        tokens_per_s = n_words / (time.perf_counter() - start)

    data = data or f"{len(train_texts) + len(valid_texts):,} sentences"
    training = TrainingReport(
        data=data,
        stages=[{
            "stage": "biLM pretraining (forward and backward LMs, full softmax)",
            "data": f"{len(train_texts):,} sentences (at most {MAX_WORDS} words each), a {tokenizer.vocab_size:,}-word "
                    "vocabulary (words seen at least twice)",
            "schedule": f"{steps:,} steps of {batch_size} sentences; AdamW, lr {LEARNING_RATE:g}, no weight decay, "
                        f"linear warm-up over {warmup} step{'s' if warmup != 1 else ''} then linear decay; dropout "
                        f"{config.dropout:g}",
            "result": f"validation perplexity {ppl_before:.1f} → {ppl_after:.1f}",
        }],
        results={
            "validation perplexity (mean of the forward and backward LMs)":
                f"{ppl_after:.1f} ({len(valid_texts):,} held-out sentences; {ppl_before:.1f} before training)",
            "inference speed (CPU, eval, no grad)": f"{tokens_per_s:,.0f} words/s in batches of {batch_size} "
                                                    f"({torch.get_num_threads()} threads)",
            "training time": f"{train_seconds:.0f} s",
        },
    )
    shown = (shown_as or output) / "elmo"
    card = render_elmo_card(config, shown, None, "custom", model_name="ELMo (small, pretrained with hf-elmo)",
                            num_parameters=sum(p.numel() for p in model.parameters()), training=training)
    card.save(folder / "README.md")
    return {
        "folder": str(shown),
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocabulary": tokenizer.vocab_size,
        "train sentences": len(train_texts),
        "steps": steps,
        "train seconds": round(train_seconds, 1),
        "valid perplexity before": round(ppl_before, 1),
        "valid perplexity after": round(ppl_after, 1),
        "inference tokens/s": round(tokens_per_s),
    }
