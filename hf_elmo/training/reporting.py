"""What the ULMFiT recipe reports per epoch and per stage: wall time, tokens/s, mean training loss and, when held-out
data is given, the validation figure (LM perplexity, classifier accuracy), as fastai prints after every epoch.

:class:`EpochReportCallback` collects one :class:`EpochRecord` per epoch of a ``Trainer`` run (the Trainer must
keep its epoch losses, :class:`~hf_elmo.training.trainers.EpochLossMixin`); :func:`stage_table` renders the stages
of a run as the one-table summary the command prints at the end.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments


@dataclass
class EpochRecord:
    """One epoch: its number (1-based), wall seconds (training only, the validation after it not counted), tokens/s,
    mean training loss, and the validation figures computed after it (name → value)."""

    epoch: int
    seconds: float
    tokens_per_s: float | None
    train_loss: float | None
    valid: dict[str, float] = field(default_factory=dict)


class EpochReportCallback(TrainerCallback):
    """Records an :class:`EpochRecord` at the end of every epoch of ``trainer``'s run.

    Args:
        trainer: the Trainer (an :class:`~hf_elmo.training.trainers.EpochLossMixin` one), held weakly.
        tokens_per_epoch: the tokens one epoch reads, for tokens/s (None: not reported).
        evaluate: called with the model after each epoch, returns validation figures by name; the model is put back
            in training mode afterwards, and the time it takes is not counted in the epoch's seconds.
    """

    def __init__(self, trainer: Trainer, tokens_per_epoch: int | None = None,
                 evaluate: Callable[[nn.Module], dict[str, float]] | None = None) -> None:
        self._trainer = weakref.ref(trainer)
        self.tokens_per_epoch = tokens_per_epoch
        self.evaluate = evaluate
        self.records: list[EpochRecord] = []
        self._start = 0.0

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        trainer = self._trainer()
        if trainer is not None:
            trainer.take_epoch_loss()  # anything before this epoch (nothing, normally) is not this epoch's
        self._start = time.perf_counter()

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     model: nn.Module | None = None, **kwargs: Any) -> None:
        seconds = time.perf_counter() - self._start
        trainer = self._trainer()
        loss = trainer.take_epoch_loss() if trainer is not None else None
        valid: dict[str, float] = {}
        if self.evaluate is not None and model is not None:
            was_training = model.training
            try:
                valid = dict(self.evaluate(model))
            finally:
                model.train(was_training)
        tokens_per_s = self.tokens_per_epoch / seconds if self.tokens_per_epoch and seconds > 0 else None
        self.records.append(EpochRecord(len(self.records) + 1, seconds, tokens_per_s, loss, valid))


def _cell(value: Any, spec: str = "") -> str:
    if value is None:
        return "–"
    return format(value, spec) if spec else str(value)


def stage_table(stages: Sequence[Any]) -> str:
    """The run's summary, one row per stage (a ``StageRecord``: its wall seconds, validation included, and its
    training tokens/s) and one per epoch under it: epochs, peak lr, seconds, tokens/s, training loss and the
    validation figures."""
    header = ("stage", "epoch", "lr", "seconds", "tokens/s", "train loss", "validation")
    rows: list[tuple[str, ...]] = []
    for record in stages:
        label = f"{record.stage}. {record.name}"
        if record.texts is None:
            rows.append((label, "–", "–", "–", "–", "–", record.note or "–"))
            continue
        tokens_per_s = record.tokens_per_s
        rows.append((label, _cell(record.epochs), _cell(record.lr, "g"), _cell(record.seconds, ".1f"),
                     _cell(tokens_per_s, ",.0f"), _cell(record.train_loss, ".3f"), _valid_text(record.valid)))
        for epoch in record.epochs_log:
            rows.append(("", str(epoch.epoch), "", _cell(epoch.seconds, ".1f"), _cell(epoch.tokens_per_s, ",.0f"),
                         _cell(epoch.train_loss, ".3f"), _valid_text(epoch.valid)))
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in (header, *rows)]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _valid_text(valid: dict[str, float] | None) -> str:
    if not valid:
        return "–"
    return ", ".join(f"{name} {value:.4g}" for name, value in valid.items())
