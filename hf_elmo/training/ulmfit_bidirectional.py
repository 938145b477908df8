"""ULMFiT in both directions and the ensemble the paper reports (Howard & Ruder, 2018, section 3.3 "bidirectional
language model"): the whole recipe run twice, once on the texts as they are and once on every document reversed
(fastai's ``backwards=True``), then the two classifiers' class probabilities averaged.

Each direction is a complete :func:`~hf_elmo.training.ulmfit.run_ulmfit` run with the same settings and seed; only
``backwards`` differs. Both build their vocabulary from the same texts, so the two classifiers read the same ids and
form one :class:`~hf_elmo.models.awd_lstm.AWDLSTMEnsembleForSequenceClassification`, which takes each document in
the text's order (the forward tokenizer) and reverses it for its backward member itself.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..cards import TrainingReport, render_awd_lstm_card
from ..models.awd_lstm import AWDLSTMConfig, AWDLSTMEnsembleForSequenceClassification
from .ulmfit import (UlmfitResult, encode_documents, predict, run_ulmfit, save_ulmfit_folders,
                     ulmfit_training_report)
from .ulmfit_settings import UlmfitSettings

DIRECTIONS = ("forward", "backward")
ENSEMBLE_FOLDER = "ensemble"


@dataclass
class BidirectionalUlmfitResult:
    """The two directions' runs (each with its LM, classifier, tokenizer, metrics and stage records) and their
    ensemble. ``metrics`` holds the ensemble's validation accuracy (when validation data was given) beside each
    direction's, by name."""

    forward: UlmfitResult
    backward: UlmfitResult
    ensemble: AWDLSTMEnsembleForSequenceClassification
    metrics: dict[str, float]

    def report(self) -> dict[str, Any]:
        """metrics.json: the ensemble's figures, then each direction's whole report."""
        return {**self.metrics, "forward": self.forward.report(), "backward": self.backward.report()}

    def summary(self) -> str:
        """Each direction's stage table, then the ensemble's figures."""
        lines = []
        for name in DIRECTIONS:
            lines += [f"{name}:", getattr(self, name).summary()]
        return "\n".join(lines)


def check_direction_pair(pretrained: Any, pretrained_backward: Any) -> None:
    """Both pretrained LMs or neither (the backward run needs a backward LM; a forward LM read backwards would start
    stage 2 from weights that predict the wrong neighbours), each of its direction; their architectures must match,
    since the two classifiers become one ensemble. Raises ValueError naming the folder or the field, before any
    training (the backward run starts only after the forward one)."""
    if (pretrained is None) != (pretrained_backward is None):
        given, missing = ("--pretrained", "--pretrained-backward") if pretrained is not None else \
            ("--pretrained-backward", "--pretrained")
        raise ValueError(f"a bidirectional run with {given} needs {missing} too: each direction fine-tunes its own "
                         "pretrained LM (or give neither and train both from scratch)")
    if pretrained is None:
        return
    configs = [AWDLSTMConfig.from_pretrained(source) for source in (pretrained, pretrained_backward)]
    for name, source, config in zip(DIRECTIONS, (pretrained, pretrained_backward), configs):
        if bool(getattr(config, "backwards", False)) != (name == "backward"):
            found = "backward" if name == "forward" else "forward"
            raise ValueError(f"{source}: a {found} language model given as the {name} one (its config says "
                             f"backwards={name == 'forward'})")
    for field in AWDLSTMEnsembleForSequenceClassification.SHARED_FIELDS:
        if field in ("vocab_size", "num_labels", "id2label", "problem_type"):  # the vocabulary is rebuilt; no head yet
            continue
        a, b = (getattr(c, field, None) for c in configs)
        if a != b:
            raise ValueError(f"the forward and backward pretrained LMs differ in {field}: {a!r} ({pretrained}) vs "
                             f"{b!r} ({pretrained_backward}); their classifiers could not form one ensemble")


def run_bidirectional_ulmfit(
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    valid_texts: Sequence[str] | None = None,
    valid_labels: Sequence[int] | None = None,
    *,
    pretrained: str | os.PathLike | None = None,
    pretrained_backward: str | os.PathLike | None = None,
    settings: UlmfitSettings | None = None,
    output_dir: str | os.PathLike | None = None,
    **kwargs: Any,
) -> BidirectionalUlmfitResult:
    """:func:`~hf_elmo.training.ulmfit.run_ulmfit` forwards, then backwards (``pretrained_backward`` is the
    backward LM of stage 1), then their ensemble. ``settings.backwards`` must be False (this function sets it per
    direction); ``kwargs`` go to both runs (``pretraining_texts``, ``scratch_config``, ``lm_eval_texts``).
    ``output_dir``, when given, holds each run's training output under ``forward/`` and ``backward/``."""
    settings = settings or UlmfitSettings()
    if settings.backwards:
        raise ValueError("a bidirectional run trains both directions: leave settings.backwards False")
    check_direction_pair(pretrained, pretrained_backward)
    runs = {}
    for name, source in zip(DIRECTIONS, (pretrained, pretrained_backward)):
        direction = dataclasses.replace(settings, backwards=name == "backward")
        runs[name] = run_ulmfit(train_texts, train_labels, valid_texts, valid_labels, pretrained=source,
                                settings=direction, output_dir=None if output_dir is None else Path(output_dir) / name,
                                **kwargs)
    forward, backward = runs["forward"], runs["backward"]
    if forward.tokenizer.itos != backward.tokenizer.itos:  # the same texts and settings: never, unless a bug
        raise ValueError("the forward and backward runs built different vocabularies: they cannot form an ensemble")
    ensemble = AWDLSTMEnsembleForSequenceClassification.from_classifiers(forward.classifier, backward.classifier)
    metrics: dict[str, float] = {}
    if valid_texts is not None and valid_labels is not None:
        predicted = predict(ensemble, forward.tokenizer, encode_documents(forward.tokenizer, valid_texts))
        metrics["ensemble valid accuracy"] = float((predicted == np.asarray(valid_labels)).mean())
        for name, run in runs.items():
            metrics[f"{name} valid accuracy"] = run.metrics["valid accuracy"]
    return BidirectionalUlmfitResult(forward, backward, ensemble.eval(), metrics)


def save_bidirectional_folders(
    result: BidirectionalUlmfitResult,
    output_dir: str | os.PathLike,
    *,
    data: str,
    task: str | None = None,
    class_names: Sequence[str] | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    datasets: list[str] | None = None,
    language: str | None = "en",
    license: str = "apache-2.0",
    example_texts: Sequence[str] | None = None,
    shown_as: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Saves ``output_dir/forward`` and ``output_dir/backward`` (each a language model and a classifier folder, as
    :func:`~hf_elmo.training.ulmfit.save_ulmfit_folders` writes them, with the same card arguments) and
    ``output_dir/ensemble``: the ensemble with the forward tokenizer and its card (``repo_id``: the Hub repository
    its snippet loads). Returns the folders: ``ensemble``, and ``forward/classifier``-style keys for the four
    others."""
    output_dir = Path(output_dir)
    shown = Path(shown_as) if shown_as is not None else output_dir
    cards = dict(data=data, task=task, class_names=class_names, datasets=datasets,
                 language=language, license=license, example_texts=example_texts)
    folders: dict[str, Path] = {}
    for name in DIRECTIONS:
        saved = save_ulmfit_folders(getattr(result, name), output_dir / name, shown_as=shown / name, **cards)
        folders.update({f"{name}/{kind}": folder for kind, folder in saved.items()})
    ensemble = result.ensemble
    ensemble.config.id2label = result.forward.classifier.config.id2label
    ensemble.config.label2id = result.forward.classifier.config.label2id
    folder = output_dir / ENSEMBLE_FOLDER
    ensemble.save_pretrained(folder)
    result.forward.tokenizer.save_pretrained(folder)
    card = render_awd_lstm_card(
        ensemble.config, repo_id or shown / ENSEMBLE_FOLDER, None, "classifier",
        model_name="ULMFiT forward + backward ensemble (AWD-LSTM)", revision=revision if repo_id else None,
        num_parameters=sum(p.numel() for p in ensemble.parameters()), license=license, language=language,
        training=_ensemble_report(result, data, task, datasets), example_texts=example_texts,
    )
    card.save(folder / "README.md")
    folders[ENSEMBLE_FOLDER] = folder
    return folders


def _ensemble_report(result: BidirectionalUlmfitResult, data: str, task: str | None,
                     datasets: list[str] | None) -> TrainingReport:
    """The ensemble card's training section: both directions' stages (each row named by its direction) and the
    validation accuracy of the ensemble beside each member's."""
    stages, results = [], {}
    for name in DIRECTIONS:
        report = ulmfit_training_report(getattr(result, name), "classifier", data, task=task)
        stages += [{**row, "stage": f"{name}: {row['stage']}"} for row in report.stages]
    for key, value in result.metrics.items():
        results[key.replace(" valid accuracy", " validation accuracy")] = f"{value:.3f}"
    origin = ("The ensemble averages the class probabilities of a forward classifier and a backward one (which reads "
              "each document reversed, as fastai's `backwards=True`), as the ULMFiT paper reports its results; each "
              "was trained by the whole recipe, and both are saved beside this folder (`forward/classifier`, "
              "`backward/classifier`).")
    return TrainingReport(data=data, stages=stages, results=results, origin=origin, datasets=datasets, task=task)
