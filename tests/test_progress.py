"""The Trainer's progress bar carries a label and its logs are printed as numbers (``hf_elmo.training.progress``)."""

from __future__ import annotations

import re

import torch
from transformers import ProgressCallback, Trainer, TrainingArguments

from hf_elmo.training.progress import LabelledProgressCallback, format_logs, label_progress


class _Line(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, labels=None):
        loss = ((self.w * x - labels) ** 2).mean()
        return {"loss": loss}


def test_format_logs_gives_numbers():
    assert format_logs({"loss": 4.123456, "grad_norm": 1.0, "epoch": 0.5, "total_flos": 12.0}) == (
        "loss 4.123, grad_norm 1, epoch 0.5")


def test_trainer_bar_is_labelled_and_logs_are_numbers(tmp_path, capsys):
    rows = [{"x": torch.tensor([1.0]), "labels": torch.tensor([2.0])} for _ in range(8)]
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=4, logging_steps=1,
                             report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=False)
    trainer = label_progress(Trainer(model=_Line(), args=args, train_dataset=rows), "toy training")
    callbacks = trainer.callback_handler.callbacks
    assert [type(cb) for cb in callbacks if isinstance(cb, ProgressCallback)] == [LabelledProgressCallback]
    trainer.train()
    captured = capsys.readouterr()
    assert "toy training" in captured.err and "3/3" in captured.err  # the bar
    logged = [line for line in captured.out.splitlines() if line.startswith("toy training, step ")]
    assert len(logged) >= 3, captured.out
    assert re.match(r"toy training, step 1/3: loss \d", logged[0]), logged[0]
    assert "'loss': '" not in captured.out
