"""Freezing layer groups, and ULMFiT's gradual unfreezing as a transformers ``TrainerCallback``.

Gradual unfreezing trains only the top layer group in the first epoch, then one more group per epoch, so that the
randomly initialised head does not wreck the pretrained lower layers before it has learned anything (catastrophic
forgetting). Freezing here is ``requires_grad_(False)``: the optimizer can hold every parameter from the start
(see :func:`~hf_elmo.training.discriminative.make_optimizer`), frozen ones just get no gradient and so no update,
weight decay included.

Two rules follow fastai's ``freeze_to``:

* with ``train_bn=True`` (fastai's default) BatchNorm layers stay trainable even in frozen groups, as their
  statistics must follow the new data anyway;
* parameters that were already frozen the first time a model is seen here (e.g. ELMo's fixed scalar mix, or a
  biLM frozen with ``freeze_bilm()``) are treated as never trainable: unfreezing leaves them frozen.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Sequence
from typing import Any

from torch import nn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from .layer_groups import LayerGroups, grouped_parameters

logger = logging.getLogger(__name__)

# model -> names of its parameters that were trainable when freeze_to first saw it
_TRAINABLE_AT_FIRST_SIGHT: "weakref.WeakKeyDictionary[nn.Module, frozenset[str]]" = weakref.WeakKeyDictionary()
_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _trainable_names(model: nn.Module) -> frozenset[str]:
    names = _TRAINABLE_AT_FIRST_SIGHT.get(model)
    if names is None:
        names = frozenset(name for name, p in model.named_parameters() if p.requires_grad)
        _TRAINABLE_AT_FIRST_SIGHT[model] = names
    return names


def freeze_to(model: nn.Module, n: int, groups: LayerGroups | None = None, train_bn: bool = True) -> None:
    """Freezes layer groups ``0..n-1`` and unfreezes groups ``n..L-1`` (bottom to top), like fastai's
    ``Learner.freeze_to``: ``n`` may be negative (``-1``: only the top group trains), ``0`` unfreezes everything
    and ``L`` freezes everything. ``groups`` defaults to ``model.layer_groups()`` (or the ELMo fallback)."""
    named = grouped_parameters(model, groups)
    n_groups = len(named)
    if not -n_groups <= n <= n_groups:
        raise ValueError(
            f"freeze_to({n}) on a model with {n_groups} layer groups: n must lie in [{-n_groups}, {n_groups}]"
        )
    first_trained = n + n_groups if n < 0 else n
    trainable = _trainable_names(model)
    bn_params = set()
    if train_bn:
        bn_params = {id(p) for m in model.modules() if isinstance(m, _BN_TYPES) for p in m.parameters(recurse=False)}
    for level, group in enumerate(named):
        for name, p in group:
            wanted = level >= first_trained or id(p) in bn_params
            p.requires_grad_(wanted and name in trainable)


def freeze(model: nn.Module, groups: LayerGroups | None = None, train_bn: bool = True) -> None:
    """Only the top layer group trains (fastai's ``freeze``)."""
    freeze_to(model, -1, groups, train_bn)


def unfreeze(model: nn.Module, groups: LayerGroups | None = None) -> None:
    """Every layer group trains (parameters frozen before freeze_to first saw the model stay frozen)."""
    freeze_to(model, 0, groups)


class GradualUnfreezingCallback(TrainerCallback):
    """ULMFiT's gradual unfreezing: at the start of epoch ``e`` (0-based) the top ``e // epochs_per_stage + 1``
    layer groups train and the others are frozen; from epoch ``(L−1)·epochs_per_stage`` on, all ``L`` groups train.

    Works with an optimizer that holds every parameter (frozen ones get no gradient). Resuming from a checkpoint
    picks the stage from the resumed epoch. When training ends before the last stage, the lower groups stay frozen
    (call :func:`unfreeze` to undo). With several processes (DDP), unfreezing changes which parameters get
    gradients: set ``ddp_find_unused_parameters=True``.

    Args:
        groups: layer groups, bottom to top; default ``model.layer_groups()`` (or the ELMo fallback).
        epochs_per_stage: epochs to train at each stage before unfreezing the next group (ULMFiT: 1).
        train_bn: keep BatchNorm layers of frozen groups trainable, as fastai does.
        stage_groups: how many top groups each stage trains, as a fastai script's ``freeze_to(-k)`` calls give them
            (e.g. fastai's ULMFiT tutorial ``(1, 2, 3, -1)``: -1, or any count ≥ L, is every group); the last stage
            lasts to the end. Default: 1, 2, 3, ... (one more group per stage).
    """

    def __init__(self, groups: LayerGroups | None = None, epochs_per_stage: int = 1, train_bn: bool = True,
                 stage_groups: Sequence[int] | None = None) -> None:
        if int(epochs_per_stage) != epochs_per_stage or epochs_per_stage < 1:
            raise ValueError(f"epochs_per_stage must be a positive integer, got {epochs_per_stage}")
        if stage_groups is not None and (not stage_groups or not all(
                int(k) == k and (k >= 1 or k == -1) for k in stage_groups)):
            raise ValueError(f"stage_groups must be counts of top groups >= 1 (or -1: all), got {stage_groups}")
        self.groups = groups
        self.epochs_per_stage = int(epochs_per_stage)
        self.train_bn = train_bn
        self.stage_groups = None if stage_groups is None else tuple(int(k) for k in stage_groups)
        self._next_epoch = 0

    def trained_groups(self, epoch: int, n_groups: int) -> int:
        """How many of the top layer groups train during ``epoch``."""
        stage = epoch // self.epochs_per_stage
        if self.stage_groups is None:
            return min(n_groups, stage + 1)
        wanted = self.stage_groups[min(stage, len(self.stage_groups) - 1)]
        return n_groups if wanted == -1 else min(n_groups, wanted)

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        # the first epoch of this run: 0, or the one a resumed checkpoint was in
        self._next_epoch = math.floor((state.epoch or 0.0) + 1e-6)

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       model: nn.Module | None = None, **kwargs: Any) -> None:
        if model is None:
            raise ValueError("GradualUnfreezingCallback needs the model (the Trainer passes it to callbacks)")
        epoch, self._next_epoch = self._next_epoch, self._next_epoch + 1
        n_groups = len(grouped_parameters(model, self.groups))
        n_trained = self.trained_groups(epoch, n_groups)
        freeze_to(model, n_groups - n_trained, self.groups, self.train_bn)
        logger.info("gradual unfreezing: epoch %d trains the top %d of %d layer groups", epoch, n_trained, n_groups)


class FrozenEpochsCallback(GradualUnfreezingCallback):
    """fastai's ``fine_tune(epochs, freeze_epochs=k)``: the first ``frozen_epochs`` epochs train only the top layer
    group (for a language model, the embeddings and the tied decoder), then every group trains: the two-stage case
    of :class:`GradualUnfreezingCallback` (``stage_groups=(1, -1)``)."""

    def __init__(self, frozen_epochs: int = 1, groups: LayerGroups | None = None, train_bn: bool = True) -> None:
        if int(frozen_epochs) != frozen_epochs or frozen_epochs < 1:
            raise ValueError(f"frozen_epochs must be a positive integer, got {frozen_epochs}")
        super().__init__(groups, epochs_per_stage=int(frozen_epochs), train_bn=train_bn, stage_groups=(1, -1))
