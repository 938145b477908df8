"""Configuration of ELMo, the character-level biLSTM language model of Peters et al. (2018).

Every field of the original ``options.json`` (bilm-tf / AllenNLP) has a flat counterpart here, so that a published
checkpoint converts without loss and ``ElmoConfig.from_options_json`` can read the original file directly.
"""

from __future__ import annotations

import json
import os
from typing import Any

from transformers import PretrainedConfig

_DEFAULT_FILTERS = [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]]

# Every Auto class a saved ELMo folder can be loaded with as remote code (``trust_remote_code=True``). When a model is
# saved, ``save_pretrained`` records only the saved class's own Auto class (and copies the code of all of them); the
# others are added here, so that e.g. a saved biLM loads with ``AutoModelForTokenClassification`` for fine-tuning in
# a process where hf_elmo is not installed. ``AutoModelForPreTraining`` (the LM head) needs a word vocabulary.
REMOTE_CODE_AUTO_MAP = {
    "AutoConfig": "configuration_elmo.ElmoConfig",
    "AutoModel": "modeling_elmo.ElmoModel",
    "AutoModelForPreTraining": "modeling_elmo.ElmoForLanguageModeling",
    "AutoModelForSequenceClassification": "modeling_elmo.ElmoForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_elmo.ElmoForTokenClassification",
}


class ElmoConfig(PretrainedConfig):
    """Configuration for [`ElmoModel`] and its heads.

    The defaults are the published "original" ELMo (2x4096_512_2048cnn_2xhighway).

    Args:
        char_cnn_filters: ``[[width, n_filters], ...]`` of the character CNN.
        n_highway: number of highway layers after the CNN.
        char_embedding_dim: size of the character embeddings.
        n_characters: rows of the character embedding (262: 261 stored + the all-zero padding row).
        max_characters_per_token: characters per word, boundaries and padding included (50).
        activation: activation after the max-pooled convolution, ``"relu"`` or ``"tanh"``.
        lstm_dim: LSTM cell size.
        projection_dim: size of the LSTM projection, of the token representation and of each direction's output.
        n_layers: number of biLSTM layers.
        cell_clip: clip value of the LSTM cell state (``None`` or 0 for none).
        proj_clip: clip value of the projected hidden state (``None`` or 0 for none).
        use_skip_connections: add each layer's input to its output for layers after the first.
        num_output_representations: number of learned scalar mixes (``last_hidden_state`` is the first).
        do_layer_norm: layer-normalise each layer (over real tokens) before mixing.
        scalar_mix_parameters: fixed pre-softmax mixing weights; ``None`` learns them (initialised uniform).
        dropout: dropout on the mixed representation, used by the task heads.
        vocab_size: size of the word vocabulary of the language-model head (0 when there is none).
        sampled_softmax_num_samples: negative samples for the sampled softmax of the LM head in training (0: full).
        classifier_dropout: dropout before the classification head (defaults to ``dropout``).
    """

    model_type = "elmo"

    def __init__(
        self,
        char_cnn_filters: list[list[int]] | None = None,
        n_highway: int = 2,
        char_embedding_dim: int = 16,
        n_characters: int = 262,
        max_characters_per_token: int = 50,
        activation: str = "relu",
        lstm_dim: int = 4096,
        projection_dim: int = 512,
        n_layers: int = 2,
        cell_clip: float | None = 3.0,
        proj_clip: float | None = 3.0,
        use_skip_connections: bool = True,
        num_output_representations: int = 1,
        do_layer_norm: bool = False,
        scalar_mix_parameters: list[float] | None = None,
        dropout: float = 0.5,
        vocab_size: int = 0,
        sampled_softmax_num_samples: int = 0,
        classifier_dropout: float | None = None,
        initializer_range: float = 0.02,
        **kwargs: Any,
    ) -> None:
        def as_int(name: str, value: Any) -> int:
            try:
                return int(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be an integer, got {value!r}") from None

        n_highway, char_embedding_dim, n_characters = (
            as_int("n_highway", n_highway), as_int("char_embedding_dim", char_embedding_dim),
            as_int("n_characters", n_characters))
        max_characters_per_token = as_int("max_characters_per_token", max_characters_per_token)
        lstm_dim, projection_dim, n_layers = (
            as_int("lstm_dim", lstm_dim), as_int("projection_dim", projection_dim), as_int("n_layers", n_layers))
        num_output_representations = as_int("num_output_representations", num_output_representations)
        try:
            filters = [list(map(int, f)) for f in (char_cnn_filters or _DEFAULT_FILTERS)]
        except (TypeError, ValueError):
            raise ValueError(
                f"char_cnn_filters must be [[width, n_filters], ...] with positive values, got {char_cnn_filters!r}"
            ) from None
        if any(len(f) != 2 or f[0] < 1 or f[1] < 1 for f in filters):
            raise ValueError(f"char_cnn_filters must be [[width, n_filters], ...] with positive values, got {filters}")
        if max(f[0] for f in filters) > max_characters_per_token:
            raise ValueError(
                f"a char CNN filter of width {max(f[0] for f in filters)} does not fit in "
                f"max_characters_per_token={max_characters_per_token}"
            )
        if activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
        if n_layers < 1 or lstm_dim < 1 or projection_dim < 1:
            raise ValueError("n_layers, lstm_dim and projection_dim must be positive")
        if num_output_representations < 1:
            raise ValueError("num_output_representations must be at least 1")
        if scalar_mix_parameters is not None and len(scalar_mix_parameters) != n_layers + 1:
            raise ValueError(
                f"scalar_mix_parameters needs n_layers + 1 = {n_layers + 1} values, got {len(scalar_mix_parameters)}"
            )
        self.char_cnn_filters = filters
        self.n_highway = int(n_highway)
        self.char_embedding_dim = int(char_embedding_dim)
        self.n_characters = int(n_characters)
        self.max_characters_per_token = int(max_characters_per_token)
        self.activation = activation
        self.lstm_dim = int(lstm_dim)
        self.projection_dim = int(projection_dim)
        self.n_layers = int(n_layers)
        self.cell_clip = float(cell_clip) if cell_clip else None
        self.proj_clip = float(proj_clip) if proj_clip else None
        self.use_skip_connections = bool(use_skip_connections)
        self.num_output_representations = int(num_output_representations)
        self.do_layer_norm = bool(do_layer_norm)
        self.scalar_mix_parameters = scalar_mix_parameters
        self.dropout = float(dropout)
        self.vocab_size = int(vocab_size)
        self.sampled_softmax_num_samples = int(sampled_softmax_num_samples)
        self.classifier_dropout = classifier_dropout
        self.initializer_range = initializer_range
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    @property
    def n_filters(self) -> int:
        """Channels out of the character CNN (the highway width)."""
        return sum(n for _, n in self.char_cnn_filters)

    @property
    def hidden_size(self) -> int:
        """Size of every output representation: forward and backward concatenated."""
        return 2 * self.projection_dim

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layers

    def to_dict(self) -> dict[str, Any]:
        """As ``PretrainedConfig.to_dict``; once an ``auto_map`` is set (``save_pretrained`` of a model or config
        registered for remote code sets it), it is completed with every ELMo Auto class (``REMOTE_CODE_AUTO_MAP``)."""
        output = super().to_dict()
        if output.get("auto_map"):
            defaults = {
                name: ref
                for name, ref in REMOTE_CODE_AUTO_MAP.items()
                if name != "AutoModelForPreTraining" or self.vocab_size > 0
            }
            output["auto_map"] = {**defaults, **output["auto_map"]}
        return output

    @classmethod
    def from_options_json(cls, path: str | os.PathLike, **kwargs: Any) -> "ElmoConfig":
        """Reads the original bilm-tf/AllenNLP ``options.json``; ``kwargs`` override or add fields."""
        try:
            with open(path, encoding="utf-8") as f:
                options = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"ELMo options file not found: {path}") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from None
        return cls.from_options_dict(options, source=str(path), **kwargs)

    @classmethod
    def from_options_dict(cls, options: dict, source: str = "options", **kwargs: Any) -> "ElmoConfig":
        """Builds the config from the parsed ``options.json`` dictionary (see ``from_options_json``)."""

        def need(section: dict, key: str, where: str) -> Any:
            if not isinstance(section, dict) or key not in section:
                raise ValueError(f"{source}: missing '{where}{key}'")
            return section[key]

        def need_section(section: dict, key: str, where: str) -> dict:
            value = need(section, key, where)
            if not isinstance(value, dict):
                raise ValueError(f"{source}: '{where}{key}' must be an object, got {type(value).__name__}")
            return value

        char_cnn = need_section(options, "char_cnn", "")
        lstm = need_section(options, "lstm", "")
        fields = dict(
            char_cnn_filters=need(char_cnn, "filters", "char_cnn."),
            n_highway=need(char_cnn, "n_highway", "char_cnn."),
            char_embedding_dim=need(need_section(char_cnn, "embedding", "char_cnn."), "dim", "char_cnn.embedding."),
            n_characters=char_cnn.get("n_characters", 262),
            max_characters_per_token=char_cnn.get("max_characters_per_token", 50),
            activation=char_cnn.get("activation", "relu"),
            # bilm-tf writes "dim"; "lstm_dim" is accepted as an alias
            lstm_dim=lstm["lstm_dim"] if "dim" not in lstm and "lstm_dim" in lstm else need(lstm, "dim", "lstm."),
            projection_dim=need(lstm, "projection_dim", "lstm."),
            n_layers=need(lstm, "n_layers", "lstm."),
            cell_clip=lstm.get("cell_clip"),
            proj_clip=lstm.get("proj_clip"),
            use_skip_connections=lstm.get("use_skip_connections", False),
        )
        if "n_tokens_vocab" in options and "vocab_size" not in kwargs:
            fields["vocab_size"] = 0  # the published files hold no softmax; the LM head is sized by --vocab
        fields.update(kwargs)
        try:
            return cls(**fields)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: invalid ELMo options: {e}") from e

    def to_options_dict(self) -> dict:
        """The original ``options.json`` layout of this configuration."""
        return {
            "char_cnn": {
                "activation": self.activation,
                "embedding": {"dim": self.char_embedding_dim},
                "filters": self.char_cnn_filters,
                "max_characters_per_token": self.max_characters_per_token,
                "n_characters": self.n_characters,
                "n_highway": self.n_highway,
            },
            "lstm": {
                "cell_clip": self.cell_clip,
                "dim": self.lstm_dim,
                "n_layers": self.n_layers,
                "proj_clip": self.proj_clip,
                "projection_dim": self.projection_dim,
                "use_skip_connections": self.use_skip_connections,
            },
        }
