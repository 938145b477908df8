"""ULMFiT's three stages on the transformers ``Trainer`` (Howard & Ruder, 2018):

1. general-domain LM pretraining (or a pretrained LM such as the converted wt103 model);
2. target-task LM fine-tuning: discriminative learning rates and slanted triangular learning rates over the
   contiguous, stateful LM stream;
3. target-task classifier fine-tuning: the LM's encoder under a new head, gradual unfreezing (one more layer group
   per epoch, from the top), discriminative and slanted triangular learning rates, length-sorted batches.

Every stage is a plain ``Trainer`` run built from :mod:`hf_elmo.training`'s pieces, so each can be used alone.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from transformers import DataCollatorWithPadding, TrainingArguments

from ..models.awd_lstm import (
    AWDLSTMConfig,
    AWDLSTMForLanguageModeling,
    AWDLSTMForSequenceClassification,
    AWDLSTMTokenizer,
)
from .data import LMStreamDataset
from .discriminative import ULMFIT_BETAS, make_optimizer
from .layer_groups import layer_groups_of
from .schedules import slanted_triangular_schedule
from .trainers import SortedLengthTrainer, StatefulLMTrainer
from .unfreezing import GradualUnfreezingCallback

logger = logging.getLogger("hf_elmo")


@dataclass
class UlmfitSettings:
    """The recipe's knobs; the defaults are the paper's (lr factor 2.6, STLR cut_frac 0.1 / ratio 32, one layer group
    unfrozen per epoch) at a size that runs on a CPU."""

    lm_epochs: int = 1
    lm_lr: float = 1e-2
    lm_batch_size: int = 32
    bptt: int = 70
    classifier_epochs: int | None = None  # default: one per layer group, then one more with all unfrozen
    classifier_lr: float = 1e-2
    classifier_batch_size: int = 32
    lr_factor: float = 2.6
    cut_frac: float = 0.1
    ratio: float = 32.0
    drop_mult: float = 1.0
    seed: int = 0
    bf16: bool = False
    extra_training_args: dict[str, Any] = field(default_factory=dict)


def _args(output_dir: Path, settings: UlmfitSettings, epochs: int, batch_size: int, name: str) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(output_dir / "checkpoints" / name), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size, save_strategy="no", report_to=[], seed=settings.seed,
        logging_steps=10, bf16=settings.bf16, use_cpu=not torch.cuda.is_available(),
        **settings.extra_training_args,
    )


def _ulmfit_optimizers(model: torch.nn.Module, lr: float, steps: int, settings: UlmfitSettings):
    optimizer = make_optimizer(model, lr=lr, factor=settings.lr_factor, betas=ULMFIT_BETAS)
    schedule = slanted_triangular_schedule(optimizer, num_training_steps=max(1, steps), cut_frac=settings.cut_frac,
                                           ratio=settings.ratio)
    return optimizer, schedule


def encode_documents(tokenizer: AWDLSTMTokenizer, texts: Sequence[str]) -> list[list[int]]:
    """fastai token ids of each text (``xxbos`` first), for the LM stream and the classifier."""
    return [tokenizer(text)["input_ids"] for text in texts]


@torch.no_grad()
def adapt_vocabulary(lm: AWDLSTMForLanguageModeling, tokenizer: AWDLSTMTokenizer, texts: Sequence[str],
                     min_freq: int = 3, max_vocab: int = 60000
                     ) -> tuple[AWDLSTMForLanguageModeling, AWDLSTMTokenizer]:
    """fastai's vocabulary adaptation for fine-tuning a pretrained LM on a new corpus (``match_embeds``): the
    vocabulary is rebuilt from ``texts``; a token the pretrained vocabulary knows keeps its embedding row and decoder
    bias, a new token starts from the mean row and the mean bias. Returns the new LM (tied as the old one) and its
    tokenizer; the pretrained model is left unchanged."""
    new_itos = AWDLSTMTokenizer.build_vocab(texts, min_freq=min_freq, max_vocab=max_vocab,
                                            replace_space=getattr(tokenizer, "replace_space", False))
    old_index = {token: i for i, token in reversed(list(enumerate(tokenizer.itos)))}  # first occurrence wins
    old_weight = lm.get_input_embeddings().weight
    rows = torch.tensor([old_index.get(t, -1) for t in new_itos])
    known = rows >= 0
    weight = old_weight.mean(0, keepdim=True).repeat(len(new_itos), 1)
    weight[known] = old_weight[rows[known]]
    cfg = lm.config.to_dict()
    for key in ("architectures", "auto_map", "transformers_version", "model_type", "dtype", "torch_dtype"):
        cfg.pop(key, None)
    cfg["vocab_size"] = len(new_itos)
    new_lm = AWDLSTMForLanguageModeling(AWDLSTMConfig(**cfg))
    state = {k: v for k, v in lm.state_dict().items() if not k.startswith(("decoder.", "awd_lstm.embeddings."))}
    missing, unexpected = new_lm.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith(("decoder.", "awd_lstm.embeddings.")) for k in missing), missing
    new_lm.get_input_embeddings().weight.copy_(weight)
    if not new_lm.config.tie_weights:
        old_decoder = lm.get_output_embeddings().weight
        dec = old_decoder.mean(0, keepdim=True).repeat(len(new_itos), 1)
        dec[known] = old_decoder[rows[known]]
        new_lm.get_output_embeddings().weight.copy_(dec)
    if lm.decoder.bias is not None:
        bias = lm.decoder.bias.mean().repeat(len(new_itos))
        bias[known] = lm.decoder.bias[rows[known]]
        new_lm.decoder.bias.copy_(bias)
    new_tokenizer = AWDLSTMTokenizer(itos=new_itos, replace_space=getattr(tokenizer, "replace_space", False))
    logger.info("vocabulary adapted: %d tokens, %d of them new (initialised to the mean embedding)",
                len(new_itos), int((~known).sum()))
    return new_lm, new_tokenizer


def train_language_model(model: AWDLSTMForLanguageModeling, documents: list[list[int]], settings: UlmfitSettings,
                         output_dir: Path, lr: float | None = None, epochs: int | None = None) -> dict[str, float]:
    """Stages 1 and 2: the LM over the contiguous stream of ``documents``, state carried between batches,
    discriminative learning rates and a slanted triangular schedule. Returns the last training loss."""
    epochs = epochs or settings.lm_epochs
    stream = LMStreamDataset(documents, batch_size=settings.lm_batch_size, bptt=settings.bptt, seed=settings.seed)
    steps = epochs * len(stream.window_lengths(0))  # the number of batches per epoch is fixed
    optimizers = _ulmfit_optimizers(model, lr or settings.lm_lr, steps, settings)
    trainer = StatefulLMTrainer(model=model, args=_args(output_dir, settings, epochs, settings.lm_batch_size, "lm"),
                                train_dataset=stream, optimizers=optimizers)
    result = trainer.train()
    return {"lm train loss": result.training_loss}


def classifier_from_language_model(lm: AWDLSTMForLanguageModeling, num_labels: int,
                                   settings: UlmfitSettings) -> AWDLSTMForSequenceClassification:
    """A classifier of ULMFiT's shape whose encoder is the fine-tuned LM's (the head is new)."""
    cfg = lm.config.to_dict()
    for key in ("architectures", "auto_map", "transformers_version", "model_type", "dtype", "torch_dtype"):
        cfg.pop(key, None)
    cfg.update(AWDLSTMConfig.dropout_defaults("classification", settings.drop_mult))
    cfg.update(num_labels=num_labels)
    config = AWDLSTMConfig(**cfg)
    model = AWDLSTMForSequenceClassification(config)
    model.awd_lstm.load_state_dict(lm.awd_lstm.state_dict())
    return model


def train_classifier(model: AWDLSTMForSequenceClassification, documents: list[list[int]], labels: Sequence[int],
                     tokenizer: AWDLSTMTokenizer, settings: UlmfitSettings, output_dir: Path) -> dict[str, float]:
    """Stage 3: gradual unfreezing, discriminative and slanted triangular learning rates, length-sorted batches."""
    n_groups = len(layer_groups_of(model))
    epochs = settings.classifier_epochs or n_groups + 1
    rows = [{"input_ids": ids, "labels": int(y)} for ids, y in zip(documents, labels)]
    steps = epochs * math.ceil(len(rows) / settings.classifier_batch_size)
    optimizers = _ulmfit_optimizers(model, settings.classifier_lr, steps, settings)
    trainer = SortedLengthTrainer(
        model=model, args=_args(output_dir, settings, epochs, settings.classifier_batch_size, "classifier"),
        train_dataset=rows, data_collator=DataCollatorWithPadding(tokenizer), optimizers=optimizers,
        callbacks=[GradualUnfreezingCallback()], train_lengths=[len(r["input_ids"]) for r in rows],
    )
    result = trainer.train()
    return {"classifier train loss": result.training_loss}


@torch.no_grad()
def predict(model: AWDLSTMForSequenceClassification, tokenizer: AWDLSTMTokenizer, documents: list[list[int]],
            batch_size: int = 64) -> np.ndarray:
    """Predicted class of every document (eval mode, batches of similar lengths)."""
    model.eval()
    order = np.argsort([-len(d) for d in documents], kind="stable")
    predictions = np.empty(len(documents), dtype=np.int64)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = tokenizer.pad([{"input_ids": documents[i]} for i in idx], return_tensors="pt")
        predictions[idx] = model(**batch).logits.argmax(-1).cpu().numpy()
    return predictions


@dataclass
class UlmfitResult:
    language_model: AWDLSTMForLanguageModeling
    classifier: AWDLSTMForSequenceClassification
    tokenizer: AWDLSTMTokenizer
    metrics: dict[str, float]


def run_ulmfit(
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    valid_texts: Sequence[str] | None = None,
    valid_labels: Sequence[int] | None = None,
    *,
    pretrained: str | Path | None = None,
    pretraining_texts: Sequence[str] | None = None,
    scratch_config: dict[str, Any] | None = None,
    settings: UlmfitSettings | None = None,
    output_dir: str | Path | None = None,
    min_freq: int = 2,
    max_vocab: int = 60000,
) -> UlmfitResult:
    """The three stages. Stage 1 is either a pretrained LM (``pretrained``: a folder or Hub id of an
    AWDLSTMForLanguageModeling, whose vocabulary is adapted to the task's texts as fastai does) or an LM trained from scratch on ``pretraining_texts`` (with a vocabulary built from
    them and the task's texts; ``scratch_config`` sets the sizes). Stage 2 fine-tunes it on the task's texts (train
    and, without their labels, validation), stage 3 trains the classifier. Returns both models and the metrics
    (validation accuracy when validation data is given)."""
    settings = settings or UlmfitSettings()
    torch.manual_seed(settings.seed)
    num_labels = int(max(train_labels)) + 1
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(output_dir) if output_dir is not None else Path(tmp)
        task_texts = list(train_texts) + list(valid_texts or [])
        if pretrained is not None:
            lm, tokenizer = adapt_vocabulary(AWDLSTMForLanguageModeling.from_pretrained(pretrained),
                                             AWDLSTMTokenizer.from_pretrained(pretrained), task_texts,
                                             min_freq=min_freq, max_vocab=max_vocab)
            metrics: dict[str, float] = {}
        else:
            corpus = list(pretraining_texts or []) + task_texts
            tokenizer = AWDLSTMTokenizer.from_texts(corpus, min_freq=min_freq, max_vocab=max_vocab)
            config = AWDLSTMConfig.for_language_model(
                drop_mult=settings.drop_mult, vocab_size=len(tokenizer.get_vocab()), **(scratch_config or {}))
            lm = AWDLSTMForLanguageModeling(config)
            metrics = {}
            if pretraining_texts:
                logger.info("ULMFiT stage 1: pretraining the language model on %d texts", len(pretraining_texts))
                stage1 = train_language_model(lm, encode_documents(tokenizer, pretraining_texts), settings, out)
                metrics.update({f"stage 1 {k}": v for k, v in stage1.items()})
        logger.info("ULMFiT stage 2: fine-tuning the language model on the task's %d texts", len(task_texts))
        stage2 = train_language_model(lm, encode_documents(tokenizer, task_texts), settings, out)
        metrics.update({f"stage 2 {k}": v for k, v in stage2.items()})
        logger.info("ULMFiT stage 3: training the classifier on %d labelled texts", len(train_texts))
        classifier = classifier_from_language_model(lm, num_labels, settings)
        stage3 = train_classifier(classifier, encode_documents(tokenizer, train_texts), train_labels, tokenizer,
                                  settings, out)
        metrics.update({f"stage 3 {k}": v for k, v in stage3.items()})
        if valid_texts is not None and valid_labels is not None:
            predicted = predict(classifier, tokenizer, encode_documents(tokenizer, valid_texts))
            metrics["valid accuracy"] = float((predicted == np.asarray(valid_labels)).mean())
    return UlmfitResult(lm, classifier, tokenizer, metrics)
