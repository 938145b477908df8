"""ULMFiT's three stages on the transformers ``Trainer`` (Howard & Ruder, 2018):

1. general-domain LM pretraining (or a pretrained LM such as the converted wt103 model);
2. target-task LM fine-tuning: discriminative learning rates and slanted triangular learning rates over the
   contiguous, stateful LM stream;
3. target-task classifier fine-tuning: the LM's encoder under a new head, gradual unfreezing (one more layer group
   per epoch, from the top), discriminative and slanted triangular learning rates, length-sorted batches.

Each stage trains as its :class:`~hf_elmo.training.ulmfit_settings.StageSettings` say (epochs, rates, weight decay,
schedule: the paper's STLR or fastai's one-cycle, clipping, frozen epochs), and reports every epoch (time, tokens/s,
loss, validation figure). Every stage is a plain ``Trainer`` run built from :mod:`hf_elmo.training`'s pieces, so
each can be used alone.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.optim.lr_scheduler import LambdaLR
from transformers import DataCollatorWithPadding, TrainerCallback, TrainingArguments

from ..cards import TrainingReport, render_awd_lstm_card
from ..hub import is_hub_repo_id
from ..model_folders import (ULMFIT_CLASSIFIER_FOLDER, ULMFIT_LM_FOLDER, check_model_folder,
                             from_pretrained_checked)
from ..models.awd_lstm import (
    AWDLSTMConfig,
    AWDLSTMForLanguageModeling,
    AWDLSTMForSequenceClassification,
    AWDLSTMTokenizer,
)
from .data import LMStreamDataset
from .discriminative import make_optimizer
from .layer_groups import layer_groups_of
from .progress import label_progress
from .reporting import EpochRecord, EpochReportCallback, stage_table
from .schedules import PhaseScaled, SlantedTriangular, one_cycle_schedule
from .trainers import SortedLengthTrainer, StatefulLMTrainer
from .ulmfit_settings import STAGE_NAMES, StageSettings, UlmfitSettings
from .unfreezing import FrozenEpochsCallback, GradualUnfreezingCallback

logger = logging.getLogger("hf_elmo")


def _args(output_dir: Path, settings: UlmfitSettings, stage: StageSettings, epochs: int,
          name: str) -> TrainingArguments:
    """The Trainer's arguments of one stage. The optimiser and schedule are built by the recipe (``_optimizers``);
    the optimiser's values are repeated here so that the Trainer's own record of its arguments agrees."""
    return TrainingArguments(
        output_dir=str(output_dir / "checkpoints" / name), num_train_epochs=epochs,
        per_device_train_batch_size=stage.batch_size, per_device_eval_batch_size=stage.batch_size,
        learning_rate=stage.lr, weight_decay=stage.weight_decay, adam_beta1=stage.betas[0],
        adam_beta2=stage.betas[1], adam_epsilon=stage.eps, max_grad_norm=stage.max_grad_norm or 0.0,
        save_strategy="no", report_to=[], seed=settings.seed, logging_steps=10, bf16=settings.bf16,
        use_cpu=not torch.cuda.is_available(), **settings.extra_training_args,
    )


def _optimizers(model: torch.nn.Module, stage: StageSettings, cycles: list[int]) -> tuple[Any, Any]:
    """AdamW over the layer groups (discriminative rates, or one rate when ``lr_factor`` is None) and the stage's
    schedule over ``cycles``, the optimizer steps of each run of epochs with the same trained groups: STLR runs
    over all of them at once (the paper), one-cycle restarts at each (fastai's one ``fit_one_cycle`` per unfreezing
    step). With ``phase_lrs``, each run peaks at its own rate."""
    optimizer = make_optimizer(model, lr=stage.lr, factor=stage.lr_factor or 1.0, weight_decay=stage.weight_decay,
                               betas=stage.betas, eps=stage.eps)
    peaks = [1.0] * len(cycles)
    if stage.phase_lrs is not None:
        if len(stage.phase_lrs) != len(cycles):
            raise ValueError(f"phase_lrs gives {len(stage.phase_lrs)} rates for the {len(cycles)} phases of this "
                             "stage (runs of epochs that train the same layer groups)")
        peaks = [x / stage.lr for x in stage.phase_lrs]
    if stage.schedule == "one_cycle":
        schedule = one_cycle_schedule(optimizer, cycles, pct_start=stage.pct_start, div=stage.div,
                                      div_final=stage.div_final, moms=stage.moms, peaks=peaks)
    else:
        stlr = SlantedTriangular(sum(cycles), stage.cut_frac, stage.ratio)
        schedule = LambdaLR(optimizer, PhaseScaled(stlr, tuple(cycles), tuple(peaks)))
    return optimizer, schedule


def unfreezing_cycles(unfreezing: GradualUnfreezingCallback | None, epochs: int, n_groups: int,
                      steps_per_epoch: int) -> list[int]:
    """The optimizer steps of each run of consecutive epochs that train the same layer groups (as ``unfreezing``
    decides; one run without it)."""
    if unfreezing is None:
        return [epochs * steps_per_epoch]
    trained = [unfreezing.trained_groups(epoch, n_groups) for epoch in range(epochs)]
    runs = [1]
    for previous, current in zip(trained, trained[1:]):
        if current == previous:
            runs[-1] += 1
        else:
            runs.append(1)
    return [run * steps_per_epoch for run in runs]


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
                                            replace_space=getattr(tokenizer, "replace_space", False),
                                            sp_model=getattr(tokenizer, "sp_model", None))
    new_tokenizer = tokenizer.with_vocabulary(new_itos)  # the same tokenization (words or SentencePiece pieces)
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
    cfg["bos_token_id"] = new_tokenizer.document_start_id  # SentencePiece's "▁xxbos" is renumbered too
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
    logger.info("vocabulary adapted: %d tokens, %d of them new (initialised to the mean embedding)",
                len(new_itos), int((~known).sum()))
    return new_lm, new_tokenizer


def lm_stream(documents: list[list[int]], settings: UlmfitSettings, stage: StageSettings,
              bptt: int) -> LMStreamDataset:
    """The LM stages' contiguous stream: ``stage.batch_size`` rows, windows around ``bptt`` (fixed ones when
    ``settings.bptt_jitter`` is off), reshuffled each epoch from ``settings.seed``."""
    return LMStreamDataset(documents, batch_size=stage.batch_size, bptt=bptt, seed=settings.seed,
                           jitter=settings.bptt_jitter)


def train_language_model(model: AWDLSTMForLanguageModeling, documents: list[list[int]], settings: UlmfitSettings,
                         stage: StageSettings, output_dir: Path, desc: str = "ULMFiT language model",
                         eval_documents: list[list[int]] | None = None, name: str = "lm",
                         callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Stages 1 and 2: the LM over the contiguous stream of ``documents`` (windows of ``model.config.bptt``,
    jittered unless ``settings.bptt_jitter`` is off), state carried between batches, trained as ``stage`` says
    (``desc`` labels the progress bar; ``callbacks`` join the Trainer's). With ``eval_documents``, the perplexity on
    them after every epoch. Returns the training loss (averaged over the run), the tokens of the stream, epochs,
    optimizer steps, seconds and one :class:`EpochRecord` per epoch."""
    bptt = model.config.bptt
    stream = lm_stream(documents, settings, stage, bptt)
    steps_per_epoch = len(stream.window_lengths(0))  # the number of batches per epoch is fixed
    unfreezing = FrozenEpochsCallback(stage.frozen_epochs) if stage.frozen_epochs else None
    cycles = unfreezing_cycles(unfreezing, stage.epochs, len(layer_groups_of(model)), steps_per_epoch)
    trainer = StatefulLMTrainer(model=model, args=_args(output_dir, settings, stage, stage.epochs, name),
                                train_dataset=stream, optimizers=_optimizers(model, stage, cycles),
                                callbacks=([unfreezing] if unfreezing else []) + list(callbacks))
    evaluate = None
    if eval_documents:
        def evaluate(m: torch.nn.Module) -> dict[str, float]:
            return {"valid perplexity": language_model_perplexity(m, eval_documents, stage.batch_size, bptt)}
    report = EpochReportCallback(trainer, stream.num_tokens, evaluate)
    trainer.add_callback(report)
    result = label_progress(trainer, desc).train()
    return {"train loss": result.training_loss, "tokens": stream.num_tokens, "epochs": stage.epochs,
            "steps": sum(cycles), "seconds": result.metrics["train_runtime"], "epochs_log": report.records}


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
                     tokenizer: AWDLSTMTokenizer, settings: UlmfitSettings, output_dir: Path,
                     eval_documents: list[list[int]] | None = None, eval_labels: Sequence[int] | None = None,
                     callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Stage 3: gradual unfreezing (``epochs_per_unfreeze``), discriminative rates and the stage's schedule,
    length-sorted batches; with ``eval_documents``/``eval_labels``, the accuracy on them after every epoch. Returns
    the training loss (averaged over the run), tokens per epoch, epochs, optimizer steps, seconds and one
    :class:`EpochRecord` per epoch."""
    stage = settings.classifier
    n_groups = len(layer_groups_of(model))
    phases = len(stage.unfreeze_groups) if stage.unfreeze_groups else n_groups
    epochs = stage.epochs or phases * stage.epochs_per_unfreeze + 1  # each phase's turn, then one more
    rows = [{"input_ids": ids, "labels": int(y)} for ids, y in zip(documents, labels)]
    unfreezing = GradualUnfreezingCallback(epochs_per_stage=stage.epochs_per_unfreeze,
                                           stage_groups=stage.unfreeze_groups)
    cycles = unfreezing_cycles(unfreezing, epochs, n_groups, math.ceil(len(rows) / stage.batch_size))
    trainer = SortedLengthTrainer(
        model=model, args=_args(output_dir, settings, stage, epochs, "classifier"), train_dataset=rows,
        data_collator=DataCollatorWithPadding(tokenizer), optimizers=_optimizers(model, stage, cycles),
        callbacks=[unfreezing, *callbacks], train_lengths=[len(r["input_ids"]) for r in rows],
    )
    evaluate = None
    if eval_documents is not None and eval_labels is not None:
        def evaluate(m: torch.nn.Module) -> dict[str, float]:
            predicted = predict(m, tokenizer, eval_documents)
            return {"valid accuracy": float((predicted == np.asarray(eval_labels)).mean())}
    tokens = sum(len(d) for d in documents)
    report = EpochReportCallback(trainer, tokens, evaluate)
    trainer.add_callback(report)
    result = label_progress(trainer, "ULMFiT stage 3: classifier").train()
    return {"train loss": result.training_loss, "tokens": tokens, "epochs": epochs, "steps": sum(cycles),
            "seconds": result.metrics["train_runtime"], "epochs_log": report.records}


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
                    use_cache=True, return_logits=False)  # the loss by the fused blocks: no logits held
        state = out.state
        total += float(out.lm_loss) * batch["input_ids"].numel()
        count += batch["input_ids"].numel()
    model.train(was_training)
    return math.exp(total / max(count, 1))


@dataclass
class StageRecord:
    """What one stage of the recipe did (for metrics.json, the model cards and the printed summary). ``texts`` is
    None for a stage that was not trained here (a pretrained LM, or none). ``settings`` are the stage's
    :class:`StageSettings`; ``epochs_log`` one :class:`EpochRecord` per epoch; ``valid`` the validation figures
    after the stage."""

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
    settings: StageSettings | None = None
    epochs_log: list[EpochRecord] = field(default_factory=list)
    valid_accuracy: float | None = None

    @property
    def tokens_per_s(self) -> float | None:
        """Tokens read per second of training: every epoch's tokens over the epochs' training time (the validation
        after each epoch, which ``seconds`` includes, not counted)."""
        seconds = sum(e.seconds for e in self.epochs_log) if self.epochs_log else self.seconds
        if not self.tokens or not seconds or not self.epochs:
            return None
        return self.tokens * self.epochs / seconds

    @property
    def valid(self) -> dict[str, float]:
        found = {"valid perplexity": self.valid_perplexity, "valid accuracy": self.valid_accuracy}
        return {k: v for k, v in found.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON) for metrics.json."""
        record = asdict(self)  # the settings and epoch records (dataclasses) become dicts too
        record["tokens_per_s"] = self.tokens_per_s
        return record


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

    def report(self) -> dict[str, Any]:
        """metrics.json: the metrics (flat numbers, as before), the settings of the run and every stage's record."""
        return {**self.metrics, "settings": self.settings.to_dict(), "stages": [r.to_dict() for r in self.stages]}

    def summary(self) -> str:
        """The one-table summary of the stages (and their epochs) that ``hf-elmo ulmfit`` prints at the end."""
        return stage_table(self.stages)


def _trained_stage(stage: int, name: str, texts: int, run: dict[str, Any], settings: StageSettings) -> StageRecord:
    return StageRecord(stage, name, texts=texts, tokens=run.get("tokens"), epochs=run["epochs"], steps=run["steps"],
                       lr=settings.lr, batch_size=settings.batch_size, train_loss=run["train loss"],
                       seconds=run["seconds"], settings=settings, epochs_log=run["epochs_log"])


def _use_bptt(model: AWDLSTMForLanguageModeling, settings: UlmfitSettings) -> None:
    """``settings.bptt`` (when set) becomes the model's ``config.bptt``, the one value the LM stream and the
    classifier's chunks read (and the saved folders record)."""
    if settings.bptt is not None:
        model.config.bptt = settings.bptt


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
    lm_eval_texts: Sequence[str] | None = None,
    tokenizer_options: dict[str, Any] | None = None,
) -> UlmfitResult:
    """The three stages. Stage 1 is either a pretrained LM (``pretrained``: a folder or Hub id of an
    AWDLSTMForLanguageModeling, whose vocabulary is adapted to the task's texts as fastai does) or an LM trained from
    scratch on ``pretraining_texts`` (with a vocabulary built from them and the task's texts; ``scratch_config`` sets
    the sizes). Stage 2 fine-tunes it on the task's texts (train and, without their labels, validation), stage 3
    trains the classifier; each as ``settings`` says for it (:class:`UlmfitSettings`). Returns both models, the
    metrics (the training losses; validation accuracy and the majority class's accuracy when validation data is
    given; the LM's perplexity on ``lm_eval_texts``, texts that no stage trains on, before and after each LM stage,
    when given) and a record of every stage and epoch (the validation figures after each epoch included).
    ``tokenizer_options`` go to ``AWDLSTMTokenizer.from_texts`` for an LM trained from scratch, e.g.
    ``{"sentencepiece": True, "vocab_size": 8000}`` for fastai's SentencePieceTokenizer (a pretrained LM brings its
    own tokenizer)."""
    if pretrained is not None:  # before any work: a folder of another model type would train a random model
        check_model_folder(pretrained, AWDLSTMConfig.model_type, role="the pretrained language model")
    settings = settings or UlmfitSettings()
    settings.check()
    torch.manual_seed(settings.seed)
    num_labels = int(max(train_labels)) + 1
    metrics: dict[str, float] = {}
    stages: list[StageRecord] = []

    def perplexity(key: str) -> float | None:
        if not lm_eval_texts:
            return None
        metrics[key] = language_model_perplexity(lm, eval_documents, settings.lm_finetuning.batch_size,
                                                 lm.config.bptt)
        return metrics[key]

    def after_stage(key: str, record: StageRecord) -> float | None:
        # the perplexity measured after the stage's last epoch: the model as the stage left it
        if not lm_eval_texts:
            return None
        metrics[key] = record.epochs_log[-1].valid["valid perplexity"]
        return metrics[key]

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(output_dir) if output_dir is not None else Path(tmp)
        task_texts = list(train_texts) + list(valid_texts or [])
        if pretrained is not None:
            if tokenizer_options:
                raise ValueError(f"tokenizer_options {tokenizer_options} build the tokenizer of an LM trained from "
                                 f"scratch: the pretrained LM {pretrained} brings its own")
            old_tokenizer = AWDLSTMTokenizer.from_pretrained(pretrained)
            if old_tokenizer.backwards != settings.backwards:
                found = "backward" if old_tokenizer.backwards else "forward"
                raise ValueError(f"{pretrained}: a {found} language model, but the run trains "
                                 f"{'backward' if settings.backwards else 'forward'} models (backwards="
                                 f"{settings.backwards}): give the pretrained LM of that direction")
            # checked: a folder whose weights do not fill the model (an edited config.json, a classifier's folder)
            # would otherwise fine-tune randomly initialised parts without a word
            lm, tokenizer = adapt_vocabulary(from_pretrained_checked(AWDLSTMForLanguageModeling, pretrained),
                                             old_tokenizer, task_texts, min_freq=settings.min_freq,
                                             max_vocab=settings.max_vocab)
            _use_bptt(lm, settings)
            new_tokens = len(set(tokenizer.itos) - set(old_tokenizer.itos))
            stages.append(StageRecord(1, "general-domain LM", note=(
                f"pretrained LM {pretrained}; vocabulary adapted to the task's texts: {len(tokenizer.itos):,} "
                f"tokens, {new_tokens:,} of them new (started from the mean embedding)")))
            eval_documents = encode_documents(tokenizer, lm_eval_texts or [])
            perplexity("lm valid perplexity before")
        else:
            corpus = list(pretraining_texts or []) + task_texts
            tokenizer = AWDLSTMTokenizer.from_texts(corpus, min_freq=settings.min_freq, max_vocab=settings.max_vocab,
                                                    replace_space=settings.replace_space,
                                                    backwards=settings.backwards, **(tokenizer_options or {}))
            # a row for every entry of itos, fastai's "xxfake" padding included (as fastai's model has; the vocab
            # dict counts those once), so that the saved LM can be fine-tuned again (adapt_vocabulary reads rows
            # by itos position)
            config = AWDLSTMConfig.for_language_model(
                drop_mult=settings.drop_mult, vocab_size=len(tokenizer.itos), backwards=settings.backwards,
                bos_token_id=tokenizer.document_start_id, **(scratch_config or {}))
            lm = AWDLSTMForLanguageModeling(config)
            _use_bptt(lm, settings)
            eval_documents = encode_documents(tokenizer, lm_eval_texts or [])
            perplexity("lm valid perplexity before")
            if pretraining_texts:
                logger.info("ULMFiT stage 1: pretraining the language model on %d texts", len(pretraining_texts))
                stage1 = train_language_model(lm, encode_documents(tokenizer, pretraining_texts), settings,
                                              settings.pretraining, out, desc="ULMFiT stage 1: LM pretraining",
                                              eval_documents=eval_documents or None, name="lm-pretraining")
                metrics["stage 1 lm train loss"] = stage1["train loss"]
                stages.append(_trained_stage(1, "general-domain LM pretraining", len(pretraining_texts), stage1,
                                             settings.pretraining))
                stages[-1].valid_perplexity = after_stage("stage 1 lm valid perplexity", stages[-1])
            else:
                stages.append(StageRecord(1, "general-domain LM", note=(
                    f"none: the LM started from random weights (vocabulary of {len(tokenizer.itos):,} tokens from "
                    "the task's texts)")))
        logger.info("ULMFiT stage 2: fine-tuning the language model on the task's %d texts", len(task_texts))
        stage2 = train_language_model(lm, encode_documents(tokenizer, task_texts), settings, settings.lm_finetuning,
                                      out, desc="ULMFiT stage 2: LM fine-tuning",
                                      eval_documents=eval_documents or None, name="lm-finetuning")
        metrics["stage 2 lm train loss"] = stage2["train loss"]
        stages.append(_trained_stage(2, "target-task LM fine-tuning", len(task_texts), stage2,
                                     settings.lm_finetuning))
        stages[-1].valid_perplexity = after_stage("stage 2 lm valid perplexity", stages[-1])
        logger.info("ULMFiT stage 3: training the classifier on %d labelled texts", len(train_texts))
        classifier = classifier_from_language_model(lm, num_labels, settings)
        has_valid = valid_texts is not None and valid_labels is not None
        valid_documents = encode_documents(tokenizer, valid_texts) if has_valid else None
        stage3 = train_classifier(classifier, encode_documents(tokenizer, train_texts), train_labels, tokenizer,
                                  settings, out, valid_documents, valid_labels if has_valid else None)
        metrics["stage 3 classifier train loss"] = stage3["train loss"]
        stages.append(_trained_stage(3, "classifier fine-tuning", len(train_texts), stage3, settings.classifier))
        if has_valid:
            # the accuracy measured after the last epoch: the classifier as training left it
            metrics["valid accuracy"] = stages[-1].epochs_log[-1].valid["valid accuracy"]
            valid = np.asarray(valid_labels)
            majority = int(np.bincount(np.asarray(train_labels)).argmax())  # the training data's most frequent class
            metrics["valid majority-class accuracy"] = float((valid == majority).mean())
            stages[-1].valid_accuracy = metrics["valid accuracy"]
    return UlmfitResult(lm, classifier, tokenizer, metrics, stages, settings,
                        None if pretrained is None else str(pretrained), num_labels, len(valid_texts or []))


# --------------------------------------------------------------------------------------------------------------------
# Hub-ready folders with their model cards
# --------------------------------------------------------------------------------------------------------------------
LM_FOLDER, CLASSIFIER_FOLDER = ULMFIT_LM_FOLDER, ULMFIT_CLASSIFIER_FOLDER


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _stage_row(record: StageRecord, settings: UlmfitSettings, num_labels: int, bptt: int) -> dict[str, str]:
    """One row of a card's training table: the data, how the stage trained (its StageSettings in words) and what
    it reached, epoch by epoch where there was validation data."""
    label = f"{record.stage}. {record.name}"
    if record.texts is None:
        return {"stage": label, "data": "–", "schedule": record.note or "–", "result": "–"}
    stage = record.settings or settings.stage(STAGE_NAMES[record.stage - 1])
    if record.stage == 3:
        data = f"{_plural(record.texts, 'labelled text')}, {num_labels} classes"
        reading = f"batch {record.batch_size}, texts of similar length together"
        every = _plural(stage.epochs_per_unfreeze, 'epoch')
        if stage.unfreeze_groups:
            steps = ", ".join("all" if k == -1 else str(k) for k in stage.unfreeze_groups)
            unfreezing = f"gradual unfreezing (the top {steps} layer groups, changing every {every}); "
        else:
            unfreezing = f"gradual unfreezing (one more layer group every {every}, from the top); "
    else:
        data = _plural(record.texts, "text") + (" (training and validation texts, without labels)"
                                                if record.stage == 2 else "")
        data += f", {record.tokens:,} tokens" if record.tokens else ""
        windows = "jittered windows around" if settings.bptt_jitter else "fixed windows of"
        reading = f"batch {record.batch_size} × {windows} bptt {bptt}, one contiguous stream, state carried"
        unfreezing = ""
    schedule = (f"{_plural(record.epochs, 'epoch')} ({_plural(record.steps, 'step')}); {unfreezing}"
                f"{stage.describe()}; {reading}; dropouts × {settings.drop_mult:g}")
    result = f"train loss {record.train_loss:.3f}"
    if record.valid_perplexity is not None:
        result += f", validation perplexity {record.valid_perplexity:.1f}"
    per_epoch = [f"{e.epoch}: " + ", ".join(f"{k.removeprefix('valid ')} {v:.4g}" for k, v in e.valid.items())
                 for e in record.epochs_log if e.valid]
    if per_epoch:
        result += " (after each epoch: " + "; ".join(per_epoch) + ")"
    speed = f", {record.tokens_per_s:,.0f} tokens/s" if record.tokens_per_s else ""
    return {"stage": label, "data": data, "schedule": schedule,
            "result": result + f" ({record.seconds:.0f} s{speed})"}


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
    settings = result.settings
    results["vocabulary"] = (f"{len(result.tokenizer.itos):,} tokens (min_freq {settings.min_freq}, max_vocab "
                             f"{settings.max_vocab:,}, replace_space {'on' if settings.replace_space else 'off'})")
    results["training time"] = f"{sum(r.seconds or 0.0 for r in records):.0f} s"
    rows = [_stage_row(r, result.settings, result.num_labels, result.language_model.config.bptt) for r in records]
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
    shown_as: str | Path | None = None,
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
        shown_as: where ``output_dir`` will be once the run completes (a staged folder, renamed at the end): the
            cards' snippets load the folders from there when they have no repository. Default: ``output_dir``.

    Returns the two folders by name.
    """
    output_dir = Path(output_dir)
    shown = Path(shown_as) if shown_as is not None else output_dir
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
        card = render_awd_lstm_card(model.config, repo_id or shown / name, None, kind, model_name=titles.get(name),
                                    revision=revision if repo_id else None,
                                    num_parameters=sum(p.numel() for p in model.parameters()), base_model=base_model,
                                    license=license, language=language, training=report, example_texts=texts,
                                    sentencepiece=getattr(result.tokenizer, "sp_model", None) is not None)
        card.save(folder / "README.md")
        folders[name] = folder
    return folders
