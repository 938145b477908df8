"""Configuration of AWD-LSTM (Merity et al., 2017) as ULMFiT (Howard & Ruder, 2018) uses it, in fastai's layout.

The defaults are ULMFiT's: the language model of fastai's ``awd_lstm_lm_config`` (embedding 400, hidden 1152, 3
layers, tied weights) with its dropouts; ``AWDLSTMConfig.for_classifier()`` gives fastai's ``awd_lstm_clas_config``
dropouts and ``get_text_classifier``'s head. Every dropout can be scaled at once with ``drop_mult``, as in fastai.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from transformers import PretrainedConfig

# Every Auto class a saved AWD-LSTM folder can be loaded with as remote code (``trust_remote_code=True``).
# ``save_pretrained`` records only the saved class's own Auto class; the others are added by ``to_dict`` so that a
# saved language model also loads as a classifier (for fine-tuning) in a process where hf_elmo is not installed.
# ``AutoTokenizer`` is mapped in ``tokenizer_config.json`` (written by the tokenizer).
REMOTE_CODE_AUTO_MAP = {
    "AutoConfig": "configuration_awd_lstm.AWDLSTMConfig",
    "AutoModel": "modeling_awd_lstm.AWDLSTMModel",
    "AutoModelForCausalLM": "modeling_awd_lstm.AWDLSTMForLanguageModeling",
    "AutoModelForSequenceClassification": "modeling_awd_lstm.AWDLSTMForSequenceClassification",
}

# the same for ULMFiT's forward + backward ensemble (AWDLSTMEnsembleConfig)
ENSEMBLE_REMOTE_CODE_AUTO_MAP = {
    "AutoConfig": "configuration_awd_lstm.AWDLSTMEnsembleConfig",
    "AutoModelForSequenceClassification": "modeling_awd_lstm.AWDLSTMEnsembleForSequenceClassification",
}

# fastai's awd_lstm_lm_config dropouts (before drop_mult).
LM_DROPOUTS = {"output_p": 0.1, "hidden_p": 0.15, "input_p": 0.25, "embed_p": 0.02, "weight_p": 0.2}
# fastai's awd_lstm_clas_config dropouts (before drop_mult); output_p is the dropout of the classifier head's first
# block (the one on the pooled [last, max, mean] features).
CLASSIFIER_DROPOUTS = {"output_p": 0.4, "hidden_p": 0.3, "input_p": 0.4, "embed_p": 0.05, "weight_p": 0.5}
# get_text_classifier's default dropout of every head block after the first (not scaled by drop_mult in fastai).
HEAD_DROPOUT = 0.1


# Caps on sizes read from config.json (or a fastai file's shapes), far above any published AWD-LSTM (ULMFiT: 3 layers
# of 1152, 60,000 tokens, 24M parameters) and checked before anything is built.
MAX_LAYERS = 64
MAX_DIM = 1 << 20
MAX_VOCAB = 1 << 24
MAX_TOKENS = 1 << 30
MAX_PARAMETERS = 1 << 32  # 17 GB of float32


# Copied from hf_elmo.models.elmo.configuration_elmo.checked_int
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


# Copied from hf_elmo.models.elmo.configuration_elmo.checked_float
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


# Copied from hf_elmo.models.elmo.configuration_elmo.checked_bool
def checked_bool(name: str, value: Any) -> bool:
    """``value`` as a flag: ``true`` or ``false`` only (the string "false" is truthy: bool() would turn it on)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


class AWDLSTMConfig(PretrainedConfig):
    """Configuration of [`AWDLSTMModel`] and its heads (fastai's ``AWD_LSTM``, ``get_language_model`` and
    ``get_text_classifier``).

    Args:
        vocab_size: rows of the embedding (fastai's ``len(vocab)``).
        emb_size: embedding size, and output size of the last LSTM layer (fastai's ``emb_sz``).
        hidden_size: output size of every LSTM layer but the last (fastai's ``n_hid``); both directions together
            when ``bidirectional``.
        num_layers: LSTM layers (fastai's ``n_layers``).
        pad_token_id: id of ``xxpad`` (1 in fastai's vocabularies); its embedding row gets no gradient.
        bos_token_id: id of ``xxbos`` (2).
        eos_token_id: id of ``xxeos`` when the vocabulary has one (fastai puts it at 3), used by ``generate``.
        tie_weights: the language model's decoder shares the embedding matrix (``tie_word_embeddings`` follows it).
        out_bias: the language model's decoder has a bias.
        bidirectional: bidirectional LSTM layers (each direction has half of the layer's output size).
        backwards: the model reads each document reversed, as a fastai model trained with ``backwards=True`` (the
            ULMFiT paper's backward LM and classifier): its tokenizer (``AWDLSTMTokenizer(backwards=True)``)
            reverses each document's ids, ``xxbos`` last, before any padding; the network is the same.
        output_p: language model: dropout on the last layer's output before the decoder (locked over time);
            classifier: dropout of the head's first block. fastai: 0.1 (LM), 0.4 (classifier).
        hidden_p: dropout between LSTM layers, one mask per sequence. fastai: 0.15 (LM), 0.3 (classifier).
        input_p: dropout on the embedded input, one mask per sequence. fastai: 0.25 (LM), 0.4 (classifier).
        embed_p: embedding dropout: whole vocabulary rows are zeroed. fastai: 0.02 (LM), 0.05 (classifier).
        weight_p: DropConnect on the hidden-to-hidden weights. fastai: 0.2 (LM), 0.5 (classifier).
        ar_alpha: activation regularisation (AR): ``ar_alpha · mean(dropped last-layer output²)`` is added to the
            loss in training (fastai's ``RNNRegularizer(alpha=2)``); 0 disables it.
        tar_beta: temporal activation regularisation (TAR): ``tar_beta · mean((h_t+1 − h_t)²)`` over the raw
            last-layer output, added in training (``RNNRegularizer(beta=1)``); 0 disables it.
        bptt: classifier: the document is read in chunks of this many tokens, the state carried from chunk to chunk
            (fastai's ``seq_len``, 72).
        max_len: classifier: only the chunks that start within the last ``max_len`` tokens of a document are pooled
            (fastai's ``max_len``, 72·20 = 1440); ``None`` pools every token.
        classifier_hidden_sizes: sizes of the head's hidden blocks (fastai's ``lin_ftrs``, ``[50]``).
        classifier_dropouts: dropout of every head block, ``len(classifier_hidden_sizes) + 1`` values (fastai's
            ``[output_p] + ps``); ``None`` (default): ``[output_p] + [0.1] * len(classifier_hidden_sizes)``, as
            fastai's default ``ps`` (see ``head_dropouts``).
        classifier_y_range: optional ``(low, high)``: the head ends with ``sigmoid(x)·(high − low) + low`` (fastai's
            ``y_range``, for regression).
        classifier_bias: the head's Linear layers have a bias (fastai 1's heads); fastai 2's have none (a
            BatchNorm precedes each Linear).
        initializer_range: the embedding and decoder are initialised uniform in ±``initializer_range`` (fastai: 0.1).
        num_labels / problem_type / id2label: the classifier's, as for any transformers classifier.
    """

    model_type = "awd_lstm"
    remote_code_auto_map = REMOTE_CODE_AUTO_MAP  # what a saved folder's auto_map is completed with
    # Output fields a Trainer should not gather at evaluation (the recurrent state and intermediate activations).
    keys_to_ignore_at_inference = [
        "state", "hidden_states", "dropped_hidden_states", "raw_output", "dropped_output", "pooled_output",
        "lm_loss", "ar_loss", "tar_loss",
    ]

    def __init__(
        self,
        vocab_size: int = 60000,
        emb_size: int = 400,
        hidden_size: int = 1152,
        num_layers: int = 3,
        pad_token_id: int | None = 1,
        bos_token_id: int | None = 2,
        eos_token_id: int | None = None,
        tie_weights: bool | None = None,
        out_bias: bool = True,
        bidirectional: bool = False,
        backwards: bool = False,
        output_p: float = LM_DROPOUTS["output_p"],
        hidden_p: float = LM_DROPOUTS["hidden_p"],
        input_p: float = LM_DROPOUTS["input_p"],
        embed_p: float = LM_DROPOUTS["embed_p"],
        weight_p: float = LM_DROPOUTS["weight_p"],
        ar_alpha: float = 2.0,
        tar_beta: float = 1.0,
        bptt: int = 72,
        max_len: int | None = 72 * 20,
        classifier_hidden_sizes: list[int] | None = None,
        classifier_dropouts: list[float] | None = None,
        classifier_y_range: list[float] | tuple[float, float] | None = None,
        classifier_bias: bool = False,
        initializer_range: float = 0.1,
        **kwargs: Any,
    ) -> None:
        # Every field is checked strictly (an int is an int, a flag a bool, sizes positive and capped): a config.json
        # that says "false" or 64.7 would otherwise build another model than its weights', and an absurd size fails
        # here, with its name, instead of as a MemoryError.
        as_int = checked_int

        def as_p(name: str, value: Any) -> float:
            return checked_float(name, value, 0.0, 1.0)

        self.vocab_size = as_int("vocab_size", vocab_size, 1, MAX_VOCAB)
        self.emb_size = as_int("emb_size", emb_size, 1, MAX_DIM)
        self.hidden_size = as_int("hidden_size", hidden_size, 1, MAX_DIM)
        self.num_layers = as_int("num_layers", num_layers, 1, MAX_LAYERS)
        self.bidirectional = checked_bool("bidirectional", bidirectional)
        self.backwards = checked_bool("backwards", backwards)
        if self.bidirectional:
            for name, size in (("emb_size", self.emb_size), ("hidden_size", self.hidden_size)):
                if size % 2:
                    raise ValueError(f"bidirectional: {name} must be even (half per direction), got {size}")
        # tie_word_embeddings is what transformers' tying reads; tie_weights (fastai's name) is the same switch
        tie_word_embeddings = kwargs.pop("tie_word_embeddings", None)
        if tie_weights is None:
            tie_weights = True if tie_word_embeddings is None else tie_word_embeddings
        self.tie_weights = checked_bool("tie_weights", tie_weights)
        self.out_bias = checked_bool("out_bias", out_bias)
        self.output_p = as_p("output_p", output_p)
        self.hidden_p = as_p("hidden_p", hidden_p)
        self.input_p = as_p("input_p", input_p)
        self.embed_p = as_p("embed_p", embed_p)
        self.weight_p = as_p("weight_p", weight_p)
        self.ar_alpha = checked_float("ar_alpha", ar_alpha, 0.0)
        self.tar_beta = checked_float("tar_beta", tar_beta, 0.0)
        self.bptt = as_int("bptt", bptt, 1, MAX_TOKENS)
        self.max_len = None if max_len is None else as_int("max_len", max_len, 1, MAX_TOKENS)
        if self.max_len is not None and self.max_len < self.bptt:
            raise ValueError(
                f"max_len ({self.max_len}) must be at least bptt ({self.bptt}): the last chunk of a document is "
                "always pooled"
            )
        hidden_sizes = [50] if classifier_hidden_sizes is None else classifier_hidden_sizes
        if not isinstance(hidden_sizes, (list, tuple)) or len(hidden_sizes) > MAX_LAYERS:
            raise ValueError(f"classifier_hidden_sizes must be a list of at most {MAX_LAYERS} sizes, got "
                             f"{str(hidden_sizes)[:200]}")
        self.classifier_hidden_sizes = [as_int("classifier_hidden_sizes[]", n, 1, MAX_DIM) for n in hidden_sizes]
        if classifier_dropouts is not None:
            if not isinstance(classifier_dropouts, (list, tuple)):
                raise ValueError(f"classifier_dropouts must be a list, got {str(classifier_dropouts)[:200]}")
            classifier_dropouts = [as_p("classifier_dropouts[]", p) for p in classifier_dropouts]
            if len(classifier_dropouts) != len(self.classifier_hidden_sizes) + 1:
                raise ValueError(
                    "classifier_dropouts needs len(classifier_hidden_sizes) + 1 = "
                    f"{len(self.classifier_hidden_sizes) + 1} values (one per head block), got "
                    f"{len(classifier_dropouts)}"
                )
        self.classifier_dropouts = classifier_dropouts
        if classifier_y_range is not None:
            if (not isinstance(classifier_y_range, (list, tuple)) or len(classifier_y_range) != 2
                    or not checked_float("classifier_y_range[0]", classifier_y_range[0])
                    < checked_float("classifier_y_range[1]", classifier_y_range[1])):
                raise ValueError(f"classifier_y_range must be (low, high) with low < high, got {classifier_y_range}")
            classifier_y_range = [float(classifier_y_range[0]), float(classifier_y_range[1])]
        self.classifier_y_range = classifier_y_range
        self.classifier_bias = checked_bool("classifier_bias", classifier_bias)
        self.initializer_range = checked_float("initializer_range", initializer_range, 0.0)
        for name, token in (("pad_token_id", pad_token_id), ("bos_token_id", bos_token_id),
                            ("eos_token_id", eos_token_id)):
            if token is not None and not 0 <= checked_int(name, token) < self.vocab_size:
                raise ValueError(f"{name}={token} is outside the vocabulary [0, {self.vocab_size})")
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=self.tie_weights,
            **kwargs,
        )
        n_parameters = self.estimated_num_parameters()
        if n_parameters > MAX_PARAMETERS:
            raise ValueError(f"these sizes make a model of ~{n_parameters:.3g} parameters, more than the "
                             f"{MAX_PARAMETERS:.3g} this package builds (ULMFiT's has 24M at a 60,000-token "
                             f"vocabulary): vocab_size {self.vocab_size}, emb_size {self.emb_size}, hidden_size "
                             f"{self.hidden_size}, num_layers {self.num_layers}")

    # ------------------------------------------------------------------------------------------------------------
    def estimated_num_parameters(self) -> int:
        """The parameter count these sizes imply (embedding, every LSTM layer, an untied decoder, the classifier
        head): what building the largest model of this config would allocate."""
        n_dir = 2 if self.bidirectional else 1
        total = self.vocab_size * self.emb_size * (1 if self.tie_weights else 2) + self.vocab_size
        for layer in range(self.num_layers):
            n_in = self.emb_size if layer == 0 else self.hidden_size
            h = (self.emb_size if layer == self.num_layers - 1 else self.hidden_size) // n_dir
            total += n_dir * 4 * h * (n_in + h + 2)
        n_in = 3 * self.emb_size
        for n_out in [*self.classifier_hidden_sizes, self.num_labels]:
            total += 4 * n_in + n_in * n_out + n_out
            n_in = n_out
        return total

    @property
    def num_hidden_layers(self) -> int:
        return self.num_layers

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def layer_input_size(self, layer: int) -> int:
        """Input size of LSTM layer ``layer``: the embedding for the first, the hidden size for the others."""
        return self.emb_size if layer == 0 else self.hidden_size

    def layer_output_size(self, layer: int) -> int:
        """Output size of LSTM layer ``layer`` (both directions): the hidden size, the embedding size for the last."""
        return self.emb_size if layer == self.num_layers - 1 else self.hidden_size

    def layer_state_size(self, layer: int) -> int:
        """Size of one direction's ``h`` and ``c`` in layer ``layer``."""
        return self.layer_output_size(layer) // self.num_directions

    @property
    def head_dropouts(self) -> list[float]:
        """The dropout of every classifier head block: ``classifier_dropouts`` when set, else fastai's
        ``[output_p] + [0.1] * len(classifier_hidden_sizes)``."""
        if self.classifier_dropouts is not None:
            return list(self.classifier_dropouts)
        return [self.output_p] + [HEAD_DROPOUT] * len(self.classifier_hidden_sizes)

    @property
    def classifier_input_size(self) -> int:
        """Size of the pooled features the classifier head reads: [last, max, mean] of the last layer."""
        return 3 * self.emb_size

    # ------------------------------------------------------------------------------------------------------------
    @staticmethod
    def dropout_defaults(task: str = "language-modeling", drop_mult: float = 1.0) -> dict[str, float]:
        """fastai's dropouts for ``task`` (``"language-modeling"`` or ``"classification"``), scaled by
        ``drop_mult`` as ``get_language_model`` / ``get_text_classifier`` do."""
        if task not in ("language-modeling", "classification"):
            raise ValueError(f"task must be 'language-modeling' or 'classification', got {task!r}")
        base = LM_DROPOUTS if task == "language-modeling" else CLASSIFIER_DROPOUTS
        return {name: p * drop_mult for name, p in base.items()}

    @classmethod
    def for_language_model(cls, drop_mult: float = 1.0, **kwargs: Any) -> "AWDLSTMConfig":
        """ULMFiT's language model (fastai's ``awd_lstm_lm_config``), dropouts scaled by ``drop_mult``."""
        return cls(**{**cls.dropout_defaults("language-modeling", drop_mult), **kwargs})

    @classmethod
    def for_classifier(cls, drop_mult: float = 1.0, **kwargs: Any) -> "AWDLSTMConfig":
        """ULMFiT's classifier (fastai's ``awd_lstm_clas_config`` and ``get_text_classifier``): encoder dropouts
        0.3/0.4/0.05/0.5 and head dropouts ``[0.4, 0.1]``, the ``_p`` values scaled by ``drop_mult`` (the later head
        blocks' 0.1 is not scaled, as in fastai)."""
        return cls(**{**cls.dropout_defaults("classification", drop_mult), **kwargs})

    def to_dict(self) -> dict[str, Any]:
        """As ``PretrainedConfig.to_dict``; once an ``auto_map`` is set (``save_pretrained`` of a registered model or
        config sets it), it is completed with every AWD-LSTM Auto class (``REMOTE_CODE_AUTO_MAP``)."""
        output = super().to_dict()
        if output.get("auto_map"):
            output["auto_map"] = {**self.remote_code_auto_map, **output["auto_map"]}
        return output


class AWDLSTMEnsembleConfig(AWDLSTMConfig):
    """Configuration of ULMFiT's forward + backward ensemble ([`AWDLSTMEnsembleForSequenceClassification`]): two
    classifiers of this one architecture, the second reading each document reversed (fastai's ``backwards=True``),
    whose probabilities are averaged, as the ULMFiT paper reports its results. Its own model type, so that the Auto
    classes never load an ensemble folder as a single classifier. ``backwards`` is False: the ensemble takes each
    document in the text's order (a forward tokenizer) and reverses it for its backward member itself."""

    model_type = "awd_lstm_ensemble"
    remote_code_auto_map = ENSEMBLE_REMOTE_CODE_AUTO_MAP

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.get("backwards"):
            raise ValueError("an ensemble's backwards must be False: it takes documents in the text's order and "
                             "reverses them for its backward member")
        super().__init__(**kwargs)
