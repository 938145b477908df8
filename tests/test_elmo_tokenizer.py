"""ElmoTokenizer: the original character ids, word splitting, padding/truncation, vocabulary, saving and collating."""

from __future__ import annotations

import json
import re
import unicodedata

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer, DataCollatorWithPadding

from conftest import ELMO_FIXTURE, SKIP_REASON
from hf_elmo import ElmoTokenizer
from hf_elmo.models.elmo.tokenization_elmo import split_words, word_to_char_ids

# REFERENCE.md: BOS=256, EOS=257, BOW=258, EOW=259, PAD=260, then every value +1 (0 = no word).
BOS, EOS, BOW, EOW, PAD = 257, 258, 259, 260, 261


def expected_ids(body: list[int]) -> list[int]:
    """BOW, the body (already +1), EOW, PAD up to 50 — written out independently of the tokenizer."""
    ids = [BOW] + body + [EOW]
    return ids + [PAD] * (50 - len(ids))


# ----------------------------------------------------------------------------------------------------------------
# Character ids
# ----------------------------------------------------------------------------------------------------------------
def test_single_ascii_character_hand_computed():
    ids = word_to_char_ids("a")
    assert ids[:5] == [259, 98, 260, 261, 261]  # BOW+1, ord('a')+1, EOW+1, PAD+1
    assert ids == [259, 98, 260] + [261] * 47
    assert len(ids) == 50


def test_word_hand_computed():
    assert word_to_char_ids("Hi!") == expected_ids([ord("H") + 1, ord("i") + 1, ord("!") + 1])
    assert word_to_char_ids("Hi!")[:6] == [259, 73, 106, 34, 260, 261]


def test_sentence_boundaries():
    assert word_to_char_ids("<S>") == expected_ids([BOS])
    assert word_to_char_ids("</S>") == expected_ids([EOS])
    assert word_to_char_ids("<S>")[:4] == [259, 257, 260, 261]
    assert word_to_char_ids("</S>")[:4] == [259, 258, 260, 261]
    # other angle-bracket words are ordinary bytes
    assert word_to_char_ids("<s>") == expected_ids([b + 1 for b in b"<s>"])


def test_utf8_bytes():
    # é is C3 A9 in UTF-8; 😀 is F0 9F 98 80
    assert word_to_char_ids("é") == expected_ids([0xC3 + 1, 0xA9 + 1])
    assert word_to_char_ids("a😀") == expected_ids([98, 0xF0 + 1, 0x9F + 1, 0x98 + 1, 0x80 + 1])
    assert word_to_char_ids("日本") == expected_ids([b + 1 for b in "日本".encode("utf-8")])


@pytest.mark.parametrize("n_bytes", [46, 47, 48, 49, 50, 300])
def test_long_words_truncated_to_48_bytes(n_bytes):
    ids = word_to_char_ids("x" * n_bytes)
    kept = min(n_bytes, 48)
    assert len(ids) == 50
    assert ids[0] == BOW
    assert ids[1 : 1 + kept] == [ord("x") + 1] * kept
    assert ids[1 + kept] == EOW
    assert ids[2 + kept :] == [PAD] * (50 - 2 - kept)


def test_multibyte_truncation_counts_bytes_not_characters():
    word = "é" * 30  # 60 bytes
    ids = word_to_char_ids(word)
    assert ids == [BOW] + [b + 1 for b in word.encode("utf-8")[:48]] + [EOW]


def test_tokenizer_output_uses_the_same_ids(tokenizer):
    enc = tokenizer(["a", "Hi!"], is_split_into_words=True)
    assert enc["input_ids"] == [expected_ids([BOS]), expected_ids([98]),
                                expected_ids([73, 106, 34]), expected_ids([EOS])]
    assert enc["attention_mask"] == [1, 1, 1, 1]


def test_zero_only_for_padding_words(tokenizer):
    enc = tokenizer([["a", "b", "c"], ["é"]], is_split_into_words=True, padding=True, return_tensors="np")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert ids.shape == (2, 5, 50)
    real = mask.astype(bool)
    assert (ids[real] > 0).all()  # a real word (boundaries included) has no zero id
    assert (ids[~real] == 0).all()  # a padding word is all zeros
    assert real.sum() == 5 + 3


# ----------------------------------------------------------------------------------------------------------------
# Word splitting
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, words",
    [
        ("Hello, world!", ["Hello", ",", "world", "!"]),
        ("I don't know.", ["I", "don", "'t", "know", "."]),
        ("They're here, aren't they?", ["They", "'re", "here", ",", "aren", "'t", "they", "?"]),
        ("The U.S. economy grew.", ["The", "U.S.", "economy", "grew", "."]),
        ("It rose 3.5 percent to 1,000 jobs.", ["It", "rose", "3.5", "percent", "to", "1,000", "jobs", "."]),
        ('He said "quoted" words.', ["He", "said", '"', "quoted", '"', "words", "."]),
        ("Mr. Smith met Dr. Jones.", ["Mr.", "Smith", "met", "Dr.", "Jones", "."]),
        ("Elk calling -- a skill", ["Elk", "calling", "--", "a", "skill"]),
        ("Wait... what?", ["Wait", "...", "what", "?"]),
        ("a well-known e-mail", ["a", "well-known", "e-mail"]),
        ("(see No. 5)", ["(", "see", "No.", "5", ")"]),
        ("cost $5 or 10%", ["cost", "$", "5", "or", "10", "%"]),
        ("", []),
        ("   \t\n ", []),
    ],
)
def test_split_words_examples(text, words):
    assert split_words(text) == words


def test_tokenizer_splits_raw_text(tokenizer):
    assert tokenizer.tokenize("Hello, world!") == ["Hello", ",", "world", "!"]
    enc = tokenizer("Hello, world!")
    assert len(enc["input_ids"]) == 6
    assert enc["input_ids"][2] == expected_ids([ord(",") + 1])


def test_do_split_false_splits_on_whitespace_only():
    tok = ElmoTokenizer(do_split=False)
    assert tok.tokenize("Hello, world!") == ["Hello,", "world!"]


def test_the_fixture_sentences_split_back_into_their_words_but_the_clitics(fixture_sentences):
    # the sentences are ELMo's tokenised training text; Moses is not idempotent on it in one respect: a clitic after
    # a space ("don 't") reads as an opening quote before a word, as in "say 'hello'"
    count = 0
    for group in fixture_sentences:
        for sentence in group:
            words = sentence.split(" ")
            expected = [p for w in words for p in (["'", w[1:]] if re.fullmatch(r"'[a-z]+", w) else [w])]
            assert split_words(sentence) == expected, sentence
            count += 1
    assert count == 30


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZé9 .,'`-\"!?$()U.S😀\t\x00\x1c")), max_size=40) | st.text(max_size=30))
def test_split_words_only_parts_the_text_into_words(text):
    # Moses puts spaces between words and deletes whitespace and the other ASCII controls, nothing more
    words = split_words(text)
    assert all(w and not any(c.isspace() for c in w) for w in words)
    assert "".join(words) == re.sub(r"[\s\x00-\x1f]", "", unicodedata.normalize("NFC", text))


# ----------------------------------------------------------------------------------------------------------------
# Padding, truncation, tensors, word_ids
# ----------------------------------------------------------------------------------------------------------------
def test_truncation_counts_boundaries_and_keeps_eos(tokenizer):
    words = ["w1", "w2", "w3", "w4", "w5", "w6"]
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=4)
    ids = enc["input_ids"]
    assert len(ids) == 4
    assert ids[0] == expected_ids([BOS])
    assert ids[1] == word_to_char_ids("w1") and ids[2] == word_to_char_ids("w2")
    assert ids[-1] == expected_ids([EOS])
    assert enc.word_ids() == [None, 0, 1, None]


def test_truncation_without_special_tokens(tokenizer):
    enc = tokenizer(["a", "b", "c"], is_split_into_words=True, truncation=True, max_length=2,
                    add_special_tokens=False)
    assert enc["input_ids"] == [word_to_char_ids("a"), word_to_char_ids("b")]


def test_truncation_uses_model_max_length():
    tok = ElmoTokenizer(model_max_length=5)
    enc = tok("one two three four five six", truncation=True)
    assert len(enc["input_ids"]) == 5
    assert enc["input_ids"][-1] == expected_ids([EOS])
    assert len(tok("one two three four five six")["input_ids"]) == 8  # no truncation unless asked


def test_max_length_padding(tokenizer):
    enc = tokenizer([["a"], ["a", "b", "c"]], is_split_into_words=True, padding="max_length", max_length=7,
                    return_tensors="pt")
    assert enc["input_ids"].shape == (2, 7, 50)
    assert enc["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0]]


def test_pad_to_multiple_of(tokenizer):
    enc = tokenizer(["a b c"], padding=True, pad_to_multiple_of=8, return_tensors="np")
    assert enc["input_ids"].shape == (1, 8, 50)
    assert enc["attention_mask"].sum() == 5


@pytest.mark.parametrize("kind", ["pt", "np", None])
def test_return_tensors_shapes(tokenizer, kind):
    enc = tokenizer(["one two three", "four"], padding=True, return_tensors=kind)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    if kind == "pt":
        assert isinstance(ids, torch.Tensor) and ids.dtype == torch.long
        assert tuple(ids.shape) == (2, 5, 50) and tuple(mask.shape) == (2, 5)
    elif kind == "np":
        assert isinstance(ids, np.ndarray) and ids.dtype == np.int64
        assert ids.shape == (2, 5, 50) and mask.shape == (2, 5)
    else:
        assert isinstance(ids, list)
        assert [len(r) for r in ids] == [5, 5] and all(len(w) == 50 for r in ids for w in r)
        assert mask == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]


def test_unpadded_batch_of_lists_keeps_lengths(tokenizer):
    enc = tokenizer(["one two three", "four"])
    assert [len(r) for r in enc["input_ids"]] == [5, 3]
    assert enc["attention_mask"] == [[1] * 5, [1] * 3]


def test_tensors_are_padded_even_without_padding_argument(tokenizer):
    enc = tokenizer(["one two three", "four"], return_tensors="pt")
    assert enc["input_ids"].shape == (2, 5, 50)
    assert enc["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]


def test_single_string_returns_unbatched_lists_or_batched_tensors(tokenizer):
    enc = tokenizer("one two")
    assert len(enc["input_ids"]) == 4 and len(enc["input_ids"][0]) == 50
    assert tokenizer("one two", return_tensors="pt")["input_ids"].shape == (1, 4, 50)


def test_add_special_tokens_false(tokenizer):
    enc = tokenizer("one two", add_special_tokens=False, return_tensors="pt")
    assert enc["input_ids"].shape == (1, 2, 50)
    assert enc["input_ids"][0, 0].tolist() == word_to_char_ids("one")
    assert enc.word_ids(0) == [0, 1]


def test_word_ids_mapping(tokenizer):
    enc = tokenizer([["a", "b", "c"], ["d"]], is_split_into_words=True, padding=True, return_tensors="pt")
    assert enc.word_ids(0) == [None, 0, 1, 2, None]
    assert enc.word_ids(1) == [None, 0, None, None, None]
    left = tokenizer([["a", "b", "c"], ["d"]], is_split_into_words=True, padding=True, padding_side="left")
    assert left.word_ids(1) == [None, None, None, 0, None]
    assert left["attention_mask"][1] == [0, 0, 1, 1, 1]
    # word_ids point at the right words: position of word j holds word j's characters
    for pos, j in enumerate(enc.word_ids(0)):
        if j is not None:
            assert enc["input_ids"][0, pos].tolist() == word_to_char_ids(["a", "b", "c"][j])
    with pytest.raises(IndexError, match="out of range"):
        enc.word_ids(2)


def test_word_ids_follow_raw_text_splitting(tokenizer):
    enc = tokenizer("Don't stop!")
    assert enc.word_ids() == [None, 0, 1, 2, 3, None]
    assert enc["input_ids"][2] == word_to_char_ids("'t")


def test_return_length(tokenizer):
    enc = tokenizer(["a b c", "d"], padding=True, return_length=True, return_tensors="pt")
    assert enc["length"].tolist() == [5, 3]


# ----------------------------------------------------------------------------------------------------------------
# Word vocabulary, token_ids
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture
def fixture_vocab_file():
    path = ELMO_FIXTURE / "vocab_test.txt"
    if not path.is_file():
        pytest.skip(SKIP_REASON)
    return path


def test_token_ids_with_the_fixture_vocabulary(fixture_vocab_file):
    lines = [w.strip() for w in fixture_vocab_file.read_text(encoding="utf-8").splitlines() if w.strip()]
    tok = ElmoTokenizer(vocab_file=str(fixture_vocab_file))
    known = [w for w in lines if w not in ("<S>", "</S>", "<UNK>")][:3]
    enc = tok([known + ["notaword-xyz"]], is_split_into_words=True, return_token_ids=True, return_tensors="pt")
    expected = [lines.index("<S>"), *(lines.index(w) for w in known), tok.vocab["<UNK>"], lines.index("</S>")]
    assert enc["token_ids"].tolist() == [expected]
    assert tok.unk_token_id == tok.vocab["<UNK>"]
    assert tok.vocab_size == len(set(lines) | {"<UNK>"})


def test_token_ids_with_a_small_vocab(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("<S>\n</S>\n<UNK>\nthe\ncat\n.\n", encoding="utf-8")
    tok = ElmoTokenizer(vocab_file=str(vocab))
    enc = tok(["the cat .", "dog"], padding=True, return_token_ids=True, return_tensors="pt")
    assert enc["token_ids"].tolist() == [[0, 3, 4, 5, 1], [0, 2, 1, -100, -100]]
    assert tok.convert_ids_to_tokens([3, 4]) == ["the", "cat"]
    assert tok.decode([3, 4, 5]).split() == ["the", "cat", "."]
    assert tok.get_vocab()["cat"] == 4


def test_build_vocab_orders_by_frequency():
    vocab = ElmoTokenizer.build_vocab(["b a b", "c b a"])
    assert vocab == ["<S>", "</S>", "<UNK>", "b", "a", "c"]
    assert ElmoTokenizer.build_vocab(["b a b", "c b a"], max_size=4) == ["<S>", "</S>", "<UNK>", "b"]


# ----------------------------------------------------------------------------------------------------------------
# save_pretrained / from_pretrained / AutoTokenizer
# ----------------------------------------------------------------------------------------------------------------
def test_save_and_load_round_trip(tmp_path):
    vocab = tmp_path / "src_vocab.txt"
    vocab.write_text("<S>\n</S>\n<UNK>\nthe\ncat\n", encoding="utf-8")
    tok = ElmoTokenizer(vocab_file=str(vocab), do_split=False, model_max_length=77)
    out = tmp_path / "saved"
    tok.save_pretrained(out)
    assert (out / "vocab.txt").read_text(encoding="utf-8").split() == ["<S>", "</S>", "<UNK>", "the", "cat"]
    cfg = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert cfg["do_split"] is False and cfg["model_max_length"] == 77

    loaded = ElmoTokenizer.from_pretrained(out)
    assert loaded.vocab == tok.vocab
    assert loaded.get_vocab() == tok.get_vocab()
    assert loaded.vocab_size == 5
    assert loaded.do_split is False
    assert loaded.model_max_length == 77
    assert loaded.max_characters_per_token == 50
    assert (loaded.bos_token, loaded.eos_token, loaded.unk_token) == ("<S>", "</S>", "<UNK>")
    text = "the cat, sat"
    a = tok(text, return_token_ids=True, return_tensors="np")
    b = loaded(text, return_token_ids=True, return_tensors="np")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert b["token_ids"].tolist() == [[0, 3, 2, 2, 1]]  # "cat," is one word without splitting: unknown


def test_round_trip_of_the_fixture_vocabulary(tmp_path, fixture_vocab_file):
    tok = ElmoTokenizer(vocab_file=str(fixture_vocab_file))
    tok.save_pretrained(tmp_path)
    loaded = ElmoTokenizer.from_pretrained(tmp_path)
    assert loaded.vocab == tok.vocab
    assert loaded.unk_token_id == tok.unk_token_id and loaded.bos_token_id == tok.bos_token_id
    # saving the loaded one again gives the same file
    again = tmp_path / "again"
    loaded.save_pretrained(again)
    assert (again / "vocab.txt").read_bytes() == (tmp_path / "vocab.txt").read_bytes()


def test_custom_special_tokens_survive(tmp_path):
    tok = ElmoTokenizer(unk_token="[UNK]")
    assert tok("zzz", return_token_ids=True)["token_ids"][1] == tok.vocab["[UNK]"]
    tok.save_pretrained(tmp_path)
    loaded = ElmoTokenizer.from_pretrained(tmp_path)
    assert loaded.vocab == tok.vocab
    assert loaded("zzz", return_token_ids=True)["token_ids"] == tok("zzz", return_token_ids=True)["token_ids"]


def test_auto_tokenizer_loads_saved_folder(tmp_path):
    ElmoTokenizer(model_max_length=33).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert cfg["auto_map"]["AutoTokenizer"][0] == "tokenization_elmo.ElmoTokenizer"
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert type(tok).__name__ == "ElmoTokenizer"
    assert tok.model_max_length == 33
    assert tok("a b", return_tensors="pt")["input_ids"].shape == (1, 4, 50)


# ----------------------------------------------------------------------------------------------------------------
# pad() and the transformers data collator
# ----------------------------------------------------------------------------------------------------------------
def _examples(tokenizer):
    return [tokenizer(t) for t in ["one two three", "four", "five six"]]


def test_pad_list_of_examples(tokenizer):
    batch = tokenizer.pad(_examples(tokenizer), return_tensors="pt")
    direct = tokenizer(["one two three", "four", "five six"], padding=True, return_tensors="pt")
    assert torch.equal(batch["input_ids"], direct["input_ids"])
    assert torch.equal(batch["attention_mask"], direct["attention_mask"])
    assert batch["input_ids"].shape == (3, 5, 50)


def test_pad_left_and_multiple_of(tokenizer):
    batch = tokenizer.pad(_examples(tokenizer), padding_side="left", pad_to_multiple_of=4, return_tensors="np")
    assert batch["input_ids"].shape == (3, 8, 50)
    assert batch["attention_mask"][1].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert (batch["input_ids"][1, :5] == 0).all()
    assert batch["input_ids"][1, 5].tolist() == expected_ids([BOS])


def test_pad_dict_of_lists_with_word_labels(tokenizer):
    examples = _examples(tokenizer)
    columns = {
        "input_ids": [e["input_ids"] for e in examples],
        "attention_mask": [e["attention_mask"] for e in examples],
        "labels": [[-100, 1, 2, 3, -100], [-100, 4, -100], [-100, 5, 6, -100]],
        "sentence_label": [0, 1, 2],
    }
    batch = tokenizer.pad(columns, return_tensors="pt")
    assert batch["labels"].tolist() == [[-100, 1, 2, 3, -100], [-100, 4, -100, -100, -100],
                                        [-100, 5, 6, -100, -100]]
    assert batch["sentence_label"].tolist() == [0, 1, 2]


def test_pad_rejects_empty_list(tokenizer):
    with pytest.raises(ValueError, match="empty"):
        tokenizer.pad([])


def test_data_collator_with_padding(tokenizer):
    collator = DataCollatorWithPadding(tokenizer)
    features = [dict(e, labels=i) for i, e in enumerate(_examples(tokenizer))]
    batch = collator(features)
    assert isinstance(batch["input_ids"], torch.Tensor)
    assert batch["input_ids"].shape == (3, 5, 50)
    assert batch["attention_mask"].tolist() == [[1] * 5, [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]]
    assert batch["labels"].tolist() == [0, 1, 2]
    assert (batch["input_ids"][1, 3:] == 0).all()


def test_data_collator_output_runs_through_the_model(tokenizer):
    from conftest import tiny_model

    model = tiny_model()
    batch = DataCollatorWithPadding(tokenizer)(_examples(tokenizer))
    direct = tokenizer(["one two three", "four", "five six"], is_split_into_words=False, padding=True,
                       return_tensors="pt")
    with torch.no_grad():
        a = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        b = model(**direct).last_hidden_state
    assert torch.equal(a, b)


def test_a_batch_of_fifty_word_ids_a_row_decodes_as_words(tmp_path):
    """Rows 50 wide are character rows only when they start as one: a batch of 50 vocabulary ids a row is a batch."""
    words = [f"w{i}" for i in range(60)]
    (tmp_path / "vocab.txt").write_text("\n".join(["<S>", "</S>", "<UNK>", *words]) + "\n", encoding="utf-8")
    tok = ElmoTokenizer(vocab_file=str(tmp_path / "vocab.txt"))
    batch = [tok.convert_tokens_to_ids(words[:50]), tok.convert_tokens_to_ids(words[10:60])]
    assert tok.decode(batch) == [" ".join(words[:50]), " ".join(words[10:60])]
    rows = tok(["w1 w2"], return_tensors=None)["input_ids"][0]
    assert tok.decode(rows, skip_special_tokens=True) == "w1 w2"  # one sequence of character rows
