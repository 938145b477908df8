"""Quickstart stage: ULMFiT with a small AWD-LSTM on the quickstart's text.

Stage 1 pretrains the language model from scratch on the quickstart's training texts that the classification task
does not use (the "general domain"); stages 2 and 3 are ULMFiT's target-task LM fine-tuning and classifier
fine-tuning with gradual unfreezing (``hf_elmo.training.ulmfit.run_ulmfit``). The classification task is made from
the text:

* the standard library's docstrings (the default): which top-level module a docstring sentence comes from, among
  ``STDLIB_MODULES`` (asyncio, email, http, logging, xml: each has hundreds of sentences);
* ``--data`` with ``--label-column``: the file's own labels;
* ``--data`` without labels: a self-supervised task, original or shuffled: in half of the task's texts the words
  between the first and the last are shuffled, and the classifier tells which texts are in their original order
  (what a language model knows: the first and last words stay, so capitals and final punctuation give nothing away).

The figures: the LM's validation perplexity (held-out texts outside the task) before training and after stages 1
and 2, the classifier's validation accuracy beside the majority class's, and the seconds each stage trained. The
language model and the classifier are saved as Hub-ready folders (``output/ulmfit/language_model``,
``output/ulmfit/classifier``, each with its model card). The returned :class:`UlmfitStageResult` carries the
classifier's folder and its validation texts for later stages (an ONNX export, for one).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..training.ulmfit import CLASSIFIER_FOLDER, LM_FOLDER, run_ulmfit, save_ulmfit_folders
from ..training.ulmfit_settings import StageSettings, UlmfitSettings
from . import corpus

# The task on the standard library: modules with hundreds of prose sentences on distinct topics, in every Python.
STDLIB_MODULES = ("asyncio", "email", "http", "logging", "xml")
MIN_TEXTS_PER_CLASS = 20
MAX_SHUFFLE_TASK_TEXTS = 2000
# A small AWD-LSTM (about 1.6M parameters with the standard library's vocabulary): the classifier clearly beats the
# majority class after well under a minute of training on two CPU cores.
SMALL_AWD_LSTM = dict(emb_size=128, hidden_size=384, num_layers=2)
LR = 3e-2
DROP_MULT = 0.5


@dataclass
class Task:
    """A classification task made from the quickstart's text."""

    description: str
    class_names: list[str]
    train_texts: list[str]
    train_labels: list[int]
    valid_texts: list[str]
    valid_labels: list[int]
    used: set[str] = field(default_factory=set)  # every text of the task (kept out of stage 1 and the LM evaluation)


@dataclass
class UlmfitStageResult:
    figures: dict[str, Any]
    classifier_folder: Path
    language_model_folder: Path
    valid_texts: list[str]  # the classifier's validation texts (for a later stage to check and time it on)


def labelled_task(description: str, texts: Sequence[str], labels: Sequence[str], seed: int) -> Task:
    """The task of classifying ``texts`` by ``labels`` (class names sorted; a seeded 80/20 train/validation split)."""
    class_names = sorted(set(labels))
    if len(class_names) < 2:
        raise ValueError(f"the classification task needs at least 2 classes, found {class_names}")
    index = {name: i for i, name in enumerate(class_names)}
    train, valid = corpus.split(list(zip(texts, labels)), valid_fraction=0.2, seed=seed)
    return Task(description, class_names, [t for t, _ in train], [index[y] for _, y in train],
                [t for t, _ in valid], [index[y] for _, y in valid], set(texts))


def stdlib_task(texts: Sequence[str], modules: Sequence[str], seed: int = 0) -> Task:
    """Which top-level module of the standard library a docstring sentence comes from: ``STDLIB_MODULES`` when the
    texts hold enough of their sentences (with ``--limit`` they may not), else the most frequent modules there."""
    counts = Counter(modules)
    chosen = [m for m in STDLIB_MODULES if counts[m] >= MIN_TEXTS_PER_CLASS]
    if len(chosen) < 2:
        chosen = [m for m, n in counts.most_common(len(STDLIB_MODULES)) if n >= MIN_TEXTS_PER_CLASS]
    if len(chosen) < 2:
        raise ValueError(f"too few docstring sentences for the module task (fewer than {MIN_TEXTS_PER_CLASS} for 2 "
                         "modules): give a larger --limit")
    pairs = [(t, m) for t, m in zip(texts, modules) if m in chosen]
    description = "which standard-library module a docstring sentence comes from: " + ", ".join(sorted(chosen))
    return labelled_task(description, [t for t, _ in pairs], [m for _, m in pairs], seed)


def _shuffle_inside(text: str, rng: random.Random) -> str | None:
    """``text`` with the words between its first and last shuffled into another order (None when no other order
    exists)."""
    words = text.split()
    inner = words[1:-1]
    if len(set(inner)) < 2:
        return None
    shuffled = list(inner)
    while shuffled == inner:
        rng.shuffle(shuffled)
    return " ".join([words[0], *shuffled, words[-1]])


def shuffle_task(texts: Sequence[str], seed: int = 0, max_texts: int = MAX_SHUFFLE_TASK_TEXTS) -> Task:
    """Original or shuffled word order, made from unlabelled texts (up to ``max_texts`` of them, half shuffled)."""
    rng = random.Random(f"shuffle task {seed}")  # not corpus.split's stream: its validation texts would all be taken
    candidates = [t for t in dict.fromkeys(texts) if len(set(t.split()[1:-1])) >= 2]
    rng.shuffle(candidates)
    chosen = candidates[:max_texts]
    if len(chosen) < 2 * MIN_TEXTS_PER_CLASS:
        raise ValueError(f"too few texts of at least 4 words for the shuffled-order task ({len(chosen)})")
    rows = [(_shuffle_inside(t, rng), "shuffled") if i % 2 else (t, "original") for i, t in enumerate(chosen)]
    task = labelled_task("whether a text's words are in their original order or shuffled (all but the first and "
                          "last word)", [t for t, _ in rows], [y for _, y in rows], seed)
    task.used = set(chosen)
    return task


def run(task: Task, train_texts: Sequence[str], valid_texts: Sequence[str], output: Path, *, data: str,
        lm_epochs: int = 1, classifier_epochs: int = 10, emb_size: int = SMALL_AWD_LSTM["emb_size"],
        hidden_size: int = SMALL_AWD_LSTM["hidden_size"], num_layers: int = SMALL_AWD_LSTM["num_layers"],
        seed: int = 0, shown_as: Path | None = None) -> UlmfitStageResult:
    """Pretrains the LM on ``train_texts`` outside the task (stage 1; the task's own training texts when none are
    left), runs stages 2 and 3 on ``task``, measures the LM on ``valid_texts`` outside the task, and saves the
    folders under ``output / "ulmfit"``. ``data`` describes the quickstart's text for the cards; ``shown_as`` is where
    ``output`` will be once the run completes (the cards' snippets and the figures name the folders there)."""
    shown = (shown_as or output) / "ulmfit"
    pretraining = [t for t in train_texts if t not in task.used] or list(task.train_texts)
    lm_eval = [t for t in valid_texts if t not in task.used]
    settings = UlmfitSettings(pretraining=StageSettings(epochs=lm_epochs, lr=LR, lr_factor=None),
                              lm_finetuning=StageSettings(epochs=lm_epochs, lr=LR),
                              classifier=StageSettings(epochs=classifier_epochs, lr=LR), drop_mult=DROP_MULT,
                              seed=seed)
    result = run_ulmfit(task.train_texts, task.train_labels, task.valid_texts, task.valid_labels,
                        pretraining_texts=pretraining, lm_eval_texts=lm_eval or None, settings=settings,
                        scratch_config=dict(emb_size=emb_size, hidden_size=hidden_size, num_layers=num_layers),
                        output_dir=output / "checkpoints" / "ulmfit")
    folders = save_ulmfit_folders(
        result, output / "ulmfit", data=data, task=task.description,
        class_names=task.class_names, example_texts=task.valid_texts[:2],
        titles={LM_FOLDER: "AWD-LSTM language model (ULMFiT quickstart)",
                CLASSIFIER_FOLDER: "ULMFiT text classifier (AWD-LSTM, quickstart)"},
        shown_as=shown,
    )
    metrics = result.metrics
    figures: dict[str, Any] = {
        "folders": f"{shown / LM_FOLDER}, {shown / CLASSIFIER_FOLDER}",
        "task": task.description,
        "classes": len(task.class_names),
        "parameters (classifier)": sum(p.numel() for p in result.classifier.parameters()),
        "vocabulary": len(result.tokenizer.itos),
        "stage 1 texts (LM pretraining)": len(pretraining),
        "task texts (train / valid)": f"{len(task.train_texts)} / {len(task.valid_texts)}",
    }
    for name, key in (("LM valid perplexity before", "lm valid perplexity before"),
                      ("LM valid perplexity after stage 1", "stage 1 lm valid perplexity"),
                      ("LM valid perplexity after stage 2", "stage 2 lm valid perplexity")):
        if key in metrics:
            figures[name] = round(metrics[key], 1)
    figures["classifier valid accuracy"] = round(metrics["valid accuracy"], 3)
    figures["majority-class accuracy"] = round(metrics["valid majority-class accuracy"], 3)
    for record in result.stages:
        if record.seconds is not None:
            figures[f"stage {record.stage} train seconds"] = round(record.seconds, 1)
    return UlmfitStageResult(figures, folders[CLASSIFIER_FOLDER], folders[LM_FOLDER], list(task.valid_texts))
