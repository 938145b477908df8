"""``Trainer`` subclasses for ULMFiT's two kinds of batches.

* :class:`StatefulLMTrainer`: language-model training on :class:`~hf_elmo.training.data.LMStreamDataset`, carrying
  the model's recurrent state from each batch to the next (truncated backpropagation through time over a
  continuous stream, as AWD-LSTM and ULMFiT train).
* :class:`SortedLengthTrainer`: classifier training on length-sorted batches
  (:class:`~hf_elmo.training.data.SortedLengthSampler`).

Both keep each epoch's mean training loss (:class:`EpochLossMixin`) for the recipe's per-epoch report.

Both only override documented ``Trainer`` hooks that transformers 4.57 and 5.x share (``_get_train_sampler``,
``compute_loss``, ``prediction_step``, ``evaluation_loop``, the dataloader getters), and use one process: the
stream's rows and the sorted batches are not split between processes.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, IterableDataset, SequentialSampler
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import has_length

from .data import LMStreamDataset, SortedLengthSampler


def detach_state(state: Any) -> Any:
    """``state`` with every tensor detached from the graph (tuples, named tuples, lists and dicts are rebuilt), so
    that the next batch's backward pass stops at the batch boundary."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(detach_state(s) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    if isinstance(state, Mapping):
        return {k: detach_state(v) for k, v in state.items()}
    detach = getattr(state, "detach", None)
    if callable(detach):
        return detach()
    raise TypeError(f"cannot detach a recurrent state of type {type(state).__name__}: expected tensors in tuples, "
                    "lists or dicts")


def _rows_of(inputs: Mapping[str, Any]) -> int:
    tensor = inputs.get("input_ids")
    if not isinstance(tensor, torch.Tensor):
        tensor = next((v for v in inputs.values() if isinstance(v, torch.Tensor)), None)
    if tensor is None or tensor.dim() == 0:
        raise ValueError("StatefulLMTrainer needs batches with an input_ids tensor (rows first)")
    return int(tensor.shape[0])


def _accepts_state(model: nn.Module) -> bool:
    params = inspect.signature(model.forward).parameters
    return "state" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class _ResetStateEachEpoch(TrainerCallback):
    def __init__(self, trainer: StatefulLMTrainer) -> None:
        self._trainer = weakref.ref(trainer)

    def _reset(self) -> None:
        trainer = self._trainer()
        if trainer is not None:
            trainer.reset_state("train")

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self._reset()

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self._reset()


class EpochLossMixin:
    """A ``Trainer`` mixin that keeps the mean training loss of the epoch under way (:meth:`take_epoch_loss`), as the
    ULMFiT recipe reports it per epoch; the Trainer itself only logs a running figure every ``logging_steps``. The
    losses are summed as tensors (no device synchronisation per step)."""

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: torch.Tensor | int | None = None) -> Any:
        result = super().compute_loss(model, inputs, return_outputs=return_outputs,  # type: ignore[misc]
                                      num_items_in_batch=num_items_in_batch)
        if model.training:
            loss = (result[0] if return_outputs else result).detach().float().mean()
            total = getattr(self, "_epoch_loss_sum", None)
            self._epoch_loss_sum = loss if total is None else total + loss
            self._epoch_loss_count = getattr(self, "_epoch_loss_count", 0) + 1
        return result

    def take_epoch_loss(self) -> float | None:
        """The mean training loss of the batches since the last call (None: no batch), and starts a new epoch."""
        total, count = getattr(self, "_epoch_loss_sum", None), getattr(self, "_epoch_loss_count", 0)
        self._epoch_loss_sum, self._epoch_loss_count = None, 0
        return None if total is None or count == 0 else float(total) / count


class StatefulLMTrainer(EpochLossMixin, Trainer):
    """A ``Trainer`` that carries a recurrent LM's state between consecutive batches.

    Every forward pass gets ``use_cache=True`` and, from the second batch on, ``state=`` the previous batch's
    ``output.state`` detached (the model must take ``state`` and ``use_cache`` and return ``state``, as the ELMo and
    AWD-LSTM models of this package do). The training state is reset (the model starts from zeros) at the start of
    every epoch, the evaluation state at the start and end of every evaluation, and either whenever the number of
    rows changes; :meth:`reset_state` resets by hand. During an evaluation in the middle of training, the training
    state waits untouched.

    The batches must continue each other row by row: give it an :class:`~hf_elmo.training.data.LMStreamDataset`
    whose ``batch_size`` equals ``per_device_train_batch_size`` (``per_device_eval_batch_size`` for evaluation; use
    ``jitter=False, shuffle=False`` there). Any other dataset is read in order (no shuffling), so its items must
    already be in stream order. Gradient accumulation works (micro-batches are consecutive windows).

    Under DDP (``torchrun``/``accelerate launch``) give the training stream ``per_device_train_batch_size × world
    size`` rows: accelerate hands process ``r`` rows ``r·B … (r+1)·B − 1`` of every window, so each process continues
    its own rows. Evaluation with a carried state runs on one process only.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lm_states: dict[str, tuple[int, Any]] = {}
        self.add_callback(_ResetStateEachEpoch(self))

    def reset_state(self, which: str | None = None) -> None:
        """Forgets the carried state: ``"train"``, ``"eval"`` or (None) both."""
        if which is None:
            self._lm_states.clear()
        else:
            self._lm_states.pop(which, None)

    def carried_state(self, which: str = "train") -> Any:
        """The state the next ``which`` batch starts from (None: zeros)."""
        entry = self._lm_states.get(which)
        return None if entry is None else entry[1]

    def _check_stream(self, dataset: Any, batch_size: int, argument: str) -> None:
        world = self.args.world_size
        if isinstance(dataset, LMStreamDataset) and dataset.batch_size != batch_size * world:
            across = f" × {world} processes" if world > 1 else ""
            raise ValueError(
                f"the LMStreamDataset has {dataset.batch_size} rows per batch but {argument} gives batches of "
                f"{batch_size}{across}: they must be equal, or the batches would not continue each other"
            )

    def _get_train_sampler(self, train_dataset: Dataset | None = None) -> torch.utils.data.Sampler | None:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if dataset is None or isinstance(dataset, IterableDataset) or not has_length(dataset):
            return None
        return SequentialSampler(dataset)  # never shuffle: the items are consecutive windows

    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        self._check_stream(self.train_dataset, self._train_batch_size, "per_device_train_batch_size")
        return super().get_train_dataloader()

    def get_eval_dataloader(self, eval_dataset: str | Dataset | None = None) -> torch.utils.data.DataLoader:
        dataset = eval_dataset
        if isinstance(dataset, str) and isinstance(self.eval_dataset, Mapping):
            dataset = self.eval_dataset[dataset]
        elif dataset is None:
            dataset = self.eval_dataset
        if self.args.world_size > 1:
            raise ValueError(
                "StatefulLMTrainer evaluates on one process: at the end of an evaluation stream the processes' "
                "batches would be padded or repeated, breaking the rows' continuity; evaluate after training instead"
            )
        self._check_stream(dataset, self.args.eval_batch_size, "per_device_eval_batch_size")
        return super().get_eval_dataloader(eval_dataset)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        which = "train" if model.training else "eval"
        rows = _rows_of(inputs)
        if not _accepts_state(self.accelerator.unwrap_model(model)):
            raise TypeError(f"{type(model).__name__}.forward takes no state=: StatefulLMTrainer needs a recurrent "
                            "model that takes state= and use_cache= and returns output.state")
        inputs = {**inputs, "use_cache": True}
        carried = self._lm_states.get(which)
        if carried is not None and carried[0] == rows:
            inputs["state"] = carried[1]
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        state = outputs.get("state") if isinstance(outputs, Mapping) else None
        if state is None:
            raise ValueError(f"{type(model).__name__} returned no state with use_cache=True: StatefulLMTrainer needs "
                             "a model whose output (a dict or ModelOutput) has 'state'")
        self._lm_states[which] = (rows, detach_state(state))
        return (loss, outputs) if return_outputs else loss

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        # the carried state is not a prediction: keep it out of the gathered logits
        if ignore_keys is None:
            config = getattr(self.model, "config", None)
            ignore_keys = list(getattr(config, "keys_to_ignore_at_inference", ["past_key_values"]))
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=[*ignore_keys, "state"])

    def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
        self.reset_state("eval")
        try:
            return super().evaluation_loop(*args, **kwargs)
        finally:
            self.reset_state("eval")


def dataset_lengths(dataset: Dataset, key: str = "input_ids", length_column: str | None = "length") -> list[int]:
    """Each item's length: the ``length_column`` of a ``datasets.Dataset`` that has one, else ``len(item[key])``."""
    columns = getattr(dataset, "column_names", None)
    if columns is not None and not isinstance(columns, Mapping):
        if length_column and length_column in columns:
            return [int(x) for x in dataset[length_column]]
        if key in columns:
            return [len(x) for x in dataset[key]]
    lengths = []
    for i in range(len(dataset)):
        item = dataset[i]
        if not isinstance(item, Mapping) or key not in item:
            raise ValueError(f"cannot tell the length of item {i}: expected a dict with {key!r}; pass train_lengths=")
        lengths.append(len(item[key]))
    return lengths


class SortedLengthTrainer(EpochLossMixin, Trainer):
    """A ``Trainer`` whose training batches are length-sorted like fastai's SortedDL (see
    :func:`~hf_elmo.training.data.sorted_batches`): texts of similar length together, the longest batch first, a
    new order every epoch (seeded with ``data_seed`` or ``seed``). Evaluation keeps the Trainer's order, so that
    ``predict()`` returns predictions in dataset order. Pair it with a padding collator (e.g.
    ``DataCollatorWithPadding``).

    Args:
        train_lengths: the training items' lengths; default: ``len(item[length_key])`` for each item (or the
            dataset's ``args.length_column_name`` column).
        length_key: the field whose length sorts the items.
        chunk_batches: batches per sorted chunk (fastai: 50); smaller means more randomness, more padding.
    """

    def __init__(self, *args: Any, train_lengths: Sequence[int] | None = None, length_key: str = "input_ids",
                 chunk_batches: int = 50, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.train_lengths = None if train_lengths is None else [int(x) for x in train_lengths]
        self.length_key = length_key
        self.chunk_batches = chunk_batches

    def _get_train_sampler(self, train_dataset: Dataset | None = None) -> torch.utils.data.Sampler | None:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if dataset is None or isinstance(dataset, IterableDataset) or not has_length(dataset):
            return super()._get_train_sampler(train_dataset)
        lengths = self.train_lengths
        if lengths is None:
            lengths = dataset_lengths(dataset, self.length_key, self.args.length_column_name)
        if len(lengths) != len(dataset):
            raise ValueError(f"train_lengths has {len(lengths)} entries for a training set of {len(dataset)} items")
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return SortedLengthSampler(lengths, self._train_batch_size, shuffle=True, seed=seed,
                                   chunk_batches=self.chunk_batches)
