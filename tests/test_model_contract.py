"""What a transformers user relies on from every model class, in the style of transformers' ``ModelTesterMixin``.

``ModelContractTests`` states the contract once; ``TestElmoContract`` and ``TestAWDLSTMContract`` say how to build
each family's tiny models and inputs, and where each class's per-position (or per-sequence) output is. The contract:

* save_pretrained / from_pretrained (the class, and its Auto class) round trip: same config, same weights, same
  outputs; a head loads from a base model's folder (the encoder's weights, a new head) and a base from a head's;
* ``return_dict=False`` (the argument or the config's) gives ``to_tuple()`` of the ``return_dict=True`` output;
* a padded batch (left or right) gives each row what the row alone gives;
* state passed in continues a sequence: two calls with ``state=`` give what one long call gives (RWKV's
  ``test_state_equivalency``);
* deterministic and stateless: a call's output does not depend on the calls before it;
* training: the loss reaches every trainable weight, and a second model loaded from the first trains identically;
* one sequence-classification loss for both families (``sequence_classification_loss``), its label kinds and its
  errors.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import transformers
from transformers import AutoConfig

import hf_elmo  # noqa: F401  (registers the models with the Auto classes)
from awd_lstm_testing import no_dropout, one_thread
from awd_lstm_testing import tiny_model as tiny_awd_model
from conftest import randomize_ as randomize_elmo
from conftest import tiny_config as tiny_elmo_config
from hf_elmo import (
    AWDLSTMForLanguageModeling,
    AWDLSTMForSequenceClassification,
    AWDLSTMModel,
    ElmoForLanguageModeling,
    ElmoForSequenceClassification,
    ElmoForTokenClassification,
    ElmoModel,
)
from hf_elmo.auto import AWD_LSTM_AUTO_CLASSES, ELMO_AUTO_CLASSES

TOLERANCE = dict(atol=1e-5, rtol=1e-5)
LENGTHS = (7, 3, 5)  # one row per length, padded to the longest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``model_class``: each of the family's classes; ``head_class``: each that computes a loss."""
    family = metafunc.cls
    if family is None or not family.model_classes:
        return
    for name, classes in (("model_class", family.model_classes),
                          ("head_class", [c for c in family.model_classes if c is not family.base_class])):
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, classes, ids=[c.__name__ for c in classes])


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def assert_outputs_equal(a: Any, b: Any, **tolerance: float) -> None:
    """Tensors, or (nested) tuples/lists of them, equal (exactly unless a tolerance is given); Nones match Nones."""
    if isinstance(a, (tuple, list)):
        assert isinstance(b, (tuple, list)) and len(a) == len(b), (type(b), len(b) if hasattr(b, "__len__") else b)
        for x, y in zip(a, b):
            assert_outputs_equal(x, y, **tolerance)
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, **(tolerance or dict(atol=0.0, rtol=0.0)))
    else:
        assert a == b


def config_fields(config: transformers.PretrainedConfig) -> dict:
    """A config's fields, without where it was loaded from."""
    return {k: v for k, v in config.to_dict().items() if k != "_name_or_path"}


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    assert_outputs_equal(list(sa.values()), list(sb.values()))


class ModelContractTests:
    """The contract; a subclass says how to build its family's models and inputs."""

    model_classes: tuple[type, ...] = ()
    auto_classes: dict[str, type] = {}
    base_class: type
    classifier_class: type
    stateful_classes: tuple[type, ...] = ()

    # ---- what a family provides ---------------------------------------------------------------------------------
    def make_model(self, model_class: type, seed: int = 0, **overrides: Any) -> torch.nn.Module:
        raise NotImplementedError

    def make_inputs(self, lengths: tuple[int, ...], padding_side: str = "right", seed: int = 0) -> dict:
        """``input_ids`` and ``attention_mask`` of rows of ``lengths``, padded on ``padding_side``."""
        raise NotImplementedError

    def make_labels(self, model_class: type, inputs: dict) -> torch.Tensor:
        raise NotImplementedError

    def main_output(self, model_class: type, output: Any) -> torch.Tensor:
        """The class's principal output: per position (batch, time, ...) or per sequence (batch, ...)."""
        return output.logits if hasattr(output, "logits") else output.last_hidden_state

    def per_position(self, model_class: type) -> bool:
        return model_class is not self.classifier_class

    def continued_part(self, model_class: type, output: Any) -> torch.Tensor:
        """The part of an output that a state carried in continues (both families' forward direction)."""
        return self.main_output(model_class, output)

    # ---- the contract --------------------------------------------------------------------------------------------
    def test_every_model_class_is_under_its_auto_class(self) -> None:
        assert set(self.auto_classes.values()) == set(self.model_classes)
        for model_class in self.model_classes:
            assert model_class.main_input_name == "input_ids"
            params = list(inspect.signature(model_class.forward).parameters)
            assert params[1:3] == ["input_ids", "attention_mask"], params

    def test_save_load_round_trip(self, model_class: type, tmp_path) -> None:
        model = self.make_model(model_class)
        inputs = self.make_inputs(LENGTHS)
        with torch.no_grad():
            before = model(**inputs)
        model.save_pretrained(tmp_path)
        auto_name = next(name for name, cls in self.auto_classes.items() if cls is model_class)
        for loader in (model_class, getattr(transformers, auto_name)):
            loaded = loader.from_pretrained(tmp_path).eval()
            assert type(loaded) is model_class
            assert config_fields(loaded.config) == config_fields(model.config)
            assert_same_weights(loaded, model)
            with torch.no_grad():
                after = loaded(**inputs)
            assert_outputs_equal(after.to_tuple(), before.to_tuple())
        config = AutoConfig.from_pretrained(tmp_path)
        assert type(config) is type(model.config) and config_fields(config) == config_fields(model.config)

    def test_head_loads_from_a_base_folder_and_base_from_a_head(self, tmp_path) -> None:
        base = self.make_model(self.base_class)
        base.save_pretrained(tmp_path / "base")
        head = self.classifier_class.from_pretrained(tmp_path / "base", num_labels=3)
        prefix = self.base_class.base_model_prefix
        assert_same_weights(getattr(head, prefix), base)
        head.save_pretrained(tmp_path / "head")
        again = self.base_class.from_pretrained(tmp_path / "head")
        assert_same_weights(again, base)

    def test_return_dict_false_is_the_tuple(self, model_class: type) -> None:
        model = self.make_model(model_class)
        inputs = self.make_inputs(LENGTHS)
        with torch.no_grad():
            as_dict = model(**inputs, return_dict=True)
            as_tuple = model(**inputs, return_dict=False)
            model.config.return_dict = False
            by_config = model(**inputs)
        assert isinstance(as_dict, transformers.utils.ModelOutput) and isinstance(as_tuple, tuple)
        assert_outputs_equal(as_tuple, as_dict.to_tuple())
        assert_outputs_equal(by_config, as_dict.to_tuple())

    @pytest.mark.parametrize("padding_side", ["left", "right"])
    def test_batched_equals_one_by_one(self, model_class: type, padding_side: str) -> None:
        model = self.make_model(model_class)
        width = max(LENGTHS)
        with torch.no_grad():
            batched = self.main_output(model_class, model(**self.make_inputs(LENGTHS, padding_side)))
            for row, length in enumerate(LENGTHS):
                alone = self.main_output(model_class, model(**self.make_inputs((length,), seed=row)))[0]
                if self.per_position(model_class):
                    got = batched[row, width - length:] if padding_side == "left" else batched[row, :length]
                else:
                    got = batched[row]
                torch.testing.assert_close(got, alone, **TOLERANCE)

    @pytest.mark.parametrize("split", [1, 4])
    def test_state_passed_in_continues_one_long_call(self, split: int) -> None:
        for model_class in self.stateful_classes:
            model = self.make_model(model_class)
            inputs = self.make_inputs((7, 7))
            words = {k: v for k, v in inputs.items() if k != "attention_mask"}  # per word: characters (word ids)
            head = {k: v[:, :split] for k, v in words.items()}
            tail = {k: v[:, split:] for k, v in words.items()}
            with torch.no_grad():
                whole = self.continued_part(model_class, model(**words))
                first = model(**head, use_cache=True)
                second = model(**tail, state=first.state, use_cache=True)
                pieces = torch.cat([self.continued_part(model_class, first),
                                    self.continued_part(model_class, second)], dim=1)
                restarted = self.continued_part(model_class, model(**tail))
            torch.testing.assert_close(pieces, whole, **TOLERANCE)
            # the state did carry something: the continuation without it differs
            assert not torch.allclose(restarted, whole[:, split:], atol=1e-3)

    def test_outputs_do_not_depend_on_earlier_calls(self, model_class: type) -> None:
        """No drift between calls (AllenNLP's and ELMoForManyLangs' stateful ELMo change with every batch)."""
        model = self.make_model(model_class)
        a, b = self.make_inputs(LENGTHS, "left"), self.make_inputs((6, 2), seed=3)
        with torch.no_grad():
            first = model(**a).to_tuple()
            model(**b)
            if model_class in self.stateful_classes:
                model(**b, use_cache=True)
            again = model(**a).to_tuple()
        assert_outputs_equal(again, first)

    def test_training_reaches_every_weight_and_reloads_identically(self, head_class: type, tmp_path) -> None:
        model = self.make_model(head_class).train()
        model.save_pretrained(tmp_path)
        twin = head_class.from_pretrained(tmp_path).train()
        inputs = self.make_inputs(LENGTHS)
        labels = self.make_labels(head_class, inputs)
        for m in (model, twin):
            torch.manual_seed(0)
            m(**inputs, labels=labels).loss.backward()
        for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
            if not p.requires_grad:
                continue
            assert p.grad is not None, f"{head_class.__name__}: the loss does not reach {name}"
            assert torch.isfinite(p.grad).all(), name
            torch.testing.assert_close(p.grad, q.grad, atol=0.0, rtol=0.0)
        assert any(float(p.grad.abs().sum()) > 0 for p in model.parameters() if p.grad is not None)

    def test_unexpected_argument_is_named(self, model_class: type) -> None:
        model = self.make_model(model_class)
        with pytest.raises(TypeError, match="not_an_argument"):
            model(**self.make_inputs((3,)), not_an_argument=1)

    # ---- the sequence-classification loss, one behaviour for both families ---------------------------------------
    def classifier_and_logits(self, num_labels: int, **overrides: Any) -> tuple[torch.nn.Module, dict, torch.Tensor]:
        model = self.make_model(self.classifier_class, num_labels=num_labels, **overrides)
        inputs = self.make_inputs(LENGTHS)
        with torch.no_grad():
            logits = model(**inputs).logits.float()
        return model, inputs, logits

    @pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8])
    def test_integer_labels_of_any_width_are_single_label(self, dtype: torch.dtype) -> None:
        model, inputs, logits = self.classifier_and_logits(3)
        labels = torch.tensor([2, 0, 1], dtype=dtype)
        with torch.no_grad():
            loss = model(**inputs, labels=labels).loss
        assert model.config.problem_type == "single_label_classification"
        torch.testing.assert_close(loss, F.cross_entropy(logits, labels.long()))

    def test_ignored_label(self) -> None:
        model, inputs, logits = self.classifier_and_logits(3)
        with torch.no_grad():
            loss = model(**inputs, labels=torch.tensor([2, -100, 1])).loss
        torch.testing.assert_close(loss, F.cross_entropy(logits[[0, 2]], torch.tensor([2, 1])))

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bool])
    def test_float_or_bool_labels_are_multi_label(self, dtype: torch.dtype) -> None:
        model, inputs, logits = self.classifier_and_logits(3)
        labels = torch.tensor([[1, 0, 1], [0, 0, 0], [0, 1, 1]]).to(dtype)
        with torch.no_grad():
            loss = model(**inputs, labels=labels).loss
        assert model.config.problem_type == "multi_label_classification"
        torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(logits, labels.float()))

    @pytest.mark.parametrize("shape", [(3,), (3, 1)])
    def test_one_label_is_regression(self, shape: tuple[int, ...]) -> None:
        model, inputs, logits = self.classifier_and_logits(1)
        labels = torch.tensor([0.5, -1.0, 2.0]).reshape(shape)
        with torch.no_grad():
            loss = model(**inputs, labels=labels).loss
        assert model.config.problem_type == "regression"
        torch.testing.assert_close(loss, F.mse_loss(logits.reshape(-1), labels.reshape(-1)))

    def test_regression_with_several_outputs(self) -> None:
        model, inputs, logits = self.classifier_and_logits(2, problem_type="regression")
        labels = torch.tensor([[0.5, 1.0], [-1.0, 0.0], [2.0, 3.0]])
        with torch.no_grad():
            loss = model(**inputs, labels=labels).loss
        torch.testing.assert_close(loss, F.mse_loss(logits, labels))

    @pytest.mark.parametrize("num_labels, problem_type, labels, message", [
        (2, "regression", torch.tensor([0.5, 1.0, 2.0]), r"labels of shape \(3,\): regression needs .* \(3, 2\)"),
        (3, None, torch.tensor([0, 3, 1]), r"label 3 is not a class id: the model has 3 labels"),
        (3, None, torch.tensor([[0], [1], [2], [0]]), r"one class id per sequence, shape \(3,\)"),
        (3, "single_label_classification", torch.tensor([0.0, 1.0, 2.0]), "needs integer class ids"),
        (3, "multi_label_classification", torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
         r"multi_label_classification needs one target per label, shape \(3, 3\)"),
    ])
    def test_labels_that_do_not_fit_are_refused(self, num_labels: int, problem_type: str | None,
                                                labels: torch.Tensor, message: str) -> None:
        model, inputs, _ = self.classifier_and_logits(num_labels, problem_type=problem_type)
        with torch.no_grad(), pytest.raises(ValueError, match=message):
            model(**inputs, labels=labels)


# --------------------------------------------------------------------------------------------------------------------
# The families
# --------------------------------------------------------------------------------------------------------------------
ELMO_VOCAB = 20


class TestElmoContract(ModelContractTests):
    model_classes = (ElmoModel, ElmoForSequenceClassification, ElmoForTokenClassification, ElmoForLanguageModeling)
    auto_classes = ELMO_AUTO_CLASSES
    base_class = ElmoModel
    classifier_class = ElmoForSequenceClassification
    stateful_classes = (ElmoModel, ElmoForLanguageModeling)

    def make_model(self, model_class: type, seed: int = 0, **overrides: Any) -> torch.nn.Module:
        torch.manual_seed(seed)
        overrides.setdefault("vocab_size", ELMO_VOCAB)
        return randomize_elmo(model_class(tiny_elmo_config(**overrides)), seed).eval()

    # the character ids of a word row: its first and last markers, the padding slots, the characters' range, and
    # the row of a padding position (ElmoTokenizer's: begin-of-word 258, bytes, end-of-word 259, padding 260, each
    # +1; an all-zero row is a padding word)
    FIRST, LAST, PAD_SLOT, CHARS, NO_WORD = 259, 260, 261, (1, 257), 0
    N_WORDS = 0  # with a word embedding: word ids drawn in [0, N_WORDS), PAD_WORD at padding
    PAD_WORD = 0

    def make_inputs(self, lengths: tuple[int, ...], padding_side: str = "right", seed: int = 0) -> dict:
        """Words as the family's tokenizer writes them, the characters (and word ids) drawn per (row, position) so
        that a row's words do not depend on the batch: row i of a batch is the row that ``seed=i`` gives alone."""
        width, chars = max(lengths), 50
        ids = torch.full((len(lengths), width, chars), self.NO_WORD, dtype=torch.long)
        words = torch.full((len(lengths), width), self.PAD_WORD, dtype=torch.long)
        mask = torch.zeros(len(lengths), width, dtype=torch.long)
        for row, length in enumerate(lengths):
            gen = torch.Generator().manual_seed(1000 * (seed + row))
            start = width - length if padding_side == "left" else 0
            for t in range(length):
                n = int(torch.randint(1, 6, (1,), generator=gen))
                word = torch.full((chars,), self.PAD_SLOT)
                word[0], word[n + 1] = self.FIRST, self.LAST
                word[1:n + 1] = torch.randint(*self.CHARS, (n,), generator=gen)
                ids[row, start + t] = word
                if self.N_WORDS:
                    words[row, start + t] = int(torch.randint(0, self.N_WORDS, (1,), generator=gen))
            mask[row, start:start + length] = 1
        return {"input_ids": ids, "attention_mask": mask, **({"token_ids": words} if self.N_WORDS else {})}

    def make_labels(self, model_class: type, inputs: dict) -> torch.Tensor:
        mask = inputs["attention_mask"].bool()
        if model_class is ElmoForSequenceClassification:
            return torch.arange(mask.shape[0]) % 2
        words = torch.randint(0, 2 if model_class is ElmoForTokenClassification else ELMO_VOCAB, mask.shape,
                              generator=torch.Generator().manual_seed(0))
        return words.masked_fill(~mask, -100)

    def continued_part(self, model_class: type, output: Any) -> torch.Tensor:
        """The forward direction: a state carried in continues the forward LSTMs (as bilm-tf's stateful runs do);
        the backward LSTMs read each call from its end, so a split call cannot equal the long one there."""
        if model_class is ElmoForLanguageModeling:
            return output.logits[..., 0, :]
        half = output.hidden_states[1].shape[-1] // 2
        return torch.cat([layer[..., :half] for layer in output.hidden_states[1:]], dim=-1)


class TestElmoForManyLangsContract(TestElmoContract):
    """ELMo with ELMoForManyLangs' options: a character lexicon whose padding row is trained and a word embedding
    read from ``token_ids``."""

    N_CHARS, N_WORDS, PAD_WORD = 40, 20, 3
    # <eow> in slot 0 and <bow> after the word (swapped, as the original), <pad> in the other slots and positions
    FIRST, LAST, PAD_SLOT, CHARS, NO_WORD = 38, 37, 39, (0, 37), 39

    def make_model(self, model_class: type, seed: int = 0, **overrides: Any) -> torch.nn.Module:
        overrides = dict(char_vocabulary="lexicon", n_characters=self.N_CHARS, char_padding_id=self.NO_WORD,
                         word_embedding_dim=4, word_vocab_size=self.N_WORDS, word_padding_id=self.PAD_WORD,
                         **overrides)
        return super().make_model(model_class, seed, **overrides)


class TestAWDLSTMContract(ModelContractTests):
    model_classes = (AWDLSTMModel, AWDLSTMForLanguageModeling, AWDLSTMForSequenceClassification)
    auto_classes = AWD_LSTM_AUTO_CLASSES
    base_class = AWDLSTMModel
    classifier_class = AWDLSTMForSequenceClassification
    stateful_classes = (AWDLSTMModel, AWDLSTMForLanguageModeling)

    def make_model(self, model_class: type, seed: int = 0, **overrides: Any) -> torch.nn.Module:
        # no dropout: the training test compares two models' gradients (dropout masks are seeded alike, but AR
        # and TAR are then the same too); pad_token_id 1 as fastai's vocabularies
        return tiny_awd_model(model_class, seed, **no_dropout(pad_token_id=1, **overrides))

    def make_inputs(self, lengths: tuple[int, ...], padding_side: str = "right", seed: int = 0) -> dict:
        width = max(lengths)
        ids = torch.ones(len(lengths), width, dtype=torch.long)
        mask = torch.zeros(len(lengths), width, dtype=torch.long)
        for row, length in enumerate(lengths):
            tokens = torch.randint(2, 50, (length,), generator=torch.Generator().manual_seed(1000 * (seed + row)))
            start = width - length if padding_side == "left" else 0
            ids[row, start:start + length] = tokens
            mask[row, start:start + length] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def make_labels(self, model_class: type, inputs: dict) -> torch.Tensor:
        if model_class is AWDLSTMForSequenceClassification:
            return torch.arange(inputs["input_ids"].shape[0]) % 2
        return inputs["input_ids"].masked_fill(~inputs["attention_mask"].bool(), -100)
