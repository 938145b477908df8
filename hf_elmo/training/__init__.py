"""ULMFiT's training recipe for the transformers ``Trainer``, for any model that exposes ``layer_groups()`` (bottom to
top) and for ELMo models (which get a default grouping):

* discriminative fine-tuning: :func:`make_optimizer` / :func:`discriminative_param_groups`;
* slanted triangular learning rates (:func:`slanted_triangular_schedule`) and fastai's one-cycle policy
  (:func:`one_cycle_schedule`);
* gradual unfreezing: :class:`GradualUnfreezingCallback`, :func:`freeze_to`; frozen first epochs
  (:class:`FrozenEpochsCallback`, fastai's ``fine_tune``);
* the recipe's settings per stage (:class:`StageSettings`, :class:`UlmfitSettings`) and its per-epoch report
  (:class:`EpochReportCallback`, :func:`stage_table`);
* data: the stateful language-model stream (:class:`LMStreamDataset` with :class:`StatefulLMTrainer`) and
  length-sorted classifier batches (:class:`SortedLengthSampler`, :class:`SortedLengthTrainer`).

Typical classifier fine-tuning::

    optimizer = make_optimizer(model, lr=1e-2, betas=ULMFIT_BETAS)
    scheduler = slanted_triangular_schedule(optimizer, num_training_steps=epochs * batches_per_epoch)
    trainer = SortedLengthTrainer(model=model, args=args, train_dataset=train, data_collator=collator,
                                  optimizers=(optimizer, scheduler), callbacks=[GradualUnfreezingCallback()])
"""

from .data import (
    LMStreamDataset,
    SortedLengthSampler,
    expected_window_length,
    lm_stream_batches,
    next_token_targets,
    num_windows,
    sorted_batches,
    window_lengths,
)
from .discriminative import (
    ULMFIT_BETAS,
    discriminative_lrs,
    discriminative_param_groups,
    make_optimizer,
    no_decay_parameter_ids,
)
from .layer_groups import grouped_parameters, layer_groups_of
from .reporting import EpochRecord, EpochReportCallback, stage_table
from .schedules import (
    OneCycle,
    OneCycleSchedule,
    PhaseScaled,
    RestartedCycles,
    SlantedTriangular,
    one_cycle_schedule,
    slanted_triangular_schedule,
)
from .trainers import EpochLossMixin, SortedLengthTrainer, StatefulLMTrainer, dataset_lengths, detach_state
from .ulmfit_settings import StageSettings, UlmfitSettings
from .unfreezing import FrozenEpochsCallback, GradualUnfreezingCallback, freeze, freeze_to, unfreeze

__all__ = [
    "EpochLossMixin",
    "EpochRecord",
    "EpochReportCallback",
    "FrozenEpochsCallback",
    "GradualUnfreezingCallback",
    "LMStreamDataset",
    "OneCycle",
    "OneCycleSchedule",
    "PhaseScaled",
    "RestartedCycles",
    "SlantedTriangular",
    "SortedLengthSampler",
    "SortedLengthTrainer",
    "StageSettings",
    "StatefulLMTrainer",
    "ULMFIT_BETAS",
    "UlmfitSettings",
    "dataset_lengths",
    "detach_state",
    "discriminative_lrs",
    "discriminative_param_groups",
    "expected_window_length",
    "freeze",
    "freeze_to",
    "grouped_parameters",
    "layer_groups_of",
    "lm_stream_batches",
    "make_optimizer",
    "next_token_targets",
    "no_decay_parameter_ids",
    "num_windows",
    "one_cycle_schedule",
    "slanted_triangular_schedule",
    "sorted_batches",
    "stage_table",
    "unfreeze",
    "window_lengths",
]
