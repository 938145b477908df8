"""Configuration of ELMo, the character-level biLSTM language model of Peters et al. (2018).

Every field of the original ``options.json`` (bilm-tf / AllenNLP) has a flat counterpart here, so that a published
checkpoint converts without loss and ``ElmoConfig.from_options_json`` can read the original file directly.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from typing import Any

from transformers import PretrainedConfig

_DEFAULT_FILTERS = [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]]
# The character ids reach 261 (PAD 260, +1 for the all-zero "no word" row): the embedding needs 262 rows at least.
MIN_CHARACTERS = 262
# Caps on sizes read from config.json / options.json, far above any published ELMo (2 layers, 2 highway, 4096 cells,
# 2048 filters, 93.6M parameters; ELMoForManyLangs' word vocabularies < 1M) and checked before anything is built, so
# that an absurd value (n_layers 1e6, a filter of 1e7 channels) fails with its name instead of a MemoryError.
MAX_LAYERS = 64
MAX_DIM = 1 << 20
MAX_FILTERS = 256
MAX_VOCAB = 1 << 24
MAX_PARAMETERS = 1 << 32  # 17 GB of float32


def checked_int(name: str, value: Any, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an integer field: an int (not a bool, a float such as 64.7 or 64.0, or a string, which would be
    truncated or coerced into another size than the file's), in [``minimum``, ``maximum``]; ValueError naming
    ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be {'positive' if minimum == 1 else f'at least {minimum}'}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
    return value


def checked_float(name: str, value: Any, minimum: float | None = None, below: float | None = None) -> float:
    """``value`` as a real-valued field: a finite int or float (not a bool or a string), at least ``minimum`` and
    below ``below`` when given; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if (minimum is not None and value < minimum) or (below is not None and not value < below):
        shown = f"[{minimum}, {below})" if below is not None else f"at least {minimum}"
        raise ValueError(f"{name} must be {'in ' if below is not None else ''}{shown}, got {value}")
    return value


def checked_bool(name: str, value: Any) -> bool:
    """``value`` as a flag: ``true`` or ``false`` only (the string "false" is truthy: bool() would turn it on)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


# A clip is applied to float32 (or lower) values: one beyond float32's range cannot be (torch refuses to convert it).
MAX_CLIP = 3.0e38


def _checked_clip(name: str, value: Any) -> float | None:
    """A clip value: None or 0 for none, else a positive finite number within float32's range (a negative clip
    would invert the cell)."""
    if value is None:
        return None
    clip = checked_float(name, value, 0.0)
    if clip > MAX_CLIP:
        raise ValueError(f"{name} must be at most {MAX_CLIP:g} (float32's range), got {clip:g}")
    return clip or None


def _checked_filters(filters: Any) -> list[list[int]]:
    shown = f"char_cnn_filters must be [[width, n_filters], ...] with positive integers, got {filters!r}"
    if not isinstance(filters, (list, tuple)) or not filters or len(filters) > MAX_FILTERS:
        raise ValueError(shown if len(shown) < 300 else shown[:300] + "...")
    checked = []
    for i, f in enumerate(filters):
        if not isinstance(f, (list, tuple)) or len(f) != 2:
            raise ValueError(f"char_cnn_filters must be [[width, n_filters], ...], entry {i} is {f!r}")
        checked.append([checked_int(f"char_cnn_filters[{i}][0] (width)", f[0], 1, MAX_DIM),
                        checked_int(f"char_cnn_filters[{i}][1] (n_filters)", f[1], 1, MAX_DIM)])
    return checked

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


# config field → where options.json holds it, for messages about a bad options.json
OPTION_NAMES = {
    "char_cnn_filters": "char_cnn.filters", "n_highway": "char_cnn.n_highway",
    "char_embedding_dim": "char_cnn.embedding.dim", "n_characters": "char_cnn.n_characters",
    "max_characters_per_token": "char_cnn.max_characters_per_token", "activation": "char_cnn.activation",
    "lstm_dim": "lstm.dim", "projection_dim": "lstm.projection_dim", "n_layers": "lstm.n_layers",
    "cell_clip": "lstm.cell_clip", "proj_clip": "lstm.proj_clip", "use_skip_connections": "lstm.use_skip_connections",
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
        char_vocabulary: what the character ids are: ``"utf8"``, bilm-tf's UTF-8 bytes and markers (at least 262
            rows; row 0 is the all-zero "no word" row, never trained), or ``"lexicon"``, the ids of a model's own
            character lexicon (ELMoForManyLangs' ``char.dic``: any size, every row trained, the padding one too).
        char_padding_id: the character id that fills the row of a padding position, and the character embedding's
            ``padding_idx`` (0 for ``"utf8"``; the lexicon's ``<pad>`` for ``"lexicon"``).
        word_embedding_dim: size of a word embedding concatenated before the character CNN's output, ahead of the
            projection (ELMoForManyLangs' ``word_dim``); 0 for none (bilm-tf). The model then reads word ids beside
            the character ids (``token_ids``).
        word_vocab_size: rows of that word embedding (the word lexicon's size).
        word_padding_id: the word embedding's ``padding_idx`` (the lexicon's ``<pad>``), or None.
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
        char_vocabulary: str = "utf8",
        char_padding_id: int = 0,
        word_embedding_dim: int = 0,
        word_vocab_size: int = 0,
        word_padding_id: int | None = None,
        **kwargs: Any,
    ) -> None:
        # Every field is checked strictly (an int is an int, a flag a bool, sizes positive): a config.json or
        # options.json that says "false" or 64.7 would otherwise build another model than the weights' (True, 64),
        # and sizes are capped so that an absurd one fails here, with its name, instead of as a MemoryError.
        n_highway = checked_int("n_highway", n_highway, 0, MAX_LAYERS)
        char_embedding_dim = checked_int("char_embedding_dim", char_embedding_dim, 1, MAX_DIM)
        if char_vocabulary not in ("utf8", "lexicon"):
            raise ValueError(f"char_vocabulary must be 'utf8' or 'lexicon', got {char_vocabulary!r}")
        # bilm-tf's ids reach 261 whatever the text: fewer rows could not read them; a lexicon's ids are its own
        n_characters = checked_int("n_characters", n_characters, MIN_CHARACTERS if char_vocabulary == "utf8" else 1,
                                   MAX_DIM)
        char_padding_id = checked_int("char_padding_id", char_padding_id, 0, n_characters - 1)
        if char_vocabulary == "utf8" and char_padding_id != 0:
            raise ValueError(f"char_padding_id must be 0 with char_vocabulary 'utf8' (the all-zero row of a padding "
                             f"position), got {char_padding_id}")
        word_embedding_dim = checked_int("word_embedding_dim", word_embedding_dim, 0, MAX_DIM)
        word_vocab_size = checked_int("word_vocab_size", word_vocab_size, 1 if word_embedding_dim else 0, MAX_VOCAB)
        if word_padding_id is not None:
            word_padding_id = checked_int("word_padding_id", word_padding_id, 0, max(word_vocab_size - 1, 0))
        max_characters_per_token = checked_int("max_characters_per_token", max_characters_per_token, 3, MAX_DIM)
        lstm_dim = checked_int("lstm_dim", lstm_dim, 1, MAX_DIM)
        projection_dim = checked_int("projection_dim", projection_dim, 1, MAX_DIM)
        n_layers = checked_int("n_layers", n_layers, 1, MAX_LAYERS)
        num_output_representations = checked_int("num_output_representations", num_output_representations, 1,
                                                 MAX_LAYERS)
        filters = _checked_filters(_DEFAULT_FILTERS if char_cnn_filters is None else char_cnn_filters)
        if max(f[0] for f in filters) > max_characters_per_token:
            raise ValueError(
                f"char_cnn_filters: a filter of width {max(f[0] for f in filters)} does not fit in "
                f"max_characters_per_token={max_characters_per_token}"
            )
        if activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
        if scalar_mix_parameters is not None:
            if not isinstance(scalar_mix_parameters, (list, tuple)) or len(scalar_mix_parameters) != n_layers + 1:
                raise ValueError(f"scalar_mix_parameters needs n_layers + 1 = {n_layers + 1} values, got "
                                 f"{scalar_mix_parameters!r}")
            scalar_mix_parameters = [checked_float("scalar_mix_parameters[]", v) for v in scalar_mix_parameters]
        self.char_cnn_filters = filters
        self.n_highway = n_highway
        self.char_embedding_dim = char_embedding_dim
        self.n_characters = n_characters
        self.char_vocabulary = char_vocabulary
        self.char_padding_id = char_padding_id
        self.word_embedding_dim = word_embedding_dim
        self.word_vocab_size = word_vocab_size
        self.word_padding_id = word_padding_id
        self.max_characters_per_token = max_characters_per_token
        self.activation = activation
        self.lstm_dim = lstm_dim
        self.projection_dim = projection_dim
        self.n_layers = n_layers
        self.cell_clip = _checked_clip("cell_clip", cell_clip)
        self.proj_clip = _checked_clip("proj_clip", proj_clip)
        self.use_skip_connections = checked_bool("use_skip_connections", use_skip_connections)
        self.num_output_representations = num_output_representations
        self.do_layer_norm = checked_bool("do_layer_norm", do_layer_norm)
        self.scalar_mix_parameters = scalar_mix_parameters
        self.dropout = checked_float("dropout", dropout, 0.0, 1.0)
        self.vocab_size = checked_int("vocab_size", vocab_size, 0, MAX_VOCAB)
        self.sampled_softmax_num_samples = checked_int("sampled_softmax_num_samples", sampled_softmax_num_samples, 0,
                                                       MAX_VOCAB)
        self.classifier_dropout = (None if classifier_dropout is None
                                   else checked_float("classifier_dropout", classifier_dropout, 0.0, 1.0))
        n_parameters = self.estimated_num_parameters()
        if n_parameters > MAX_PARAMETERS:
            raise ValueError(f"these sizes make a model of ~{n_parameters:.3g} parameters, more than the "
                             f"{MAX_PARAMETERS:.3g} this package builds (the largest published ELMo has 93.6M): "
                             f"n_characters {n_characters}, char_cnn_filters of {self.n_filters} channels, "
                             f"lstm_dim {lstm_dim}, projection_dim {projection_dim}, n_layers {n_layers}, n_highway "
                             f"{n_highway}, vocab_size {self.vocab_size}")
        self.initializer_range = checked_float("initializer_range", initializer_range, 0.0)
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    @property
    def n_filters(self) -> int:
        """Channels out of the character CNN (the highway width)."""
        return sum(n for _, n in self.char_cnn_filters)

    @property
    def token_input_dim(self) -> int:
        """Width of the token representation before its projection: [word embedding; character CNN output]."""
        return self.word_embedding_dim + self.n_filters

    @property
    def has_token_projection(self) -> bool:
        """Whether the token representation is projected to ``projection_dim``: bilm-tf leaves the projection out
        where the widths already agree; ELMoForManyLangs (a word embedding) always has one."""
        return self.word_embedding_dim > 0 or self.token_input_dim != self.projection_dim

    def estimated_num_parameters(self) -> int:
        """The biLM's parameter count these sizes imply (character CNN, highway, projection, both directions' LSTMs)
        and the LM softmax when there is a vocabulary: what building the model would allocate."""
        emb, f, p, h = self.char_embedding_dim, self.n_filters, self.projection_dim, self.lstm_dim
        cnn = self.n_characters * emb + sum(w * emb * n + n for w, n in self.char_cnn_filters)
        highway = self.n_highway * (2 * f * f + 2 * f)
        lstm = 2 * self.n_layers * (2 * p * 4 * h + 4 * h + h * p)
        softmax = self.vocab_size * (2 * p + 1)
        words = self.word_vocab_size * self.word_embedding_dim
        return cnn + highway + words + (self.token_input_dim * p + p) + lstm + softmax

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
        except UnicodeDecodeError as e:
            raise ValueError(f"{path} is not UTF-8 text: {e}") from None
        except (ValueError, RecursionError) as e:  # bad JSON, a 5,000-digit number, 100,000 nested brackets
            raise ValueError(f"{path} is not valid JSON: {str(e)[:200]}") from None
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
            field = str(e).split(" ", 1)[0].split("[", 1)[0].rstrip(":")  # messages start with the field's name
            option = f" '{OPTION_NAMES[field]}'" if field in OPTION_NAMES and field not in kwargs else ""
            raise ValueError(f"{source}: invalid ELMo option{option}: {e}") from None

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
