"""ELMo's token-embedding cache (``ElmoModel.cache_token_embeddings``, as AllenNLP's ``vocab_to_cache``): words
in the cache skip the character encoder, the others still go through it, and the outputs are the same (≤ 1e-6)
with and without it; it follows weight, dtype and mode changes, and saves/loads with the folder."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import tiny_model
from hf_elmo import ElmoForSequenceClassification, ElmoModel, ElmoTokenizer

SENTENCES = [["The", "cat", "sat", "on", "the", "mat", "."], ["A", "dog", "barked", "."], ["Cats", "and", "dogs"]]
VOCABULARY = ["The", "the", "cat", "sat", "on", "mat", ".", "A", "dog"]  # not: barked, Cats, and, dogs


@pytest.fixture(scope="module")
def inputs() -> dict:
    return ElmoTokenizer()(SENTENCES, is_split_into_words=True, padding=True, return_tensors="pt")


def outputs(model: ElmoModel, inputs: dict) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        out = model(**inputs)
    return (out.last_hidden_state, *out.hidden_states)


def assert_same(a: tuple, b: tuple) -> None:
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("input_products", [False, True])
@pytest.mark.parametrize("vocabulary", ["part", "all"])
def test_outputs_are_the_same_with_the_cache(inputs, input_products, vocabulary):
    model = tiny_model()
    want = outputs(model, inputs)
    words = VOCABULARY if vocabulary == "part" else [w for s in SENTENCES for w in s]
    size = model.cache_token_embeddings(words, input_products=input_products)
    assert size == len(set(words)) + 2  # the sentence boundaries are always cached
    calls = []
    hook = model.char_encoder.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    assert_same(outputs(model, inputs), want)
    hook.remove()
    # only the words outside the cache went through the character encoder
    assert calls == ([4] if vocabulary == "part" else [])


def test_the_cache_follows_weight_and_dtype_changes(inputs):
    model = tiny_model(seed=0)
    model.cache_token_embeddings(VOCABULARY, input_products=True)
    other = tiny_model(seed=1)
    model.load_state_dict(other.state_dict())
    assert_same(outputs(model, inputs), outputs(other, inputs))
    model.to(torch.bfloat16)
    other.to(torch.bfloat16)
    for a, b in zip(outputs(model, inputs), outputs(other, inputs), strict=True):
        torch.testing.assert_close(a, b, atol=0.0, rtol=0.0)


def test_training_reads_the_character_encoder(inputs):
    model = tiny_model()
    model.cache_token_embeddings(VOCABULARY)
    model.train()
    model(**inputs).last_hidden_state.sum().backward()
    assert model.char_encoder.char_embedding.weight.grad is not None
    assert model.char_encoder.char_embedding.weight.grad.abs().sum() > 0


def test_saved_with_the_folder_when_asked_and_loaded_back(inputs, tmp_path):
    model = tiny_model()
    model.cache_token_embeddings(VOCABULARY, input_products=True)
    want = outputs(model, inputs)
    model.save_pretrained(tmp_path / "plain")
    assert not (tmp_path / "plain" / ElmoModel.TOKEN_CACHE_FILE).exists()
    model.save_pretrained(tmp_path / "cached", save_token_cache=True)
    saved = load_file(tmp_path / "cached" / ElmoModel.TOKEN_CACHE_FILE)
    assert saved["char_ids"].shape == (len(VOCABULARY) + 2, 50) and "input_products_forward" in saved
    loaded = ElmoModel.from_pretrained(tmp_path / "cached").eval()
    assert len(loaded.token_cache) == len(VOCABULARY) + 2 and loaded.token_cache.input_products
    assert_same(outputs(loaded, inputs), want)
    # a head built on the folder carries it in its biLM
    head = ElmoForSequenceClassification.from_pretrained(tmp_path / "cached", num_labels=2)
    assert len(head.elmo.token_cache) == len(VOCABULARY) + 2


def test_a_cache_of_other_weights_is_recomputed(inputs, tmp_path, caplog):
    model = tiny_model()
    model.cache_token_embeddings(VOCABULARY)
    model.save_pretrained(tmp_path, save_token_cache=True)
    path = tmp_path / ElmoModel.TOKEN_CACHE_FILE
    tensors = load_file(path)
    tensors["tokens"] = tensors["tokens"] + 1.0
    save_file(tensors, path)
    loaded = ElmoModel.from_pretrained(tmp_path).eval()
    assert "do not come from these weights: recomputed" in caplog.text
    assert_same(outputs(loaded, inputs), outputs(tiny_model(), inputs))


@pytest.mark.parametrize("tensors, message", [
    ({"tokens": torch.zeros(3, 6)}, "needs 'char_ids'"),
    ({"char_ids": torch.ones(3, 50, dtype=torch.long), "tokens": torch.zeros(3, 5)}, "needs 'char_ids'"),
    ({"char_ids": torch.full((3, 50), 999), "tokens": torch.zeros(3, 6)}, r"character ids must lie in \[0, 262\)"),
])
def test_a_bad_cache_file_is_named(tmp_path, tensors, message):
    path = tmp_path / "cache.safetensors"
    save_file(tensors, path)
    with pytest.raises(ValueError, match=message):
        tiny_model().load_token_embeddings(path)
    path.write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="not a readable token cache"):
        tiny_model().load_token_embeddings(path)


def test_clearing_and_refusing_a_string(inputs):
    model = tiny_model()
    with pytest.raises(TypeError, match="iterable of words, got one str"):
        model.cache_token_embeddings("the")
    model.cache_token_embeddings(VOCABULARY)
    model.clear_token_cache()
    assert model.token_cache is None
