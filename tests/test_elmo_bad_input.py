"""Odd and wrong input: the tokenizer and the model either handle it correctly or say exactly what is wrong."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import tiny_model
from hf_elmo import ElmoTokenizer
from hf_elmo.models.elmo.tokenization_elmo import split_words, word_to_char_ids

N_CHARS = 262


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=7)


def check_encoding(enc, n_words: list[int]) -> None:
    """ids in [0, 262); shapes (batch, width, 50); the mask counts the real words; padding words are all-zero."""
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert ids.dim() == 3 and ids.shape[-1] == 50
    assert ids.shape[:2] == mask.shape
    assert ids.shape[0] == len(n_words)
    if ids.numel():
        assert int(ids.min()) >= 0 and int(ids.max()) < N_CHARS
    assert mask.sum(dim=1).tolist() == n_words
    real = mask.bool()
    assert bool((ids[real] > 0).all(dim=-1).all()) if real.any() else True
    assert bool((ids[~real] == 0).all())


def check_forward(model, enc) -> None:
    with torch.no_grad():
        out = model(**enc, use_cache=True)
    batch, width = enc["attention_mask"].shape
    hidden = 2 * model.config.projection_dim
    assert out.last_hidden_state.shape == (batch, width, hidden)
    assert len(out.hidden_states) == model.config.n_layers + 1
    for layer in out.hidden_states:
        assert layer.shape == (batch, width, hidden)
        assert torch.isfinite(layer).all()
        assert bool((layer[~enc["attention_mask"].bool()] == 0).all())
    assert torch.isfinite(out.last_hidden_state).all()
    assert out.state[0].shape == (model.config.n_layers, 2, batch, model.config.projection_dim)
    assert out.state[1].shape == (model.config.n_layers, 2, batch, model.config.lstm_dim)


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer and model on odd input
# ----------------------------------------------------------------------------------------------------------------
def test_empty_string(tokenizer, model):
    enc = tokenizer("", return_tensors="pt")
    assert enc["input_ids"].shape == (1, 2, 50)  # only <S> </S>
    assert enc.word_ids(0) == [None, None]
    check_encoding(enc, [2])
    check_forward(model, enc)
    bare = tokenizer("", add_special_tokens=False, return_tensors="pt")
    assert bare["input_ids"].shape == (1, 0, 50)
    check_forward(model, bare)
    assert tokenizer("")["input_ids"] == [word_to_char_ids("<S>"), word_to_char_ids("</S>")]


def test_empty_batch(tokenizer, model):
    enc = tokenizer([], return_tensors="pt")
    assert enc["input_ids"].shape == (0, 0, 50)
    assert enc["attention_mask"].shape == (0, 0)
    assert tokenizer([], is_split_into_words=True, return_tensors="np")["input_ids"].shape == (0, 0, 50)
    assert tokenizer([])["input_ids"] == []
    check_forward(model, enc)


def test_model_on_empty_tensor(model):
    with torch.no_grad():
        out = model(input_ids=torch.zeros(0, 0, 50, dtype=torch.long), use_cache=True)
    assert out.last_hidden_state.shape == (0, 0, 2 * model.config.projection_dim)
    assert all(h.shape == (0, 0, 2 * model.config.projection_dim) for h in out.hidden_states)
    assert out.state[0].shape[2] == 0
    with torch.no_grad():
        out = model(input_ids=torch.zeros(2, 0, 50, dtype=torch.long))
    assert out.last_hidden_state.shape == (2, 0, 2 * model.config.projection_dim)


def test_batch_with_an_empty_row(tokenizer, model):
    enc = tokenizer(["", "two words", ""], add_special_tokens=False, return_tensors="pt")
    check_encoding(enc, [0, 2, 0])
    check_forward(model, enc)
    with torch.no_grad():
        together = model(**enc)
        alone = model(**tokenizer(["two words"], add_special_tokens=False, return_tensors="pt"))
    assert torch.allclose(together.last_hidden_state[1], alone.last_hidden_state[0], atol=1e-6)
    assert bool((together.last_hidden_state[0] == 0).all())


def test_empty_row_keeps_its_state(tokenizer, model):
    enc = tokenizer(["", "two words"], add_special_tokens=False, return_tensors="pt")
    h, c = model.zero_state(2)
    gen = torch.Generator().manual_seed(0)
    h, c = torch.randn(h.shape, generator=gen), torch.randn(c.shape, generator=gen)
    with torch.no_grad():
        out = model(**enc, state=(h, c), use_cache=True)
    assert torch.equal(out.state[0][:, :, 0], h[:, :, 0])
    assert torch.equal(out.state[1][:, :, 0], c[:, :, 0])
    assert not torch.equal(out.state[0][:, :, 1], h[:, :, 1])


def test_all_padding_batch(model):
    with torch.no_grad():
        out = model(input_ids=torch.zeros(2, 3, 50, dtype=torch.long))
    assert bool((out.last_hidden_state == 0).all())


def test_300_character_word(tokenizer, model):
    word = "a" * 300
    enc = tokenizer([word, "b"], is_split_into_words=True, return_tensors="pt")
    check_encoding(enc, [4])
    assert enc["input_ids"][0, 1].tolist() == [259] + [98] * 48 + [260]
    check_forward(model, enc)
    # only the first 48 bytes count: a word that differs after them is the same word
    enc2 = tokenizer([word[:48] + "zzz", "b"], is_split_into_words=True, return_tensors="pt")
    assert torch.equal(enc["input_ids"], enc2["input_ids"])


@pytest.mark.parametrize("text", ["😀🎉 émoji", "日本語のテキスト", "Ελληνικά и кириллица", "\u200b\u200d zero width",
                                  "combining e\u0301", "a\x00b\x00", "\x00", "tab\tnew\nline\r\n", "\ufeffBOM",
                                  "\U0010ffff", "\ue000\ue001"])
def test_non_ascii_and_control_characters(tokenizer, model, text):
    enc = tokenizer(text, return_tensors="pt")
    words = split_words(text)
    check_encoding(enc, [len(words) + 2])
    for pos, j in enumerate(enc.word_ids(0)):
        if j is not None:
            assert enc["input_ids"][0, pos].tolist() == word_to_char_ids(words[j])
    check_forward(model, enc)


def test_nul_bytes_split_words_and_in_words(tokenizer):
    assert split_words("a\x00b c") == ["ab", "c"]  # as Moses does, ASCII control characters are deleted
    assert tokenizer("a\x00b c", return_offsets_mapping=True)["offset_mapping"][1:3] == [(0, 3), (4, 5)]
    # passed as a word, a NUL byte is character 0 + 1 = 1, not padding
    ids = tokenizer(["a\x00b"], is_split_into_words=True)["input_ids"][1]
    assert ids[:5] == [259, 98, 1, 99, 260]


def test_combining_characters_are_normalised():
    assert split_words("cafe\u0301") == ["café"]  # NFC


def test_one_word(tokenizer, model):
    enc = tokenizer("word", return_tensors="pt")
    check_encoding(enc, [3])
    check_forward(model, enc)


def test_2000_words(tokenizer, model):
    words = [f"w{i % 50}" for i in range(2000)]
    enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
    check_encoding(enc, [2002])
    check_forward(model, enc)


# ----------------------------------------------------------------------------------------------------------------
# Property-based: random text and random words
# ----------------------------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(max_size=40), min_size=1, max_size=3))
def test_random_unicode_text(tokenizer, model, texts):
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    n_words = [len(split_words(t)) + 2 for t in texts]
    check_encoding(enc, n_words)
    check_forward(model, enc)


word = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.lists(word, max_size=8), min_size=1, max_size=3),
       add_special=st.booleans(), side=st.sampled_from(["left", "right"]))
def test_random_word_lists(tokenizer, model, batch, add_special, side):
    enc = tokenizer(batch, is_split_into_words=True, padding=True, return_tensors="pt",
                    add_special_tokens=add_special, padding_side=side)
    n_special = 2 if add_special else 0
    check_encoding(enc, [len(words) + n_special for words in batch])
    for b, words in enumerate(batch):
        for pos, j in enumerate(enc.word_ids(b)):
            if j is not None:
                ids = enc["input_ids"][b, pos].tolist()
                assert ids == word_to_char_ids(words[j])
                body = [i - 1 for i in ids[1 : ids.index(260)]]
                assert bytes(body) == words[j].encode("utf-8")[:48] or words[j] in ("<S>", "</S>")
    check_forward(model, enc)


# ----------------------------------------------------------------------------------------------------------------
# Wrong input to the tokenizer: clear errors
# ----------------------------------------------------------------------------------------------------------------
def test_tokenizer_errors(tokenizer):
    with pytest.raises(ValueError, match="is_split_into_words=True needs a list"):
        tokenizer("a string", is_split_into_words=True)
    with pytest.raises(ValueError, match="pass is_split_into_words=True"):
        tokenizer([["a", "b"]])
    with pytest.raises(TypeError, match="list of words"):
        tokenizer([["a"], 3], is_split_into_words=True)
    with pytest.raises(TypeError, match="text must be"):
        tokenizer(42)
    with pytest.raises(ValueError, match="text_pair"):
        tokenizer("a", "b")
    with pytest.raises(ValueError, match="specify either `text`"):  # transformers' own check, in its __call__
        tokenizer()
    with pytest.raises(TypeError, match="unexpected arguments: \\['bogus'\\]"):
        tokenizer("a", bogus=1)
    with pytest.raises(ValueError, match="max_length=2 leaves no room"):
        tokenizer("a b", truncation=True, max_length=2)
    with pytest.raises(ValueError, match="padding='max_length' needs max_length"):
        tokenizer("a b", padding="max_length")
    with pytest.raises(ValueError, match="return_tensors must be"):
        tokenizer("a b", return_tensors="tf")
    with pytest.raises(ValueError, match="unsupported padding"):
        tokenizer("a b", padding="sideways")
    with pytest.raises(FileNotFoundError, match="vocabulary file not found"):
        ElmoTokenizer(vocab_file="/nonexistent/vocab.txt")
    with pytest.raises(ValueError, match="at least 3"):
        ElmoTokenizer(max_characters_per_token=2)


def test_vocabulary_file_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no words"):
        ElmoTokenizer(vocab_file=str(empty))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValueError, match="not UTF-8"):
        ElmoTokenizer(vocab_file=str(binary))


# ----------------------------------------------------------------------------------------------------------------
# Wrong input to the model: clear errors
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "input_ids, error, fragment",
    [
        (torch.zeros(3, 50, dtype=torch.long), ValueError, r"input_ids must have shape \(batch, words, "),
        (torch.zeros(1, 3, 49, dtype=torch.long), ValueError, r"got \(1, 3, 49\)"),
        (torch.zeros(1, 1, 3, 50, dtype=torch.long), ValueError, "max_characters_per_token=50"),
        (torch.zeros(1, 3, 50), TypeError, "integer character ids, got dtype torch.float32"),
        (torch.zeros(1, 3, 50, dtype=torch.bool), TypeError, "integer character ids"),
        (torch.full((1, 3, 50), 262), ValueError, r"must lie in \[0, 262\), got values in \[262, 262\]"),
        (torch.full((1, 3, 50), -1), ValueError, r"\[0, 262\), got values in \[-1, -1\]"),
        (np.zeros((1, 3, 50), dtype=np.int64), TypeError, "must be a torch.Tensor, got ndarray"),
        ([[[1] * 50]], TypeError, "must be a torch.Tensor, got list"),
    ],
)
def test_model_rejects_bad_input_ids(model, input_ids, error, fragment):
    with pytest.raises(error, match=fragment):
        model(input_ids=input_ids)


def test_model_needs_input_ids(model):
    with pytest.raises(ValueError, match="needs input_ids"):
        model()


def test_model_rejects_unknown_arguments(model, tokenizer):
    with pytest.raises(TypeError, match=r"unexpected arguments: \['bogus'\]"):
        model(**tokenizer("a", return_tensors="pt"), bogus=1)


@pytest.mark.parametrize("mask_shape", [(2, 3), (4,), (2, 4, 1), (1, 4)])
def test_model_rejects_mismatched_attention_mask(model, tokenizer, mask_shape):
    enc = tokenizer(["a b", "c"], return_tensors="pt")
    assert enc["input_ids"].shape[:2] == (2, 4)
    with pytest.raises(ValueError, match=r"attention_mask shape .* does not match input_ids' \(batch, words\) = "
                                         r"\(2, 4\)"):
        model(input_ids=enc["input_ids"], attention_mask=torch.ones(mask_shape, dtype=torch.long))


def test_model_rejects_wrong_state_shapes(model, tokenizer):
    enc = tokenizer(["a b", "c"], return_tensors="pt")
    h, c = model.zero_state(2)
    cfg = model.config
    want = rf"expected \({cfg.n_layers}, 2, 2, {cfg.projection_dim}\), \({cfg.n_layers}, 2, 2, {cfg.lstm_dim}\)"
    with pytest.raises(ValueError, match=r"state shapes \(2, 2, 1, 6\), .* do not fit this batch: " + want):
        model(**enc, state=(h[:, :, :1], c))
    with pytest.raises(ValueError, match=r"state shapes .*\(2, 2, 2, 5\) do not fit this batch"):
        model(**enc, state=(h, c[..., :5]))
    with pytest.raises(ValueError, match="do not fit this batch"):
        model(**enc, state=(c, h))  # swapped
    h3, c3 = model.zero_state(3)
    with pytest.raises(ValueError, match="do not fit this batch"):
        model(**enc, state=(h3, c3))  # a state of another batch size


@pytest.mark.parametrize("state", ["h only", "triple", "not a tuple"])
def test_model_rejects_malformed_state(model, tokenizer, state):
    enc = tokenizer(["a b", "c"], return_tensors="pt")
    h, c = model.zero_state(2)
    bad = {"h only": (h,), "triple": (h, c, c), "not a tuple": h}[state]
    with pytest.raises(TypeError, match=r"state must be the \(h, c\) pair"):
        model(**enc, state=bad)


def test_model_rejects_state_of_non_tensors(model, tokenizer):
    enc = tokenizer(["a b", "c"], return_tensors="pt")
    h, c = model.zero_state(2)
    with pytest.raises(TypeError, match=r"state must be the \(h, c\) pair"):
        model(**enc, state=(h.tolist(), c))
