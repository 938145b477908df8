"""The ``Trainer``'s progress bar with a label, and its log lines as numbers.

transformers' ``ProgressCallback`` draws an unlabelled bar (``0/300``) and writes each log as a dict of strings
(``{'loss': '4.123', ...}``). A command that trains several models in a row (``hf-elmo quickstart``, ``hf-elmo
ulmfit``) swaps it, with :func:`label_progress`, for :class:`LabelledProgressCallback`: the bar says what is being
trained and each log is one line of numbers, e.g. ``ELMo pretraining, step 30/300: loss 4.123, grad_norm 1.02,
learning_rate 0.002833, epoch 1.5``.
"""

from __future__ import annotations

from typing import Any

from transformers import ProgressCallback, Trainer
from transformers.trainer_callback import TrainerControl, TrainerState
from transformers.trainer_utils import has_length
from transformers.training_args import TrainingArguments


def format_logs(logs: dict[str, Any]) -> str:
    """``loss 4.123, grad_norm 1.02, ...``: every number with 4 significant digits (``total_flos`` left out)."""
    parts = []
    for key, value in logs.items():
        if key == "total_flos":
            continue
        if isinstance(value, float):
            value = f"{value:.4g}"
        parts.append(f"{key} {value}")
    return ", ".join(parts)


class LabelledProgressCallback(ProgressCallback):
    """``ProgressCallback`` whose training bar is labelled ``desc`` and whose log lines are plain numbers."""

    def __init__(self, desc: str, max_str_len: int = 100) -> None:
        super().__init__(max_str_len=max_str_len)
        self.desc = desc

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        from tqdm.auto import tqdm

        if state.is_world_process_zero:
            self.training_bar = tqdm(total=state.max_steps, desc=self.desc, unit="step", dynamic_ncols=True)
        self.current_step = 0

    def on_prediction_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                           eval_dataloader: Any = None, **kwargs: Any) -> None:
        from tqdm.auto import tqdm

        if state.is_world_process_zero and self.prediction_bar is None and has_length(eval_dataloader):
            self.prediction_bar = tqdm(total=len(eval_dataloader), desc=f"{self.desc} (evaluation)",
                                       leave=self.training_bar is None, dynamic_ncols=True)
        super().on_prediction_step(args, state, control, eval_dataloader=eval_dataloader, **kwargs)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and self.training_bar is not None and logs:
            self.training_bar.write(f"{self.desc}, step {state.global_step}/{state.max_steps}: {format_logs(logs)}")


def label_progress(trainer: Trainer, desc: str) -> Trainer:
    """Replaces ``trainer``'s progress bar by a :class:`LabelledProgressCallback` labelled ``desc`` (nothing changes
    when its bars are off, ``disable_tqdm``); returns ``trainer``."""
    if any(isinstance(cb, ProgressCallback) for cb in trainer.callback_handler.callbacks):
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(LabelledProgressCallback(desc))
    return trainer
