"""Model cards (README.md) for converted, trained and exported checkpoints, rendered from the templates in
``hf_elmo.model_cards``.

The card is built with huggingface_hub's ``ModelCard.from_template`` so that its YAML metadata is the Hub's own
(validated ``ModelCardData``) and the body is a Jinja template kept beside the package as ordinary Markdown.
The templates are located through ``importlib.resources`` so that they are found in a wheel as in a checkout.

The renderers share their scaffolding: the usage snippet's target (``_snippet_target``), the versions
(``_versions``), the label list (``_labels_text``) and, for a model trained by hf-elmo rather than converted, the
"Training" and "Results" sections (``TrainingReport``, rendered once from ``training.md`` by ``_training_section``
and placed in the family's template where a conversion has its "Conversion" and "Parity" sections).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import jinja2
import torch
import transformers
from huggingface_hub import ModelCard, ModelCardData

from .version import __version__ as _hf_elmo_version
from .models.awd_lstm.configuration_awd_lstm import AWDLSTMConfig
from .models.elmo.configuration_elmo import ElmoConfig

ELMO_TEMPLATE = "elmo.md"
AWD_LSTM_TEMPLATE = "awd_lstm.md"
TRAINING_TEMPLATE = "training.md"
AWD_LSTM_KINDS = ("language-model", "classifier")

# What is known about each published size beyond its dimensions (shown in the card and in its metadata).
_PUBLISHED = {
    "small": ("the 1B Word Benchmark", ["1b-word-benchmark"]),
    "medium": ("the 1B Word Benchmark", ["1b-word-benchmark"]),
    "original": ("the 1B Word Benchmark", ["1b-word-benchmark"]),
    "original 5.5B": (
        "5.5B tokens: Wikipedia (1.9B) and the monolingual news crawl data of WMT 2008-2012 (3.6B)",
        None,
    ),
}


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
def _template_path(template: str) -> Iterator[Path]:
    with importlib.resources.as_file(importlib.resources.files("hf_elmo.model_cards").joinpath(template)) as path:
        if not path.is_file():
            raise FileNotFoundError(f"model card template {template!r} not found in hf_elmo.model_cards ({path})")
        yield path


def _versions() -> dict[str, str]:
    return {"hf_elmo_version": _hf_elmo_version, "transformers_version": transformers.__version__,
            "torch_version": torch.__version__}


def _snippet_target(repo_id_or_path: str | os.PathLike, revision: str | None) -> dict[str, str]:
    """What a usage snippet loads: the repository id or folder as a Python (and JSON) string literal, the argument
    that selects the revision, and the target quoted for a shell command line."""
    target = str(repo_id_or_path)
    return {"checkpoint_literal": json.dumps(target), "checkpoint_shell": shlex.quote(target),
            "revision_argument": f", revision={revision!r}" if revision else ""}


def _labels_text(config: Any) -> str | None:
    """``"0: a, 1: b"`` when the labels have names, None for transformers' default ``LABEL_i``."""
    id2label = getattr(config, "id2label", None) or {}
    if not id2label or all(str(v) == f"LABEL_{k}" for k, v in id2label.items()):
        return None
    return ", ".join(f"{k}: {v}" for k, v in sorted(id2label.items()))


def _training_section(training: TrainingReport) -> str:
    """The "Training" and "Results" sections of a trained model's card (Markdown)."""
    for row in training.stages:
        missing = {"stage", "data", "schedule", "result"} - set(row)
        if missing:
            raise ValueError(f"TrainingReport: stage {row.get('stage', '?')!r} lacks {sorted(missing)}")
    with _template_path(TRAINING_TEMPLATE) as path:
        template = jinja2.Template(path.read_text(encoding="utf-8"), trim_blocks=True, lstrip_blocks=True)
    return template.render(training=training, **_versions()).strip()


def _source_or_training(renderer: str, source: dict[str, Any] | None, training: TrainingReport | None,
                        source_keys: tuple[str, ...]) -> None:
    """A card describes either a conversion (``source``, with ``source_keys``) or a training run (``training``)."""
    if (source is None) == (training is None):
        raise ValueError(f"{renderer}: give either source (a converted checkpoint's original files) or training "
                         "(a TrainingReport of a model trained here)")
    if source is not None:
        missing = [key for key in source_keys if not source.get(key)]
        if missing:
            raise ValueError(f"{renderer}: source is missing {missing} (the original files' names)")


def elmo_card_data(size_name: str, datasets: list[str] | None = None) -> ModelCardData:
    """The Hub metadata of an ELMo card (library, license, tags, pipeline, and the training data when known:
    ``datasets``, else that of the published size)."""
    tags = ["elmo", "feature-extraction", "hf-elmo", "bilm", "character-level", "contextual-embeddings"]
    if size_name != "custom":
        tags.append("elmo-" + size_name.replace(" ", "-").lower())
    datasets = datasets or _PUBLISHED.get(size_name, (None, None))[1]
    return ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        language="en",
        tags=tags,
        pipeline_tag="feature-extraction",
        datasets=datasets,
    )


def render_elmo_card(
    config: ElmoConfig,
    repo_id_or_path: str | os.PathLike,
    source: dict[str, Any] | None,
    size_name: str,
    *,
    model_name: str | None = None,
    revision: str | None = None,
    num_parameters: int | None = None,
    verified_max_abs_diff: float | None = None,
    training: TrainingReport | None = None,
) -> ModelCard:
    """Renders the card of an ELMo checkpoint: a converted one (``source``) or one trained by hf-elmo (``training``).

    Args:
        config: the checkpoint's configuration (its dimensions fill the architecture table).
        repo_id_or_path: what the usage snippet loads: the Hub repository id, or the local folder.
        source: a conversion's original files: ``options``, ``weights`` (names), optionally ``weights_sha256`` and
            ``vocab``; None for a trained model.
        size_name: ``"small"``, ``"medium"``, ``"original"``, ``"original 5.5B"`` or ``"custom"``.
        model_name: the card's title (default: "ELMo (<size>)").
        revision: the branch the usage snippet should load, when not the default one.
        num_parameters: shown in the architecture table when given.
        verified_max_abs_diff: the difference measured when the saved folder was reloaded, shown in the parity section.
        training: how a model trained here was trained and what it measured (instead of ``source``).
    """
    if size_name not in (*_PUBLISHED, "custom"):
        raise ValueError(f"render_elmo_card: unknown size_name {size_name!r}; one of {[*_PUBLISHED, 'custom']}")
    _source_or_training("render_elmo_card", source, training, ("options", "weights"))
    trained_on = _PUBLISHED.get(size_name, (None, None))[0] if training is None else None
    size_description = f"The published {size_name} ELMo weights were trained on {trained_on}." if trained_on else None
    template_kwargs: dict[str, Any] = dict(
        model_name=model_name or (f"ELMo ({size_name})" if size_name != "custom" else "ELMo"),
        size_name=size_name,
        size_description=size_description,
        **_snippet_target(repo_id_or_path, revision),
        source=None if source is None else {"weights_sha256": None, "vocab": None, **source},
        training=training,
        training_section=_training_section(training) if training else None,
        **_versions(),
        num_parameters=num_parameters,
        verified_max_abs_diff=None if verified_max_abs_diff is None else f"{verified_max_abs_diff:.2g}",
        char_cnn_filters=config.char_cnn_filters,
        n_filters=config.n_filters,
        activation=config.activation,
        char_embedding_dim=config.char_embedding_dim,
        max_characters_per_token=config.max_characters_per_token,
        n_highway=config.n_highway,
        n_layers=config.n_layers,
        lstm_dim=config.lstm_dim,
        projection_dim=config.projection_dim,
        hidden_size=config.hidden_size,
        cell_clip=config.cell_clip if config.cell_clip else "none",
        proj_clip=config.proj_clip if config.proj_clip else "none",
        use_skip_connections="yes" if config.use_skip_connections else "no",
        vocab_size=config.vocab_size,
    )
    card_data = elmo_card_data(size_name, datasets=training.datasets if training else None)
    return _from_template(ELMO_TEMPLATE, card_data, template_kwargs)


def _from_template(template: str, card_data: ModelCardData, template_kwargs: dict[str, Any]) -> ModelCard:
    with _template_path(template) as path:
        return ModelCard.from_template(card_data, template_path=str(path), **template_kwargs)


def awd_lstm_card_data(kind: str, license: str = "apache-2.0", language: str | None = "en",
                       base_model: str | None = None, datasets: list[str] | None = None) -> ModelCardData:
    """The Hub metadata of an AWD-LSTM card: library, license, language, tags, the pipeline (text generation for a
    language model, text classification for a classifier), the model it was fine-tuned from and the Hub datasets it
    was trained on, when known."""
    if kind not in AWD_LSTM_KINDS:
        raise ValueError(f"kind must be one of {AWD_LSTM_KINDS}, got {kind!r}")
    pipeline = "text-generation" if kind == "language-model" else "text-classification"
    tags = ["awd-lstm", "ulmfit", "fastai", "lstm", "hf-elmo", pipeline]
    return ModelCardData(
        library_name="transformers",
        license=license,
        language=language,
        tags=tags,
        pipeline_tag=pipeline,
        base_model=base_model,
        datasets=datasets,
    )


def render_awd_lstm_card(
    config: AWDLSTMConfig,
    repo_id_or_path: str | os.PathLike,
    source: dict[str, Any] | None,
    kind: str,
    *,
    model_name: str | None = None,
    revision: str | None = None,
    num_parameters: int | None = None,
    verified_max_abs_diff: float | None = None,
    base_model: str | None = None,
    license: str = "apache-2.0",
    language: str | None = "en",
    notes: list[str] | None = None,
    training: TrainingReport | None = None,
    example_texts: list[str] | None = None,
) -> ModelCard:
    """Renders the card of an AWD-LSTM (ULMFiT) checkpoint: a converted fastai one (``source``) or one trained by
    hf-elmo's ULMFiT recipe (``training``).

    Args:
        config: the checkpoint's configuration (its sizes fill the architecture table).
        repo_id_or_path: what the usage snippet loads: the Hub repository id, or the local folder.
        source: a conversion's original files: ``weights``, ``vocab`` (names), ``format`` (e.g. "fastai v2
            Learner.save"), optionally ``weights_sha256``; None for a trained model.
        kind: ``"language-model"`` or ``"classifier"``.
        model_name: the card's title (default: "AWD-LSTM language model (ULMFiT)" / "ULMFiT text classifier").
        revision: the branch the usage snippet should load, when not the default one.
        num_parameters: shown in the architecture table when given.
        verified_max_abs_diff: the difference measured when the saved folder was reloaded, shown in the parity section.
        base_model: the Hub id of the model it was fine-tuned from (a converted checkpoint: only a classifier's).
        license, language: card metadata.
        notes: sentences added to the conversion section.
        training: how a model trained here was trained and what it measured (instead of ``source``).
        example_texts: texts of the model's domain for the usage snippet (a classifier's inputs; a language model's
            prompt is the first); default: two film reviews / "The meaning of life is".
    """
    if kind not in AWD_LSTM_KINDS:
        raise ValueError(f"render_awd_lstm_card: unknown kind {kind!r}; one of {AWD_LSTM_KINDS}")
    _source_or_training("render_awd_lstm_card", source, training, ("weights", "vocab", "format"))
    if base_model and kind != "classifier" and training is None:
        raise ValueError("render_awd_lstm_card: base_model only applies to a classifier")
    is_classifier = kind == "classifier"
    if example_texts is None:
        example_texts = (["This movie was a complete waste of time.",
                          "A wonderful, moving film. I loved every minute of it!"] if is_classifier
                         else ["The meaning of life is"])
    sizes = [config.layer_output_size(layer) for layer in range(config.num_layers)]
    layer_sizes = " → ".join([str(config.emb_size)] + [str(n) for n in sizes])
    head_dims = [config.classifier_input_size, *config.classifier_hidden_sizes, config.num_labels]
    head_description = " → ".join(str(n) for n in head_dims) + " (BatchNorm → Dropout → Linear, ReLU between)"
    labels = _labels_text(config) if is_classifier else None
    default_name = "ULMFiT text classifier (AWD-LSTM)" if is_classifier else "AWD-LSTM language model (ULMFiT)"
    template_kwargs: dict[str, Any] = dict(
        model_name=model_name or default_name,
        is_classifier=is_classifier,
        base_model=base_model,
        auto_class="AutoModelForSequenceClassification" if is_classifier else "AutoModelForCausalLM",
        **_snippet_target(repo_id_or_path, revision),
        examples_literal=json.dumps(list(example_texts) if is_classifier else list(example_texts)[:1]),
        num_examples=len(example_texts),
        source=None if source is None else {"weights_sha256": None, **source},
        training=training,
        training_section=_training_section(training) if training else None,
        notes=list(notes or []),
        **_versions(),
        num_parameters=num_parameters,
        verified_max_abs_diff=None if verified_max_abs_diff is None else f"{verified_max_abs_diff:.2g}",
        vocab_size=config.vocab_size,
        pad_id=config.pad_token_id,
        bos_id=config.bos_token_id,
        emb_size=config.emb_size,
        num_layers=config.num_layers,
        bidirectional=config.bidirectional,
        layer_sizes=layer_sizes,
        tie_weights=config.tie_weights,
        out_bias=config.out_bias,
        bptt=config.bptt,
        max_len_text=f"{config.max_len} tokens" if config.max_len is not None else "all tokens",
        head_description=head_description,
        head_dropouts=", ".join(f"{p:g}" for p in config.head_dropouts),
        num_labels=config.num_labels,
        labels=labels,
        embed_p=f"{config.embed_p:g}",
        input_p=f"{config.input_p:g}",
        weight_p=f"{config.weight_p:g}",
        hidden_p=f"{config.hidden_p:g}",
        output_p=f"{config.output_p:g}",
        ar_alpha=f"{config.ar_alpha:g}",
        tar_beta=f"{config.tar_beta:g}",
    )
    card_data = awd_lstm_card_data(kind, license=license, language=language, base_model=base_model,
                                   datasets=training.datasets if training else None)
    return _from_template(AWD_LSTM_TEMPLATE, card_data, template_kwargs)



# --------------------------------------------------------------------------------------------------------------------
# ONNX exports (hf_elmo.onnx.export_onnx)
# --------------------------------------------------------------------------------------------------------------------
# model_type -> the card template of its ONNX exports
ONNX_TEMPLATES = {"elmo": "elmo_onnx.md", "awd_lstm": "awd_lstm_onnx.md"}
# model_type -> the family's name in card titles
_ONNX_FAMILY_NAMES = {"elmo": "ELMo", "awd_lstm": "AWD-LSTM"}

_ONNX_DESCRIPTIONS = {
    "elmo": {
        "feature-extraction": "biLM, whose layers are contextual word vectors",
        "text-classification": "text classifier",
        "token-classification": "token classifier",
        "bidirectional-lm": "bidirectional language model",
    },
    "awd_lstm": {
        "feature-extraction": "encoder, whose last layer gives contextual token vectors",
        "text-generation": "language model",
        "text-classification": "text classifier",
    },
}

_ONNX_DTYPES = {
    "float32": "float32",
    "float16": "float16 weights and activations (int64 inputs, float32 outputs)",
    "int8": "int8 weights of the matrix products (dynamic quantisation), float32 activations",
}

_ELMO_ONNX_TASKS = {
    # task: (what the model is, what its outputs are, the lines that read them: hf_elmo, plain onnxruntime)
    "feature-extraction": (
        "biLM",
        "`last_hidden_state` is the learned scalar mix of the layers and `hidden_states.{{i}}` is layer i (0: the "
        "context-free token layer, then one [forward; backward] output per biLSTM layer), each `(batch, words, "
        "{hidden_size})`.",
        "outputs.last_hidden_state  # (batch, words + 2, {hidden_size}): the scalar mix\n"
        "outputs.hidden_states      # {n_layers_1} layers, each (batch, words + 2, {hidden_size})",
        "mixed = outputs[\"last_hidden_state\"]  # (batch, words + 2, {hidden_size})\n"
        "layers = np.stack([outputs[f\"hidden_states.{{i}}\"] for i in range({n_layers_1})])",
    ),
    "text-classification": (
        "text classifier",
        "`logits` `(batch, {num_labels})` are the classifier's scores (a scalar mix of the biLM's layers, averaged "
        "over the real words, then a linear layer).",
        "predicted = outputs.logits.argmax(-1)  # (batch,)",
        "predicted = outputs[\"logits\"].argmax(-1)  # (batch,)",
    ),
    "token-classification": (
        "token classifier",
        "`logits` `(batch, words, {num_labels})` are the scores of every word (a scalar mix of the biLM's layers, "
        "then a linear layer).",
        "predicted = outputs.logits.argmax(-1)  # (batch, words + 2); the <S>/</S> positions carry no label",
        "predicted = outputs[\"logits\"].argmax(-1)  # (batch, words + 2)",
    ),
    "bidirectional-lm": (
        "bidirectional language model",
        "`logits` `(batch, words, 2, {vocab_size})`: `[..., 0, :]` is the forward LM's prediction of the next word, "
        "`[..., 1, :]` the backward LM's prediction of the previous word, over the {vocab_size}-word vocabulary.",
        "next_word = outputs.logits[:, :, 0].argmax(-1)      # forward LM\n"
        "previous_word = outputs.logits[:, :, 1].argmax(-1)  # backward LM",
        "next_word = outputs[\"logits\"][:, :, 0].argmax(-1)\nprevious_word = outputs[\"logits\"][:, :, 1].argmax(-1)",
    ),
}


_AWD_LSTM_ONNX_TASKS = {
    # task: (what the model is, what its outputs are, the lines that read them: hf_elmo, plain onnxruntime)
    "feature-extraction": (
        "encoder",
        "`last_hidden_state` `(batch, tokens, {emb_size})` is the last LSTM layer's output at every token (zeros at "
        "padding).",
        "outputs.last_hidden_state  # (batch, tokens, {emb_size})",
        "vectors = outputs[\"last_hidden_state\"]  # (batch, tokens, {emb_size})",
    ),
    "text-generation": (
        "language model",
        "`logits` `(batch, tokens, {vocab_size})` are the scores of the token that follows each position, over the "
        "{vocab_size}-token vocabulary.",
        "next_token = outputs.logits[0, -1].argmax(-1)  # the token after the first (longest) text",
        "next_token = outputs[\"logits\"][0, -1].argmax(-1)  # the token after the first (longest) text",
    ),
    "text-classification": (
        "text classifier",
        "`logits` `(batch, {num_labels})` are the classifier's scores (ULMFiT's head on the pooled encoder outputs).",
        "predicted = outputs.logits.argmax(-1)  # (batch,)",
        "predicted = outputs[\"logits\"].argmax(-1)  # (batch,)",
    ),
}
_ONNX_TASKS = {"elmo": _ELMO_ONNX_TASKS, "awd_lstm": _AWD_LSTM_ONNX_TASKS}


def _onnx_architecture(config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the sizes the task texts are formatted with, the architecture fields of the family's template)."""
    if config.model_type == "elmo":
        dims = dict(hidden_size=config.hidden_size, n_layers_1=config.n_layers + 1,
                    num_labels=getattr(config, "num_labels", None), vocab_size=getattr(config, "vocab_size", None))
        return dims, dict(n_layers=config.n_layers, lstm_dim=config.lstm_dim, projection_dim=config.projection_dim,
                          hidden_size=config.hidden_size, max_characters_per_token=config.max_characters_per_token)
    dims = dict(emb_size=config.emb_size, num_labels=config.num_labels, vocab_size=config.vocab_size)
    sizes = [config.layer_output_size(layer) for layer in range(config.num_layers)]
    return dims, dict(
        vocab_size=config.vocab_size, emb_size=config.emb_size, num_layers=config.num_layers,
        bidirectional=config.bidirectional, layer_sizes=" → ".join(str(n) for n in [config.emb_size, *sizes]),
        bptt=config.bptt, max_len_text=f"{config.max_len} tokens" if config.max_len is not None else "all tokens",
    )


def onnx_card_data(onnx_info: dict[str, Any], pipeline_tag: str | None, model_type: str = "elmo",
                   base_model: str | None = None, license: str = "apache-2.0",
                   language: str | None = "en") -> ModelCardData:
    """The Hub metadata of an ONNX export's card: library ``onnx``, the task's pipeline, onnx/dtype tags."""
    task, dtype = onnx_info["task"], onnx_info.get("dtype", "float32")
    tags = ["onnx", "onnxruntime", model_type, "hf-elmo", task]
    tags += {"elmo": ["bilm", "character-level"], "awd_lstm": ["awd-lstm", "ulmfit", "lstm"]}.get(model_type, [])
    tags += {"float16": ["fp16"], "int8": ["int8", "quantized"]}.get(dtype, [])
    return ModelCardData(
        library_name="onnx",
        license=license,
        language=language,
        tags=tags,
        pipeline_tag=pipeline_tag,
        base_model=base_model,
    )


def render_onnx_card(
    config: Any,
    onnx_info: dict[str, Any],
    repo_id_or_path: str | os.PathLike,
    *,
    model_name: str | None = None,
    revision: str | None = None,
    base_model: str | None = None,
    num_parameters: int | None = None,
    pipeline_tag: str | None = None,
    license: str = "apache-2.0",
    language: str | None = "en",
) -> ModelCard:
    """Renders the card of an ONNX export (a folder written by ``hf_elmo.onnx.export_onnx``).

    Args:
        config: the exported model's configuration.
        onnx_info: the ``onnx`` section export_onnx writes into config.json (task, file, dtype, inputs, outputs, ...).
        repo_id_or_path: what the usage snippets load: the Hub repository id, or the local folder.
        model_name: the card's title (default: "ELMo <what> (ONNX[, dtype])", "AWD-LSTM <what> (ONNX...)").
        revision: the branch the snippets should load, when not the default one.
        base_model: the Hub id of the PyTorch model it was exported from (metadata and a link).
        num_parameters: shown when given.
        pipeline_tag: the Hub pipeline of the task (None: none).
    """
    model_type = getattr(config, "model_type", None)
    if model_type not in ONNX_TEMPLATES:
        raise ValueError(f"render_onnx_card: no ONNX card template for model type {model_type!r}")
    task = onnx_info["task"]
    tasks = _ONNX_TASKS[model_type]
    if task not in tasks:
        raise ValueError(f"render_onnx_card: unknown task {task!r} for {model_type!r}; one of {list(tasks)}")
    dtype = onnx_info.get("dtype", "float32")
    target = str(repo_id_or_path)
    is_repo = not os.path.exists(target) and not os.path.isabs(target) and target.count("/") <= 1
    what, outputs_text, hf_elmo_lines, ort_lines = tasks[task]
    dims, architecture = _onnx_architecture(config)
    labels = _labels_text(config) if task in ("text-classification", "token-classification") else None
    validation = dict(onnx_info.get("validation") or {})
    for key in ("float32_max_abs_diff", "max_abs_diff"):
        validation[key + "_text"] = f"{validation[key]:.2g}" if validation.get(key) is not None else "not measured"
    cos = validation.get("min_cosine_similarity")
    validation["min_cosine_similarity_text"] = f"{cos:.6f}" if cos is not None else "not measured"
    optimization = onnx_info.get("optimization")
    suffix = "" if dtype == "float32" else f", {dtype}"
    template_kwargs: dict[str, Any] = dict(
        model_name=model_name or f"{_ONNX_FAMILY_NAMES[model_type]} {what} (ONNX{suffix})",
        model_description=_ONNX_DESCRIPTIONS[model_type][task],
        base_model=base_model,
        task=task,
        model_class=onnx_info.get("model_class", "?"),
        file_name=onnx_info.get("file_name", "model.onnx"),
        external_data_file=onnx_info.get("external_data_file"),
        dtype=dtype,
        dtype_description=_ONNX_DTYPES.get(dtype, dtype),
        opset=onnx_info.get("opset"),
        optimization=optimization,
        optimization_description=(
            f"ONNX Runtime \"{optimization['level']}\", for the {optimization['provider']}" if optimization
            else "none (ONNX Runtime optimises when it loads the model)"
        ),
        quantization=onnx_info.get("quantization"),
        inputs=onnx_info.get("inputs", []),
        outputs=onnx_info.get("outputs", []),
        outputs_description=outputs_text.format(**dims),
        hf_elmo_outputs=hf_elmo_lines.format(**dims),
        ort_outputs=ort_lines.format(**dims),
        **_snippet_target(repo_id_or_path, revision),
        is_repo=is_repo,
        validation=validation,
        versions={"hf_elmo": _hf_elmo_version, "torch": "?", "onnx": "?", "onnxruntime": "?",
                  **(onnx_info.get("versions") or {})},
        num_parameters=num_parameters,
        labels=labels,
        **architecture,
    )
    card_data = onnx_card_data(onnx_info, pipeline_tag, model_type=model_type, base_model=base_model,
                               license=license, language=language)
    return _from_template(ONNX_TEMPLATES[model_type], card_data, template_kwargs)
