"""The model cards of ELMo checkpoints: converted from the original files or trained by hf-elmo (``elmo.md``), and
what the card of an ELMo ONNX export needs from the family (``ONNX_CARD``, rendered by ``hf_elmo.cards.onnx``)."""

from __future__ import annotations

import os
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from ..models.elmo.configuration_elmo import ElmoConfig
from .common import (OnnxCardFamily, TrainingReport, from_template, snippet_target, source_or_training,
                     training_section, versions)

ELMO_TEMPLATE = "elmo.md"

# What is known about each published size beyond its dimensions (shown in the card and in its metadata).
PUBLISHED = {
    "small": ("the 1B Word Benchmark", ["1b-word-benchmark"]),
    "medium": ("the 1B Word Benchmark", ["1b-word-benchmark"]),
    "original": ("the 1B Word Benchmark", ["1b-word-benchmark"]),
    "original 5.5B": (
        "5.5B tokens: Wikipedia (1.9B) and the monolingual news crawl data of WMT 2008-2012 (3.6B)",
        None,
    ),
}


def elmo_card_data(size_name: str, datasets: list[str] | None = None, language: str | None = "en",
                   elmoformanylangs: bool = False) -> ModelCardData:
    """The Hub metadata of an ELMo card (library, license, tags, pipeline, language when known, and the training
    data when known: ``datasets``, else that of the published size)."""
    tags = ["elmo", "feature-extraction", "hf-elmo", "bilm", "character-level", "contextual-embeddings"]
    if elmoformanylangs:
        tags.append("elmoformanylangs")
    if size_name != "custom":
        tags.append("elmo-" + size_name.replace(" ", "-").lower())
    datasets = datasets or PUBLISHED.get(size_name, (None, None))[1]
    return ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        language=language,
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
    language: str | None = None,
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
        language: the model's language (an ISO code) when known; default English, except for an ELMoForManyLangs
            model (``config.char_vocabulary == "lexicon"``), whose card then names none.
    """
    if size_name not in (*PUBLISHED, "custom"):
        raise ValueError(f"render_elmo_card: unknown size_name {size_name!r}; one of {[*PUBLISHED, 'custom']}")
    source_or_training("render_elmo_card", source, training, ("options", "weights"))
    trained_on = PUBLISHED.get(size_name, (None, None))[0] if training is None else None
    size_description = f"The published {size_name} ELMo weights were trained on {trained_on}." if trained_on else None
    elmoformanylangs = config.char_vocabulary == "lexicon"
    language = language or (None if elmoformanylangs else "en")
    template_kwargs: dict[str, Any] = dict(
        elmoformanylangs=elmoformanylangs,
        language=language,
        word_embedding_dim=config.word_embedding_dim,
        word_vocab_size=config.word_vocab_size,
        n_characters=config.n_characters,
        model_name=model_name or (f"ELMo ({size_name})" if size_name != "custom"
                                  else "ELMoForManyLangs" + (f" ({language})" if language else "") if elmoformanylangs
                                  else "ELMo"),
        size_name=size_name,
        size_description=size_description,
        **snippet_target(repo_id_or_path, revision),
        source=None if source is None else {"weights_sha256": None, "vocab": None, **source},
        training=training,
        training_section=training_section(training) if training else None,
        **versions(),
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
    card_data = elmo_card_data(size_name, datasets=training.datasets if training else None, language=language,
                               elmoformanylangs=elmoformanylangs)
    return from_template(ELMO_TEMPLATE, card_data, template_kwargs)


# --------------------------------------------------------------------------------------------------------------------
# ONNX exports
# --------------------------------------------------------------------------------------------------------------------
ONNX_TASKS = {
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


def onnx_architecture(config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the sizes the ONNX task texts are formatted with, the architecture fields of ``elmo_onnx.md``)."""
    dims = dict(hidden_size=config.hidden_size, n_layers_1=config.n_layers + 1,
                num_labels=getattr(config, "num_labels", None), vocab_size=getattr(config, "vocab_size", None))
    return dims, dict(n_layers=config.n_layers, lstm_dim=config.lstm_dim, projection_dim=config.projection_dim,
                      hidden_size=config.hidden_size, max_characters_per_token=config.max_characters_per_token)


ONNX_CARD = OnnxCardFamily(
    name="ELMo",
    template="elmo_onnx.md",
    tags=("bilm", "character-level"),
    tasks=ONNX_TASKS,
    descriptions={
        "feature-extraction": "biLM, whose layers are contextual word vectors",
        "text-classification": "text classifier",
        "token-classification": "token classifier",
        "bidirectional-lm": "bidirectional language model",
    },
    architecture=onnx_architecture,
)
