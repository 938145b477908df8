"""The ONNX exporter configuration of ELMo (``model_type="elmo"``) and its dummy character-id inputs.

Inputs: ``input_ids`` (batch, words, max_characters_per_token) int64 character ids and ``attention_mask`` (batch,
words) int64, both dynamic in batch and words. Outputs by task:

| task | class | outputs |
|---|---|---|
| ``feature-extraction`` | ``ElmoModel`` | ``last_hidden_state``, ``hidden_states.0`` … ``hidden_states.{L}`` (*) |
| ``text-classification`` | ``ElmoForSequenceClassification`` | ``logits`` (batch, num_labels) |
| ``token-classification`` | ``ElmoForTokenClassification`` | ``logits`` (batch, words, num_labels) |
| ``bidirectional-lm`` | ``ElmoForLanguageModeling`` | ``logits`` (batch, words, 2, vocab_size) |

(*) and ``elmo_representations.{k}`` when there are several scalar mixes; ``L`` = n_layers.

``bidirectional-lm`` is a custom task: the biLM predicts the next word (forward) and the previous word (backward) at
every position, which is neither optimum's ``text-generation`` (a causal LM, one prediction per position, generated
from) nor ``fill-mask`` (a masked LM). The exported graph is stateless (each call starts from zero LSTM states).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from optimum.utils.normalized_config import NormalizedConfig
from transformers.modeling_outputs import ModelOutput

from ..models.elmo.tokenization_elmo import BOW_CHAR, EOW_CHAR, PAD_CHAR
from .config import (HfElmoOnnxConfig, PaddedDummyInputGenerator, UnsupportedExportError, check_id_range,
                     checked_mask, register_onnx_config)

ELMO_TASKS = ("feature-extraction", "text-classification", "token-classification", "bidirectional-lm")


class ElmoNormalizedConfig(NormalizedConfig):
    """optimum's normalised view of an ``ElmoConfig``."""

    HIDDEN_SIZE = "hidden_size"
    NUM_LAYERS = "n_layers"
    N_CHARACTERS = "n_characters"
    MAX_CHARACTERS_PER_TOKEN = "max_characters_per_token"
    VOCAB_SIZE = "vocab_size"
    NUM_LABELS = "num_labels"


class ElmoDummyInputGenerator(PaddedDummyInputGenerator):
    """Valid ELMo inputs: ``input_ids`` (batch, words, max_characters_per_token) laid out as ``ElmoTokenizer`` writes
    them (begin-of-word, the bytes of a random lower-case word, end-of-word, padding characters; all ids in
    [0, n_characters)), all-zero rows at padded positions, and the matching ``attention_mask`` (batch, words).

    The first row is ``sequence_length`` words long, the others have random lengths (at least one word), padded on
    ``padding_side``. Both inputs are drawn once, from ``seed``, so that the two ``generate`` calls agree.
    """

    def __init__(self, task: str, normalized_config: NormalizedConfig, *args: Any, max_word_length: int = 10,
                 **kwargs: Any) -> None:
        self.max_word_length = max_word_length
        super().__init__(task, normalized_config, *args, **kwargs)

    def make_ids(self, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
        chars = int(self.normalized_config.max_characters_per_token)
        n_characters = int(self.normalized_config.n_characters)
        if n_characters <= PAD_CHAR + 1:
            raise ValueError(f"ELMo character ids reach {PAD_CHAR + 1}, but n_characters is {n_characters}")
        ids = np.zeros((*mask.shape, chars), dtype=np.int64)
        longest = max(1, min(self.max_word_length, chars - 2))
        for row, pos in zip(*np.nonzero(mask)):
            word = rng.integers(ord("a"), ord("z") + 1, size=int(rng.integers(1, longest + 1)))
            char_ids = np.full(chars, PAD_CHAR, dtype=np.int64)
            char_ids[0] = BOW_CHAR
            char_ids[1 : 1 + len(word)] = word
            char_ids[1 + len(word)] = EOW_CHAR
            ids[row, pos] = char_ids + 1  # the tokenizer's ids are the original ones + 1 (0: no word)
        return ids


class OnnxCellOps:
    """The tensor operations ``lstm_cell`` (hf_elmo.models.elmo.bilstm_elmo) is written in, as ONNX ops: the
    exported step executes the model's own statement of the cell with these."""

    @staticmethod
    def _op() -> Any:
        from onnxscript import opset18

        return opset18

    @classmethod
    def activate_gates(cls, gates: Any) -> Any:
        """(σ(i), tanh(j), σ(f), σ(o)) of the gates' sum: ``Split`` into four, ONNX's own ``Sigmoid``/``Tanh``."""
        op = cls._op()
        i, j, f, o = op.Split(gates, axis=-1, num_outputs=4)
        return op.Sigmoid(i), op.Tanh(j), op.Sigmoid(f), op.Sigmoid(o)

    @classmethod
    def tanh(cls, x: Any) -> Any:
        return cls._op().Tanh(x)

    @classmethod
    def add(cls, x: Any, y: Any) -> Any:
        return cls._op().Add(x, y)

    @classmethod
    def mul(cls, x: Any, y: Any) -> Any:
        return cls._op().Mul(x, y)

    @classmethod
    def clip(cls, x: Any, bound: float) -> Any:  # to ±bound; a bound of 0 is none
        if not bound:
            return x
        op = cls._op()
        low, high = op.Constant(value_float=-bound), op.Constant(value_float=bound)
        return op.Clip(x, op.CastLike(low, x), op.CastLike(high, x))


def lstm_cell_to_onnx(h, c, gates, offset, running, w_hh, w_proj, cell_clip: float, proj_clip: float):
    """The ONNX translation of ``lstm_cell_op`` (an onnxscript trace-only function; the op's body, ``_running_cell``
    in bilstm_elmo.py, says what it computes): the recurrent product on the first ``running`` rows only (``Slice``),
    then the model's ``lstm_cell`` run with ONNX operations, the other rows' states passed through (``Concat``) and
    their outputs zero (``Pad``)."""
    from onnxscript import opset18 as op

    from ..models.elmo.bilstm_elmo import lstm_cell
    from .running_rows import first_rows, rows_then_rest, rows_then_zeros

    zero, one = op.Constant(value_ints=[0]), op.Constant(value_ints=[1])
    n, start = op.Reshape(running, one), op.Reshape(offset, one)
    g = op.Add(op.Slice(gates, start, op.Add(start, n), zero), op.MatMul(first_rows(h, n, 0), w_hh))
    c_new, h_new = lstm_cell(g, first_rows(c, n, 0), lambda m: op.MatMul(m, w_proj), cell_clip, proj_clip,
                             ops=OnnxCellOps)
    y = rows_then_zeros(h_new, op.Shape(h, start=0, end=1), n, 0)
    return rows_then_rest(h_new, h, n, 0), rows_then_rest(c_new, c, n, 0), y


@register_onnx_config("elmo", *ELMO_TASKS)
class ElmoOnnxConfig(HfElmoOnnxConfig):
    """ONNX export of ELMo: the biLM and its heads, traced through the model's scan-based graph path (each biLSTM
    layer becomes one ONNX ``Scan`` over the words, both directions in the same loop, each step working on the
    sentences still running only: ``bilstm_elmo.lstm_cell_op``)."""

    MODEL_TYPE = "elmo"
    NORMALIZED_CONFIG_CLASS = ElmoNormalizedConfig
    DUMMY_INPUT_GENERATOR_CLASSES = (ElmoDummyInputGenerator,)
    TASK_TO_MODEL_CLASS = {
        "feature-extraction": "hf_elmo.models.elmo.modeling_elmo:ElmoModel",
        "text-classification": "hf_elmo.models.elmo.modeling_elmo:ElmoForSequenceClassification",
        "token-classification": "hf_elmo.models.elmo.modeling_elmo:ElmoForTokenClassification",
        "bidirectional-lm": "hf_elmo.models.elmo.modeling_elmo:ElmoForLanguageModeling",
    }
    CUSTOM_TASKS = ("bidirectional-lm",)
    PIPELINE_TAGS = {
        "feature-extraction": "feature-extraction",
        "text-classification": "text-classification",
        "token-classification": "token-classification",
        "bidirectional-lm": None,  # no Hub pipeline for a bidirectional LM
    }

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        if getattr(config, "word_embedding_dim", 0):  # the graph's inputs are the character ids and the mask only
            raise UnsupportedExportError("no ONNX export of an ELMo that reads word ids beside the characters "
                                         "(ELMoForManyLangs: config.word_embedding_dim > 0)")
        super().__init__(config, *args, **kwargs)

    @property
    def outputs(self) -> dict[str, dict[int, str]]:
        words = {0: self.BATCH_AXIS, 1: self.SEQUENCE_AXIS}
        if self.task == "feature-extraction":
            outputs = {"last_hidden_state": dict(words)}
            outputs.update({f"hidden_states.{i}": dict(words) for i in range(self._config.n_layers + 1)})
            if self._config.num_output_representations > 1:
                outputs.update({f"elmo_representations.{k}": dict(words)
                                for k in range(self._config.num_output_representations)})
            return outputs
        if self.task == "text-classification":
            return {"logits": {0: self.BATCH_AXIS}}
        return {"logits": dict(words)}  # token-classification, bidirectional-lm

    def custom_translation_table(self) -> dict[Any, Any]:
        from ..models.elmo.bilstm_elmo import lstm_cell_op

        return {lstm_cell_op.default: lstm_cell_to_onnx}

    def model_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"return_dict": True}
        if self.task == "feature-extraction":
            kwargs["output_hidden_states"] = True
        return kwargs

    def output_class(self) -> type[ModelOutput]:
        from ..models.elmo.modeling_elmo import ElmoClassifierOutput, ElmoLanguageModelingOutput, ElmoModelOutput

        if self.task == "feature-extraction":
            return ElmoModelOutput
        if self.task == "bidirectional-lm":
            return ElmoLanguageModelingOutput
        return ElmoClassifierOutput

    def build_output(self, named: dict[str, Any]) -> ModelOutput:
        output = super().build_output(named)
        if self.task == "feature-extraction" and output.get("elmo_representations") is None:
            output["elmo_representations"] = (output["last_hidden_state"],)  # as the PyTorch model returns it
        return output

    def prepare_inputs(self, input_ids: np.ndarray, attention_mask: np.ndarray | None) -> dict[str, np.ndarray]:
        """As the PyTorch model checks them: integer character ids (batch, words, max_characters_per_token) in
        [0, n_characters); the mask (batch, words), or the words that are not all-zero when there is none."""
        cfg = self._config
        chars = cfg.max_characters_per_token
        if input_ids.dtype == np.bool_ or not np.issubdtype(input_ids.dtype, np.integer):
            raise TypeError(f"input_ids must hold integer character ids, got dtype {input_ids.dtype}")
        if input_ids.ndim != 3 or input_ids.shape[-1] != chars:
            raise ValueError(
                f"input_ids must have shape (batch, words, max_characters_per_token={chars}) as ElmoTokenizer "
                f"returns it, got {tuple(input_ids.shape)}"
            )
        batch, width = input_ids.shape[:2]
        if attention_mask is None:
            mask = (input_ids != 0).any(axis=-1)
        else:
            mask = checked_mask(attention_mask, (batch, width), "(batch, words)")
        check_id_range(input_ids, cfg.n_characters, "character ids")
        return {"input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
                "attention_mask": np.ascontiguousarray(mask, dtype=np.int64)}

    def default_tokenizer(self) -> Any:
        from ..models.elmo.tokenization_elmo import ElmoTokenizer

        return ElmoTokenizer(max_characters_per_token=self._config.max_characters_per_token)
