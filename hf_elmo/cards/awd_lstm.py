"""The model cards of AWD-LSTM (ULMFiT) checkpoints: converted from fastai or trained by hf-elmo's ULMFiT recipe
(``awd_lstm.md``), and what the card of an AWD-LSTM ONNX export needs from the family (``ONNX_CARD``, rendered by
``hf_elmo.cards.onnx``)."""

from __future__ import annotations

import json
import os
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from ..models.awd_lstm.configuration_awd_lstm import AWDLSTMConfig
from .common import (OnnxCardFamily, TrainingReport, from_template, labels_text, snippet_target, source_or_training,
                     training_section, versions)

AWD_LSTM_TEMPLATE = "awd_lstm.md"
AWD_LSTM_KINDS = ("language-model", "classifier")


def layer_sizes_text(config: AWDLSTMConfig) -> str:
    """``"400 → 1152 → 1152 → 400"``: the embedding, then each LSTM layer's output size."""
    sizes = [config.layer_output_size(layer) for layer in range(config.num_layers)]
    return " → ".join(str(n) for n in [config.emb_size, *sizes])


def max_len_text(config: AWDLSTMConfig) -> str:
    """How much of a document the classifier pools: ``"1440 tokens"`` or ``"all tokens"``."""
    return f"{config.max_len} tokens" if config.max_len is not None else "all tokens"


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
    sentencepiece: bool = False,
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
        sentencepiece: the tokenizer is fastai's ``SentencePieceTokenizer`` (the rules, then a SentencePiece model;
            ``spm.model`` in the folder) rather than its default word tokenizer (the rules, then spaCy's English
            tokenizer): the card's usage and vocabulary say which.
    """
    if kind not in AWD_LSTM_KINDS:
        raise ValueError(f"render_awd_lstm_card: unknown kind {kind!r}; one of {AWD_LSTM_KINDS}")
    source_or_training("render_awd_lstm_card", source, training, ("weights", "vocab", "format"))
    if base_model and kind != "classifier" and training is None:
        raise ValueError("render_awd_lstm_card: base_model only applies to a classifier")
    is_classifier = kind == "classifier"
    if example_texts is None:
        example_texts = (["This movie was a complete waste of time.",
                          "A wonderful, moving film. I loved every minute of it!"] if is_classifier
                         else ["The meaning of life is"])
    head_dims = [config.classifier_input_size, *config.classifier_hidden_sizes, config.num_labels]
    head_description = " → ".join(str(n) for n in head_dims) + " (BatchNorm → Dropout → Linear, ReLU between)"
    labels = labels_text(config) if is_classifier else None
    default_name = "ULMFiT text classifier (AWD-LSTM)" if is_classifier else "AWD-LSTM language model (ULMFiT)"
    template_kwargs: dict[str, Any] = dict(
        model_name=model_name or default_name,
        is_classifier=is_classifier,
        base_model=base_model,
        auto_class="AutoModelForSequenceClassification" if is_classifier else "AutoModelForCausalLM",
        **snippet_target(repo_id_or_path, revision),
        examples_literal=json.dumps(list(example_texts) if is_classifier else list(example_texts)[:1]),
        num_examples=len(example_texts),
        source=None if source is None else {"weights_sha256": None, **source},
        training=training,
        training_section=training_section(training) if training else None,
        notes=list(notes or []),
        **versions(),
        num_parameters=num_parameters,
        verified_max_abs_diff=None if verified_max_abs_diff is None else f"{verified_max_abs_diff:.2g}",
        vocab_size=config.vocab_size,
        pad_id=config.pad_token_id,
        bos_id=config.bos_token_id,
        emb_size=config.emb_size,
        num_layers=config.num_layers,
        bidirectional=config.bidirectional,
        backwards=getattr(config, "backwards", False),
        sentencepiece=sentencepiece,
        bos_token="▁xxbos" if sentencepiece else "xxbos",
        layer_sizes=layer_sizes_text(config),
        tie_weights=config.tie_weights,
        out_bias=config.out_bias,
        bptt=config.bptt,
        max_len_text=max_len_text(config),
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
    return from_template(AWD_LSTM_TEMPLATE, card_data, template_kwargs)


# --------------------------------------------------------------------------------------------------------------------
# ONNX exports
# --------------------------------------------------------------------------------------------------------------------
ONNX_TASKS = {
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


def onnx_architecture(config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the sizes the ONNX task texts are formatted with, the architecture fields of ``awd_lstm_onnx.md``)."""
    dims = dict(emb_size=config.emb_size, num_labels=config.num_labels, vocab_size=config.vocab_size)
    return dims, dict(
        vocab_size=config.vocab_size, emb_size=config.emb_size, num_layers=config.num_layers,
        bidirectional=config.bidirectional, layer_sizes=layer_sizes_text(config), bptt=config.bptt,
        max_len_text=max_len_text(config),
    )


ONNX_CARD = OnnxCardFamily(
    name="AWD-LSTM",
    template="awd_lstm_onnx.md",
    tags=("awd-lstm", "ulmfit", "lstm"),
    tasks=ONNX_TASKS,
    descriptions={
        "feature-extraction": "encoder, whose last layer gives contextual token vectors",
        "text-generation": "language model",
        "text-classification": "text classifier",
    },
    architecture=onnx_architecture,
)
