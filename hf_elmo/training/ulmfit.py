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

from ..cards import TrainingReport, render_awd_lstm_card
from ..hub import is_hub_repo_id
from ..model_folders import ULMFIT_CLASSIFIER_FOLDER, ULMFIT_LM_FOLDER, check_model_folder
from ..models.awd_lstm import (
    AWDLSTMConfig,
    AWDLSTMForLanguageModeling,
    AWDLSTMForSequenceClassification,
    AWDLSTMTokenizer,
)
from .data import LMStreamDataset
from .discriminative import ULMFIT_BETAS, make_optimizer
from .layer_groups import layer_groups_of
from .progress import label_progress
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
                         output_dir: Path, lr: float | None = None, epochs: int | None = None,
                         desc: str = "ULMFiT language model") -> dict[str, float]:
    """Stages 1 and 2: the LM over the contiguous stream of ``documents``, state carried between batches,
    discriminative learning rates and a slanted triangular schedule (``desc`` labels the progress bar). Returns the
    training loss (averaged over the run) and how the run went: tokens in the stream, epochs, optimizer steps,
    seconds."""
    epochs = epochs or settings.lm_epochs
    stream = LMStreamDataset(documents, batch_size=settings.lm_batch_size, bptt=settings.bptt, seed=settings.seed)
    steps = epochs * len(stream.window_lengths(0))  # the number of batches per epoch is fixed
    optimizers = _ulmfit_optimizers(model, lr or settings.lm_lr, steps, settings)
    trainer = StatefulLMTrainer(model=model, args=_args(output_dir, settings, epochs, settings.lm_batch_size, "lm"),
                                train_dataset=stream, optimizers=optimizers)
    result = label_progress(trainer, desc).train()
    return {"lm train loss": result.training_loss, "tokens": stream.num_tokens, "epochs": epochs, "steps": steps,
            "seconds": result.metrics["train_runtime"]}


def classifier_from_language_model(lm: AWDLSTMForLanguageModeling, num_labels: int,
                                   settings: UlmfitSettings) -> AWDLSTMForSequenceClassification:
    """A classifier of ULMFiT's shape whose encoder is the fine-tuned LM's (the head is new)."""
    cfg = lm.config.to_dict()
    # the LM's (default, two-label) label maps would contradict num_labels
    for key in ("architectures", "auto_map", "transformers_version", "model_type", "dtype", "torch_dtype",
                "id2label", "label2id"):
        cfg.pop(key, None)
    cfg.update(AWDLSTMConfig.dropout_defaults("classification", settings.drop_mult))
    cfg.update(num_labels=num_labels)
    config = AWDLSTMConfig(**cfg)
    model = AWDLSTMForSequenceClassification(config)
    model.awd_lstm.load_state_dict(lm.awd_lstm.state_dict())
    return model


def train_classifier(model: AWDLSTMForSequenceClassification, documents: list[list[int]], labels: Sequence[int],
                     tokenizer: AWDLSTMTokenizer, settings: UlmfitSettings, output_dir: Path) -> dict[str, float]:
    """Stage 3: gradual unfreezing, discriminative and slanted triangular learning rates, length-sorted batches.
    Returns the training loss (averaged over the run), epochs, optimizer steps and seconds."""
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
    result = label_progress(trainer, "ULMFiT stage 3: classifier").train()
    return {"classifier train loss": result.training_loss, "epochs": epochs, "steps": steps,
            "seconds": result.metrics["train_runtime"]}


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


@torch.no_grad()
def language_model_perplexity(model: AWDLSTMForLanguageModeling, documents: list[list[int]], batch_size: int = 32,
                              bptt: int = 70) -> float:
    """exp of the mean next-token cross-entropy over the contiguous stream of ``documents``, read as in training
    (``batch_size`` rows, the state carried from window to window) but in eval mode, with fixed ``bptt`` windows."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    n_tokens = sum(len(d) for d in documents)
    stream = LMStreamDataset(documents, batch_size=max(1, min(batch_size, n_tokens - 1)), bptt=bptt, jitter=False,
                             shuffle=False)
    state, total, count = None, 0.0, 0
    for batch in stream.batches(0):
        out = model(input_ids=batch["input_ids"].to(device), labels=batch["labels"].to(device), state=state,
                    use_cache=True)
        state = out.state
        total += float(out.lm_loss) * batch["input_ids"].numel()
        count += batch["input_ids"].numel()
    model.train(was_training)
    return math.exp(total / max(count, 1))


@dataclass
class StageRecord:
    """What one stage of the recipe did (for reports and model cards). ``texts`` is None for a stage that was not
    trained here (a pretrained LM, or none)."""

    stage: int
    name: str
    texts: int | None = None
    tokens: int | None = None
    epochs: int | None = None
    steps: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    train_loss: float | None = None
    valid_perplexity: float | None = None
    seconds: float | None = None
    note: str | None = None


@dataclass
class UlmfitResult:
    language_model: AWDLSTMForLanguageModeling
    classifier: AWDLSTMForSequenceClassification
    tokenizer: AWDLSTMTokenizer
    metrics: dict[str, float]
    stages: list[StageRecord] = field(default_factory=list)
    settings: UlmfitSettings = field(default_factory=UlmfitSettings)
    pretrained: str | None = None
    num_labels: int = 2
    num_valid: int = 0


def _trained_stage(stage: int, name: str, texts: int, run: dict[str, float], lr: float, batch_size: int,
                   loss_key: str) -> StageRecord:
    return StageRecord(stage, name, texts=texts, tokens=run.get("tokens"), epochs=run["epochs"], steps=run["steps"],
                       lr=lr, batch_size=batch_size, train_loss=run[loss_key], seconds=run["seconds"])


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
    lm_eval_texts: Sequence[str] | None = None,
) -> UlmfitResult:
    """The three stages. Stage 1 is either a pretrained LM (``pretrained``: a folder or Hub id of an
    AWDLSTMForLanguageModeling, whose vocabulary is adapted to the task's texts as fastai does) or an LM trained from
    scratch on ``pretraining_texts`` (with a vocabulary built from them and the task's texts; ``scratch_config`` sets
    the sizes). Stage 2 fine-tunes it on the task's texts (train and, without their labels, validation), stage 3
    trains the classifier. Returns both models, the metrics (the training losses; validation accuracy and the
    majority class's accuracy when validation data is given; the LM's perplexity on ``lm_eval_texts``, texts that
    no stage trains on, before and after each LM stage, when given) and a record of every stage."""
    if pretrained is not None:  # before any work: a folder of another model type would train a random model
        check_model_folder(pretrained, AWDLSTMConfig.model_type, role="the pretrained language model")
    settings = settings or UlmfitSettings()
    torch.manual_seed(settings.seed)
    num_labels = int(max(train_labels)) + 1
    metrics: dict[str, float] = {}
    stages: list[StageRecord] = []

    def perplexity(key: str) -> float | None:
        if not lm_eval_texts:
            return None
        metrics[key] = language_model_perplexity(lm, encode_documents(tokenizer, lm_eval_texts),
                                                 settings.lm_batch_size, settings.bptt)
        return metrics[key]

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(output_dir) if output_dir is not None else Path(tmp)
        task_texts = list(train_texts) + list(valid_texts or [])
        if pretrained is not None:
            old_tokenizer = AWDLSTMTokenizer.from_pretrained(pretrained)
            lm, tokenizer = adapt_vocabulary(AWDLSTMForLanguageModeling.from_pretrained(pretrained), old_tokenizer,
                                             task_texts, min_freq=min_freq, max_vocab=max_vocab)
            new_tokens = len(set(tokenizer.itos) - set(old_tokenizer.itos))
            stages.append(StageRecord(1, "general-domain LM", note=(
                f"pretrained LM {pretrained}; vocabulary adapted to the task's texts: {len(tokenizer.itos):,} "
                f"tokens, {new_tokens:,} of them new (started from the mean embedding)")))
            perplexity("lm valid perplexity before")
        else:
            corpus = list(pretraining_texts or []) + task_texts
            tokenizer = AWDLSTMTokenizer.from_texts(corpus, min_freq=min_freq, max_vocab=max_vocab)
            # a row for every entry of itos, fastai's "xxfake" padding included (as fastai's model has; the vocab
            # dict counts those once), so that the saved LM can be fine-tuned again (adapt_vocabulary reads rows
            # by itos position)
            config = AWDLSTMConfig.for_language_model(
                drop_mult=settings.drop_mult, vocab_size=len(tokenizer.itos), **(scratch_config or {}))
            lm = AWDLSTMForLanguageModeling(config)
            perplexity("lm valid perplexity before")
            if pretraining_texts:
                logger.info("ULMFiT stage 1: pretraining the language model on %d texts", len(pretraining_texts))
                stage1 = train_language_model(lm, encode_documents(tokenizer, pretraining_texts), settings, out,
                                              desc="ULMFiT stage 1: LM pretraining")
                metrics["stage 1 lm train loss"] = stage1["lm train loss"]
                stages.append(_trained_stage(1, "general-domain LM pretraining", len(pretraining_texts), stage1,
                                             settings.lm_lr, settings.lm_batch_size, "lm train loss"))
                stages[-1].valid_perplexity = perplexity("stage 1 lm valid perplexity")
            else:
                stages.append(StageRecord(1, "general-domain LM", note=(
                    f"none: the LM started from random weights (vocabulary of {len(tokenizer.itos):,} tokens from "
                    "the task's texts)")))
        logger.info("ULMFiT stage 2: fine-tuning the language model on the task's %d texts", len(task_texts))
        stage2 = train_language_model(lm, encode_documents(tokenizer, task_texts), settings, out,
                                      desc="ULMFiT stage 2: LM fine-tuning")
        metrics["stage 2 lm train loss"] = stage2["lm train loss"]
        stages.append(_trained_stage(2, "target-task LM fine-tuning", len(task_texts), stage2, settings.lm_lr,
                                     settings.lm_batch_size, "lm train loss"))
        stages[-1].valid_perplexity = perplexity("stage 2 lm valid perplexity")
        logger.info("ULMFiT stage 3: training the classifier on %d labelled texts", len(train_texts))
        classifier = classifier_from_language_model(lm, num_labels, settings)
        stage3 = train_classifier(classifier, encode_documents(tokenizer, train_texts), train_labels, tokenizer,
                                  settings, out)
        metrics["stage 3 classifier train loss"] = stage3["classifier train loss"]
        stages.append(_trained_stage(3, "classifier fine-tuning", len(train_texts), stage3, settings.classifier_lr,
                                     settings.classifier_batch_size, "classifier train loss"))
        if valid_texts is not None and valid_labels is not None:
            predicted = predict(classifier, tokenizer, encode_documents(tokenizer, valid_texts))
            valid = np.asarray(valid_labels)
            metrics["valid accuracy"] = float((predicted == valid).mean())
            majority = int(np.bincount(np.asarray(train_labels)).argmax())  # the training data's most frequent class
            metrics["valid majority-class accuracy"] = float((valid == majority).mean())
    return UlmfitResult(lm, classifier, tokenizer, metrics, stages, settings,
                        None if pretrained is None else str(pretrained), num_labels, len(valid_texts or []))


# --------------------------------------------------------------------------------------------------------------------
# Hub-ready folders with their model cards
# --------------------------------------------------------------------------------------------------------------------
LM_FOLDER, CLASSIFIER_FOLDER = ULMFIT_LM_FOLDER, ULMFIT_CLASSIFIER_FOLDER


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _stage_row(record: StageRecord, settings: UlmfitSettings, num_labels: int) -> dict[str, str]:
    """One row of a card's training table."""
    label = f"{record.stage}. {record.name}"
    if record.texts is None:
        return {"stage": label, "data": "–", "schedule": record.note or "–", "result": "–"}
    if record.stage == 3:
        data = f"{_plural(record.texts, 'labelled text')}, {num_labels} classes"
        reading = f"batch {record.batch_size}, texts of similar length together"
        unfreezing = "gradual unfreezing (one more layer group per epoch, from the top); "
    else:
        data = _plural(record.texts, "text") + (" (training and validation texts, without labels)"
                                                if record.stage == 2 else "")
        data += f", {record.tokens:,} tokens" if record.tokens else ""
        reading = f"batch {record.batch_size} × bptt {settings.bptt}, one contiguous stream, state carried"
        unfreezing = ""
    schedule = (f"{_plural(record.epochs, 'epoch')} ({_plural(record.steps, 'step')}); {unfreezing}AdamW "
                f"(β = {ULMFIT_BETAS[0]:g}, {ULMFIT_BETAS[1]:g}), lr {record.lr:g} for the top layer group and "
                f"÷{settings.lr_factor:g} per group below, slanted triangular (cut_frac {settings.cut_frac:g}, ratio "
                f"{settings.ratio:g}); {reading}; dropouts × {settings.drop_mult:g}")
    result = f"train loss {record.train_loss:.3f}"
    if record.valid_perplexity is not None:
        result += f", validation perplexity {record.valid_perplexity:.1f}"
    return {"stage": label, "data": data, "schedule": schedule, "result": result + f" ({record.seconds:.0f} s)"}


def ulmfit_training_report(result: UlmfitResult, kind: str, data: str, *, origin: str | None = None,
                           datasets: list[str] | None = None, task: str | None = None) -> TrainingReport:
    """The card's training section for the fine-tuned language model (``kind="language-model"``: stages 1 and 2) or
    the classifier (``kind="classifier"``: all three stages, the validation accuracy and ``task``, what it tells)."""
    records = [r for r in result.stages if kind == "classifier" or r.stage < 3]
    metrics = result.metrics
    results: dict[str, str] = {}
    if kind == "classifier" and "valid accuracy" in metrics:
        results["validation accuracy"] = f"{metrics['valid accuracy']:.3f} ({_plural(result.num_valid, 'text')})"
        results["majority-class accuracy (for comparison)"] = f"{metrics['valid majority-class accuracy']:.3f}"
    perplexities = [(name, metrics[key]) for name, key in (
        ("before training", "lm valid perplexity before"), ("after stage 1", "stage 1 lm valid perplexity"),
        ("after stage 2", "stage 2 lm valid perplexity")) if key in metrics]
    if perplexities:
        results["LM validation perplexity (held-out general text)"] = " → ".join(
            f"{value:.1f} ({name})" for name, value in perplexities)
    results["training time"] = f"{sum(r.seconds or 0.0 for r in records):.0f} s"
    rows = [_stage_row(r, result.settings, result.num_labels) for r in records]
    return TrainingReport(data=data, stages=rows, results=results, origin=origin, datasets=datasets,
                          task=task if kind == "classifier" else None)


def save_ulmfit_folders(
    result: UlmfitResult,
    output_dir: str | Path,
    *,
    data: str,
    task: str | None = None,
    class_names: Sequence[str] | None = None,
    lm_repo_id: str | None = None,
    classifier_repo_id: str | None = None,
    revision: str | None = None,
    datasets: list[str] | None = None,
    language: str | None = "en",
    license: str = "apache-2.0",
    example_texts: Sequence[str] | None = None,
    titles: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Saves ``output_dir/language_model`` (the fine-tuned LM) and ``output_dir/classifier``, each a Hub-ready
    folder: safetensors weights, ``config.json`` with an ``auto_map``, the model's code (remote code), the tokenizer
    and a model card (README.md) that describes the training and its figures.

    Args:
        data: what the models were trained on, a phrase for the cards ("1,499 sentences of ...").
        task: what the classifier tells, a phrase for its card.
        class_names: the classifier's label names, by label id.
        lm_repo_id, classifier_repo_id: the Hub repositories the folders will be pushed to: the cards' usage
            snippets load them (with ``revision``) instead of the local folders. The classifier's ``base_model`` is
            the fine-tuned LM's repository when it has one, else the pretrained LM's when that was a Hub id (a local
            folder is no valid ``base_model``: the card says in prose where the model came from).
        datasets: Hub dataset ids the models were trained on (card metadata), when known.
        example_texts: texts of the task for the usage snippets (the classifier's inputs, up to 40 words each; the
            LM's prompt is the first words of the first).
        titles: the cards' titles, by folder name (``language_model``, ``classifier``).

    Returns the two folders by name.
    """
    output_dir = Path(output_dir)
    if class_names is not None:
        result.classifier.config.id2label = dict(enumerate(class_names))
        result.classifier.config.label2id = {c: i for i, c in enumerate(class_names)}
    pretrained = result.pretrained
    pretrained_id = pretrained if pretrained is not None and is_hub_repo_id(pretrained) else None
    lm_origin = None
    if pretrained is not None and pretrained_id is None:
        lm_origin = f"Stage 1 was the pretrained language model of the local folder `{pretrained}`."
    classifier_origin = None
    if lm_repo_id is None:
        classifier_origin = ("Its encoder is the language model of stage 2 (saved beside this folder as "
                             f"`{LM_FOLDER}`)" + (f", fine-tuned from [{pretrained_id}](https://huggingface.co/"
                                                  f"{pretrained_id})" if pretrained_id else "")
                             + "." + (f" {lm_origin}" if lm_origin else ""))
    examples = [" ".join(text.split()[:40]) for text in example_texts] if example_texts else None
    prompt = [" ".join(examples[0].split()[:4])] if examples else None
    titles = titles or {}
    folders = {}
    for name, model, kind, repo_id, base_model, origin, texts in (
        (LM_FOLDER, result.language_model, "language-model", lm_repo_id, pretrained_id, lm_origin, prompt),
        (CLASSIFIER_FOLDER, result.classifier, "classifier", classifier_repo_id, lm_repo_id or pretrained_id,
         classifier_origin, examples),
    ):
        folder = output_dir / name
        model.save_pretrained(folder)
        result.tokenizer.save_pretrained(folder)
        report = ulmfit_training_report(result, kind, data, origin=origin, datasets=datasets, task=task)
        card = render_awd_lstm_card(model.config, repo_id or folder, None, kind, model_name=titles.get(name),
                                    revision=revision if repo_id else None,
                                    num_parameters=sum(p.numel() for p in model.parameters()), base_model=base_model,
                                    license=license, language=language, training=report, example_texts=texts)
        card.save(folder / "README.md")
        folders[name] = folder
    return folders
