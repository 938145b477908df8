"""Model cards (README.md) for converted checkpoints, rendered from the templates in ``hf_elmo.model_cards``.

The card is built with huggingface_hub's ``ModelCard.from_template`` so that its YAML metadata is the Hub's own
(validated ``ModelCardData``) and the body is a Jinja template kept beside the package as ordinary Markdown.
The templates are located through ``importlib.resources`` so that they are found in a wheel as in a checkout.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import shlex
from typing import Any

import transformers
from huggingface_hub import ModelCard, ModelCardData

from . import __version__ as _hf_elmo_version
from .models.elmo.configuration_elmo import ElmoConfig

ELMO_TEMPLATE = "elmo.md"

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


def elmo_card_data(size_name: str) -> ModelCardData:
    """The Hub metadata of an ELMo card (library, license, tags, pipeline, and the training data when known)."""
    tags = ["elmo", "feature-extraction", "hf-elmo", "bilm", "character-level", "contextual-embeddings"]
    if size_name != "custom":
        tags.append("elmo-" + size_name.replace(" ", "-").lower())
    datasets = _PUBLISHED.get(size_name, (None, None))[1]
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
    source: dict[str, Any],
    size_name: str,
    *,
    model_name: str | None = None,
    revision: str | None = None,
    num_parameters: int | None = None,
    verified_max_abs_diff: float | None = None,
) -> ModelCard:
    """Renders the card of a converted ELMo checkpoint.

    Args:
        config: the checkpoint's configuration (its dimensions fill the architecture table).
        repo_id_or_path: what the usage snippet loads: the Hub repository id, or the local folder.
        source: the original files: ``options``, ``weights`` (names), optionally ``weights_sha256`` and ``vocab``.
        size_name: ``"small"``, ``"medium"``, ``"original"``, ``"original 5.5B"`` or ``"custom"``.
        model_name: the card's title (default: "ELMo (<size>)").
        revision: the branch the usage snippet should load, when not the default one.
        num_parameters: shown in the architecture table when given.
        verified_max_abs_diff: the difference measured when the saved folder was reloaded, shown in the parity section.
    """
    if size_name not in (*_PUBLISHED, "custom"):
        raise ValueError(f"render_elmo_card: unknown size_name {size_name!r}; one of {[*_PUBLISHED, 'custom']}")
    missing = [key for key in ("options", "weights") if not source.get(key)]
    if missing:
        raise ValueError(f"render_elmo_card: source is missing {missing} (the original files' names)")
    target = str(repo_id_or_path)
    trained_on = _PUBLISHED.get(size_name, (None, None))[0]
    size_description = f"The published {size_name} ELMo weights were trained on {trained_on}." if trained_on else None
    template_kwargs: dict[str, Any] = dict(
        model_name=model_name or (f"ELMo ({size_name})" if size_name != "custom" else "ELMo"),
        size_name=size_name,
        size_description=size_description,
        checkpoint_literal=json.dumps(target),  # a valid Python string literal too
        checkpoint_shell=shlex.quote(target),
        revision_argument=f", revision={revision!r}" if revision else "",
        source={"weights_sha256": None, "vocab": None, **source},
        hf_elmo_version=_hf_elmo_version,
        transformers_version=transformers.__version__,
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
    with importlib.resources.as_file(importlib.resources.files("hf_elmo.model_cards").joinpath(ELMO_TEMPLATE)) as path:
        if not path.is_file():
            raise FileNotFoundError(f"model card template {ELMO_TEMPLATE!r} not found in hf_elmo.model_cards ({path})")
        return ModelCard.from_template(elmo_card_data(size_name), template_path=str(path), **template_kwargs)

