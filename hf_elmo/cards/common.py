"""What the model cards of every family share: the templates' location, the usage snippet's target, the versions,
the label list and, for a model trained by hf-elmo rather than converted, the "Training" and "Results" sections
(``TrainingReport``, rendered once from ``training.md`` by ``training_section`` and placed in the family's template
where a conversion has its "Conversion" and "Parity" sections)."""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import jinja2
import torch
import transformers
from huggingface_hub import ModelCard, ModelCardData

from ..version import __version__ as hf_elmo_version

TRAINING_TEMPLATE = "training.md"


@dataclass
class TrainingReport:
    """How hf-elmo trained a model and what the training measured: the "Training" and "Results" sections of its card
    (a converted checkpoint has "Conversion" and "Parity" sections instead).

    Attributes:
        data: what it was trained on, a phrase that completes "trained ... on" (Markdown, no line breaks).
        stages: the training table, one row per stage, each a dict of ``stage``, ``data``, ``schedule``, ``result``.
        results: the figures the training measured, name → value as text (validation accuracy, perplexity, ...).
        origin: a sentence on the weights it started from when those are not a Hub repository (which would be the
            card's ``base_model``), e.g. a local folder.
        datasets: the Hub dataset ids it was trained on, for the card's metadata (only when known).
        task: what a classifier tells, a phrase (e.g. "which of these modules a sentence comes from: ...").
    """

    data: str
    stages: list[dict[str, str]]
    results: dict[str, str] = field(default_factory=dict)
    origin: str | None = None
    datasets: list[str] | None = None
    task: str | None = None


@contextlib.contextmanager
def template_path(template: str) -> Iterator[Path]:
    """The path of a template of ``hf_elmo.model_cards`` (in a wheel as in a checkout)."""
    with importlib.resources.as_file(importlib.resources.files("hf_elmo.model_cards").joinpath(template)) as path:
        if not path.is_file():
            raise FileNotFoundError(f"model card template {template!r} not found in hf_elmo.model_cards ({path})")
        yield path


def versions() -> dict[str, str]:
    """The versions a card states (hf_elmo, transformers, torch), as template fields."""
    return {"hf_elmo_version": hf_elmo_version, "transformers_version": transformers.__version__,
            "torch_version": torch.__version__}


def snippet_target(repo_id_or_path: str | os.PathLike, revision: str | None) -> dict[str, str]:
    """What a usage snippet loads: the repository id or folder as a Python (and JSON) string literal, the argument
    that selects the revision, and the target quoted for a shell command line."""
    target = str(repo_id_or_path)
    return {"checkpoint_literal": json.dumps(target), "checkpoint_shell": shlex.quote(target),
            "revision_argument": f", revision={revision!r}" if revision else ""}


def labels_text(config: Any) -> str | None:
    """``"0: a, 1: b"`` when the labels have names, None for transformers' default ``LABEL_i``."""
    id2label = getattr(config, "id2label", None) or {}
    if not id2label or all(str(v) == f"LABEL_{k}" for k, v in id2label.items()):
        return None
    return ", ".join(f"{k}: {v}" for k, v in sorted(id2label.items()))


def training_section(training: TrainingReport) -> str:
    """The "Training" and "Results" sections of a trained model's card (Markdown)."""
    for row in training.stages:
        missing = {"stage", "data", "schedule", "result"} - set(row)
        if missing:
            raise ValueError(f"TrainingReport: stage {row.get('stage', '?')!r} lacks {sorted(missing)}")
    with template_path(TRAINING_TEMPLATE) as path:
        template = jinja2.Template(path.read_text(encoding="utf-8"), trim_blocks=True, lstrip_blocks=True)
    return template.render(training=training, **versions()).strip()


def source_or_training(renderer: str, source: dict[str, Any] | None, training: TrainingReport | None,
                       source_keys: tuple[str, ...]) -> None:
    """A card describes either a conversion (``source``, with ``source_keys``) or a training run (``training``)."""
    if (source is None) == (training is None):
        raise ValueError(f"{renderer}: give either source (a converted checkpoint's original files) or training "
                         "(a TrainingReport of a model trained here)")
    if source is not None:
        missing = [key for key in source_keys if not source.get(key)]
        if missing:
            raise ValueError(f"{renderer}: source is missing {missing} (the original files' names)")


def from_template(template: str, card_data: ModelCardData, template_kwargs: dict[str, Any]) -> ModelCard:
    """The card of ``template`` with ``card_data`` as its metadata and ``template_kwargs`` filled in."""
    with template_path(template) as path:
        return ModelCard.from_template(card_data, template_path=str(path), **template_kwargs)


@dataclass(frozen=True)
class OnnxCardFamily:
    """What the card of a model family's ONNX exports needs from the family (``hf_elmo.cards.onnx`` renders it).

    Attributes:
        name: the family's name in titles ("ELMo").
        template: its card template in ``hf_elmo.model_cards``.
        tags: the family's tags in the card's metadata.
        tasks: task → (what the model is, what its outputs are, the lines that read them with hf_elmo and with plain
            onnxruntime), texts formatted with the sizes ``architecture`` gives.
        descriptions: task → the model, as a phrase of the card's first sentence.
        architecture: config → (the sizes the task texts are formatted with, the template's architecture fields).
    """

    name: str
    template: str
    tags: tuple[str, ...]
    tasks: dict[str, tuple[str, str, str, str]]
    descriptions: dict[str, str]
    architecture: Callable[[Any], tuple[dict[str, Any], dict[str, Any]]]
