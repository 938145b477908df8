"""The tokenizer contract, in the style of transformers' ``TokenizerTesterMixin``: one class of checks that every
tokenizer family must pass (``TokenizerContract``), one subclass per family.

What a transformers user relies on without reading our docs: ``encode`` and ``__call__`` give the same ids,
``decode`` gives the text back, ``batch_decode`` is ``decode`` of each row, ``convert_ids_to_tokens`` inverts
``convert_tokens_to_ids``, ``tokenize`` is what the ids spell, ``pad`` (left and right) gives what padding in the
call gives, a saved tokenizer loads (directly and through ``AutoTokenizer`` with ``trust_remote_code``) and gives
the same outputs, ``return_tensors="pt"`` and ``return_special_tokens_mask`` work. The same checks run once more
under transformers 4.57, whose tokenizer internals differ, on the saved folders loaded as remote code.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizer

import hf_elmo  # noqa: F401  (registers the tokenizers, so that saved folders carry their code)
from clean_process import BLOCK_HF_ELMO, run_child
from hf_elmo import AWDLSTMTokenizer, ElmoTokenizer

TF457_PYTHON = Path(__file__).resolve().parents[1] / ".venv-tf457/bin/python"


def _rows(ids: Any) -> list:
    """Python lists of whatever a tokenizer returned (tensors, arrays or lists)."""
    return ids.tolist() if hasattr(ids, "tolist") else list(ids)


class TokenizerContract:
    """The checks. A subclass says how to build its tokenizer (``make_tokenizer``), which texts to try (``TEXTS``:
    every token of them is in the vocabulary) and what decoding them must give back (``decoded``)."""

    TEXTS: ClassVar[list[str]]

    @pytest.fixture(scope="class")
    def tokenizer(self, tmp_path_factory) -> PreTrainedTokenizer:
        return self.make_tokenizer(tmp_path_factory.mktemp("vocabulary"))

    def make_tokenizer(self, workdir: Path) -> PreTrainedTokenizer:
        """The family's tokenizer, with a vocabulary holding every token of ``TEXTS`` (``workdir`` for its files)."""
        raise NotImplementedError

    def decoded(self, text: str) -> str:
        """What ``decode(encode(text), skip_special_tokens=True)`` must give for one of ``TEXTS``."""
        raise NotImplementedError

    def is_padding(self, tokenizer: PreTrainedTokenizer, position: Any) -> bool:
        """Whether one position of ``input_ids`` holds padding."""
        return position == tokenizer.pad_token_id

    # ---- encode / __call__ -------------------------------------------------------------------------------------
    def test_encode_equals_call(self, tokenizer):
        for text in self.TEXTS:
            assert tokenizer.encode(text) == tokenizer(text)["input_ids"], text
            assert (tokenizer.encode(text, add_special_tokens=False)
                    == tokenizer(text, add_special_tokens=False)["input_ids"]), text
        batch = tokenizer(self.TEXTS)["input_ids"]
        assert batch == [tokenizer.encode(text) for text in self.TEXTS]

    def test_tokenize_is_what_the_ids_spell(self, tokenizer):
        for text in self.TEXTS:
            tokens = tokenizer.tokenize(text, add_special_tokens=False)
            assert tokens, text
            assert tokenizer.convert_ids_to_tokens(tokenizer.encode(text, add_special_tokens=False)) == tokens

    def test_convert_tokens_to_ids_and_back(self, tokenizer):
        for text in self.TEXTS:
            tokens = tokenizer.tokenize(text)
            ids = tokenizer.convert_tokens_to_ids(tokens)
            assert all(isinstance(i, int) for i in ids)
            assert tokenizer.unk_token_id not in ids, (text, tokens)  # every token of TEXTS is in the vocabulary
            assert tokenizer.convert_ids_to_tokens(ids) == tokens
            assert tokenizer.convert_ids_to_tokens(ids[0]) == tokens[0]
            assert tokenizer.convert_tokens_to_ids(tokens[0]) == ids[0]

    def test_pretokenized_input(self, tokenizer):
        for text in self.TEXTS:
            tokens = self.pretokenized(tokenizer, text)
            assert tokenizer(tokens, is_split_into_words=True)["input_ids"] == tokenizer.encode(text), text
        batch = [self.pretokenized(tokenizer, t) for t in self.TEXTS]
        assert tokenizer(batch, is_split_into_words=True, padding=True)["input_ids"] == tokenizer(
            self.TEXTS, padding=True)["input_ids"]

    def pretokenized(self, tokenizer: PreTrainedTokenizer, text: str) -> list[str]:
        """What ``is_split_into_words=True`` takes for ``text`` (the tokens ``tokenize`` gives, by default)."""
        return tokenizer.tokenize(text)

    @pytest.mark.parametrize("side", ["right", "left"])
    def test_truncation(self, tokenizer, side):
        text = max(self.TEXTS, key=lambda t: len(tokenizer.encode(t)))
        full = tokenizer.encode(text)
        kept_words = tokenizer.convert_ids_to_tokens(full, skip_special_tokens=True)
        old_side = tokenizer.truncation_side
        tokenizer.truncation_side = side
        try:
            for length in (len(full) - 1, len(full) - 3):
                cut = tokenizer(text, truncation=True, max_length=length)["input_ids"]
                assert len(cut) == length
                words = tokenizer.convert_ids_to_tokens(cut, skip_special_tokens=True)
                assert words == (kept_words[:len(words)] if side == "right" else kept_words[len(kept_words) - len(words):])
                assert len(words) < len(kept_words) or length == len(full) - 1  # (that one may cut a special)
            assert tokenizer(text, truncation=True, max_length=len(full) + 5)["input_ids"] == full
        finally:
            tokenizer.truncation_side = old_side

    def test_pickle(self, tokenizer):
        import pickle

        tokenizer(self.TEXTS)  # fills the caches, which travel with it
        self._same_outputs(tokenizer, pickle.loads(pickle.dumps(tokenizer)))

    # ---- decode / batch_decode ---------------------------------------------------------------------------------
    def test_decode_round_trip(self, tokenizer):
        for text in self.TEXTS:
            assert tokenizer.decode(tokenizer.encode(text), skip_special_tokens=True) == self.decoded(text), text
            assert tokenizer.decode(tokenizer(text, return_tensors="pt")["input_ids"][0],
                                    skip_special_tokens=True) == self.decoded(text)

    def test_decode_keeps_special_tokens_unless_skipped(self, tokenizer):
        ids = tokenizer.encode(self.TEXTS[0])
        with_specials = tokenizer.decode(ids)
        assert tokenizer.bos_token in with_specials
        assert tokenizer.bos_token not in tokenizer.decode(ids, skip_special_tokens=True)

    def test_batch_decode_is_decode_of_each(self, tokenizer):
        for side in ("right", "left"):
            batch = tokenizer(self.TEXTS, padding=True, padding_side=side, return_tensors="pt")["input_ids"]
            texts = tokenizer.batch_decode(batch, skip_special_tokens=True)
            assert texts == [self.decoded(t) for t in self.TEXTS]
            assert texts == [tokenizer.decode(row, skip_special_tokens=True) for row in batch]
            assert tokenizer.decode(batch, skip_special_tokens=True) == texts  # decode of a batch: one per row

    # ---- padding -----------------------------------------------------------------------------------------------
    @pytest.mark.parametrize("side", ["right", "left"])
    def test_padding_in_the_call(self, tokenizer, side):
        enc = tokenizer(self.TEXTS, padding=True, padding_side=side)
        width = max(len(tokenizer.encode(t)) for t in self.TEXTS)
        for text, ids, mask in zip(self.TEXTS, enc["input_ids"], enc["attention_mask"]):
            alone = tokenizer.encode(text)
            n_pad = width - len(alone)
            assert len(ids) == len(mask) == width
            real = ids[n_pad:] if side == "left" else ids[: len(alone)]
            pads = ids[:n_pad] if side == "left" else ids[len(alone):]
            assert real == alone
            assert all(self.is_padding(tokenizer, p) for p in pads)
            assert mask == ([0] * n_pad + [1] * len(alone) if side == "left" else [1] * len(alone) + [0] * n_pad)

    @pytest.mark.parametrize("side", ["right", "left"])
    def test_pad_equals_padding_in_the_call(self, tokenizer, side):
        examples = [tokenizer(t) for t in self.TEXTS]
        padded = tokenizer.pad(examples, padding_side=side, return_tensors="pt")
        direct = tokenizer(self.TEXTS, padding=True, padding_side=side, return_tensors="pt")
        assert torch.equal(padded["input_ids"], direct["input_ids"])
        assert torch.equal(padded["attention_mask"], direct["attention_mask"])
        as_lists = tokenizer.pad(examples, padding_side=side)
        assert _rows(as_lists["input_ids"]) == direct["input_ids"].tolist()
        longer = tokenizer.pad(examples, padding="max_length", max_length=direct["input_ids"].shape[1] + 3,
                               padding_side=side, return_tensors="pt")
        assert longer["attention_mask"].sum() == direct["attention_mask"].sum()
        assert longer["input_ids"].shape[1] == direct["input_ids"].shape[1] + 3

    def test_return_tensors_pt(self, tokenizer):
        lists = tokenizer(self.TEXTS, padding=True)
        tensors = tokenizer(self.TEXTS, padding=True, return_tensors="pt")
        for key in ("input_ids", "attention_mask"):
            assert isinstance(tensors[key], torch.Tensor) and tensors[key].dtype == torch.long
            assert tensors[key].tolist() == lists[key]
        one = tokenizer(self.TEXTS[0], return_tensors="pt")["input_ids"]
        assert one.shape[0] == 1 and one[0].tolist() == tokenizer.encode(self.TEXTS[0])

    def test_special_tokens_mask(self, tokenizer):
        enc = tokenizer(self.TEXTS, padding=True, return_special_tokens_mask=True)
        for ids, mask, special in zip(enc["input_ids"], enc["attention_mask"], enc["special_tokens_mask"]):
            assert len(special) == len(ids)
            assert tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True) == special
            kept = [i for i, s in zip(ids, special) if not s]
            assert tokenizer.convert_ids_to_tokens(kept) == tokenizer.convert_ids_to_tokens(ids,
                                                                                          skip_special_tokens=True)
            assert all(s == 1 for s, m in zip(special, mask) if not m)  # padding is special
        none = tokenizer(self.TEXTS[0], add_special_tokens=False, return_special_tokens_mask=True)
        assert none["special_tokens_mask"] == [0] * len(none["input_ids"])

    # ---- saving and loading ------------------------------------------------------------------------------------
    def _same_outputs(self, a: PreTrainedTokenizer, b: PreTrainedTokenizer) -> None:
        for kwargs in ({}, {"padding": True}, {"padding": True, "padding_side": "left"}):
            assert a(self.TEXTS, **kwargs).data == b(self.TEXTS, **kwargs).data, kwargs
        ids = a(self.TEXTS, padding=True)["input_ids"]
        assert a.batch_decode(ids) == b.batch_decode(ids)
        assert a.get_vocab() == b.get_vocab() and len(a) == len(b)
        assert a.all_special_tokens == b.all_special_tokens
        assert (a.pad_token_id, a.bos_token_id, a.unk_token_id) == (b.pad_token_id, b.bos_token_id, b.unk_token_id)

    def test_save_and_load_round_trip(self, tokenizer, tmp_path):
        tokenizer.save_pretrained(tmp_path)
        loaded = type(tokenizer).from_pretrained(tmp_path)
        self._same_outputs(tokenizer, loaded)
        again = tmp_path / "again"
        loaded.save_pretrained(again)
        self._same_outputs(tokenizer, type(tokenizer).from_pretrained(again))

    def test_auto_tokenizer_with_trust_remote_code(self, tokenizer, tmp_path):
        tokenizer.save_pretrained(tmp_path)
        auto = AutoTokenizer.from_pretrained(tmp_path, trust_remote_code=True)
        assert type(auto).__name__ == type(tokenizer).__name__
        self._same_outputs(tokenizer, auto)


ELMO_TEXTS = ["The cat sat on the mat.", "Don't stop, U.S. readers!", "Zoë's café (12.50 €)", "ELMo"]


class TestElmoTokenizer(TokenizerContract):
    """ELMo without a word vocabulary (as converted without ``--vocab``): ids are the words' character rows."""

    TEXTS = ELMO_TEXTS
    VOCAB = False

    def make_tokenizer(self, workdir: Path) -> ElmoTokenizer:
        if not self.VOCAB:
            return ElmoTokenizer()
        words = ElmoTokenizer.build_vocab(self.TEXTS)
        path = workdir / "vocab.txt"
        path.write_text("\n".join(words) + "\n", encoding="utf-8")
        return ElmoTokenizer(vocab_file=str(path))

    def decoded(self, text: str) -> str:
        return " ".join(ElmoTokenizer().tokenize(text))  # ELMo's words, as its tokenised training text has them

    def is_padding(self, tokenizer, position):
        return not any(position)  # a padding word is the all-zero row of character ids

    def test_convert_tokens_to_ids_and_back(self, tokenizer):
        if self.VOCAB:
            super().test_convert_tokens_to_ids_and_back(tokenizer)
        else:  # no vocabulary: the character rows are the ids that go both ways
            for text in self.TEXTS:
                tokens = tokenizer.tokenize(text)
                rows = tokenizer.convert_tokens_to_char_ids(tokens)
                assert rows == tokenizer.encode(text, add_special_tokens=False)
                assert tokenizer.convert_ids_to_tokens(rows) == tokens
            assert all(i == tokenizer.unk_token_id for i in tokenizer.convert_tokens_to_ids(["cat", "mat"]))

    def test_word_ids_offsets_and_token_ids(self, tokenizer):
        text = self.TEXTS[1]
        enc = tokenizer(text, return_offsets_mapping=True, return_token_ids=True)
        words = tokenizer.tokenize(text)
        assert enc.word_ids() == [None, *range(len(words)), None]
        assert [text[a:b] for a, b in enc["offset_mapping"][1:-1]] == words
        assert enc["offset_mapping"][0] == enc["offset_mapping"][-1] == (0, 0)
        assert enc["token_ids"] == [tokenizer.bos_token_id, *tokenizer.convert_tokens_to_ids(words),
                                    tokenizer.eos_token_id]
        split = tokenizer(words, is_split_into_words=True, return_offsets_mapping=True)
        assert split["offset_mapping"][1:-1] == [(0, len(w)) for w in words]

    def test_offsets_that_cannot_be_given_say_why(self, tokenizer):
        with pytest.raises(ValueError, match="not in the text as written"):
            tokenizer("Cafe\u0301 au lait", return_offsets_mapping=True)  # NFC turns e + accent into é

    def test_a_single_sequence_of_rows_is_not_a_batch(self, tokenizer):
        ids = tokenizer.encode(self.TEXTS[0])
        assert isinstance(tokenizer.decode(ids), str)
        assert tokenizer.pad(tokenizer(self.TEXTS[0]), padding="max_length", max_length=12)["attention_mask"] == (
            [1] * len(ids) + [0] * (12 - len(ids)))
        with pytest.raises(ValueError, match="not an ELMo character-id row"):  # starts as a row, is none
            tokenizer.decode([[259] + [1] * (tokenizer.max_characters_per_token - 1)])
        # 50 ids a row that do not start as a character row are a batch of word-id sequences
        assert isinstance(tokenizer.decode([[1] * tokenizer.max_characters_per_token]), list)


    def test_ids_go_to_prepare_for_model_not_the_call(self, tokenizer):
        rows = tokenizer.encode(self.TEXTS[0], add_special_tokens=False)
        with pytest.raises(TypeError, match="prepare_for_model"):
            tokenizer.encode(rows)
        assert tokenizer.prepare_for_model(rows)["input_ids"] == tokenizer.encode(self.TEXTS[0])


class TestElmoTokenizerWithVocabulary(TestElmoTokenizer):
    """ELMo with the word vocabulary its LM head predicts: ``convert_tokens_to_ids`` gives the word ids."""

    VOCAB = True


AWD_TEXTS = ["The world is big, isn't it?", "Hello there! The WORLD is round!!!", "I'm (really) happy: 3 cats.",
             "so so so much", 'He said "yes" -- a well-known rule.', "First line\n\nsecond line"]


class TestAWDLSTMTokenizer(TokenizerContract):
    """AWD-LSTM / ULMFiT: fastai's tokens; decoding undoes fastai's rules and spaces the words as text."""

    TEXTS = AWD_TEXTS

    def make_tokenizer(self, workdir: Path) -> AWDLSTMTokenizer:
        return AWDLSTMTokenizer.from_texts(self.TEXTS, min_freq=1)

    def decoded(self, text: str) -> str:
        return text  # every rule undone, every space where the text had it

    def test_decode_undoes_each_fastai_rule(self, tokenizer):
        cases = {
            ("xxbos", "xxmaj", "the", "world"): "The world",  # capitalised
            ("xxbos", "the", "xxup", "world"): "the WORLD",  # upper case
            ("xxbos", "round", "xxrep", "3", "!"): "round!!!",  # a character repeated
            ("xxbos", "xxwrep", "3", "so", "much"): "so so so much",  # a word repeated
            ("xxbos", "xxmaj", "xxunk", "is"): "is",  # a rule never applies to a special token
            ("xxbos", "big", "xxrep"): "big",  # a rule without its argument is dropped
        }
        for tokens, text in cases.items():
            ids = tokenizer.convert_tokens_to_ids(list(tokens))
            assert tokenizer.decode(ids, skip_special_tokens=True) == text, tokens
            assert tokenizer.convert_tokens_to_string(list(tokens)) == text
        raw = tokenizer.encode("The WORLD")
        assert tokenizer.decode(raw) == "xxbos xxmaj the xxup world"  # fastai's tokens, as the model reads them

    def test_offsets_are_refused_with_the_reason(self, tokenizer):
        for text in (self.TEXTS[0], self.TEXTS[:2]):
            with pytest.raises(NotImplementedError, match="rewrite the text"):
                tokenizer(text, return_offsets_mapping=True)

    def test_a_continuation_decodes_after_its_prompt(self, tokenizer):
        # transformers 5's text-generation pipeline writes prompt + decode(new ids), 4.x cuts decode(all ids) at
        # len(decode(prompt ids)): both must read as the whole text does, wherever a prompt ends with a word (what
        # a continuation cannot know: that the prompt left a bracket or a quote open)
        cuts = 0
        for text in self.TEXTS:
            ids = tokenizer.encode(text)
            whole = tokenizer.decode(ids, skip_special_tokens=True)
            tokens = tokenizer.convert_ids_to_tokens(ids)
            for cut in range(2, len(ids)):
                if (not tokens[cut - 1].isalpha() or tokens[cut - 1] in tokenizer.all_special_tokens
                        or tokens[cut - 2] in ("xxrep", "xxwrep") or tokens[cut] in '"\''):
                    continue
                cuts += 1
                prompt = tokenizer.decode(ids[:cut], skip_special_tokens=True)
                rest = tokenizer.decode(ids[cut:], skip_special_tokens=True)
                assert whole.startswith(prompt), (text, cut)
                assert prompt + rest == whole, (text, cut, prompt, rest)
        assert cuts > 20


# ------------------------------------------------------------------------------------------------------------------
# The same checks under transformers 4.57, on the saved folders loaded as remote code
# ------------------------------------------------------------------------------------------------------------------
CHILD = BLOCK_HF_ELMO + textwrap.dedent(
    r'''
    import transformers
    from transformers import AutoTokenizer

    spec = json.loads(Path(sys.argv[1]).read_text())
    report = {"transformers": transformers.__version__, "families": {}}
    for name, job in spec.items():
        tok = AutoTokenizer.from_pretrained(job["folder"], trust_remote_code=True)
        texts = job["texts"]
        report["families"][name] = {
            "module": type(tok).__module__,
            "encode": [tok.encode(t) for t in texts],
            "call": tok(texts)["input_ids"],
            "right": tok(texts, padding=True, return_special_tokens_mask=True).data,
            "left": tok(texts, padding=True, padding_side="left").data,
            "pad": tok.pad([tok(t) for t in texts]).data,
            "pt": tok(texts, padding=True, return_tensors="pt")["input_ids"].tolist(),
            "decoded": tok.batch_decode(tok(texts, padding=True)["input_ids"], skip_special_tokens=True),
            "decode_one": [tok.decode(tok.encode(t), skip_special_tokens=True) for t in texts],
            "tokens": [tok.tokenize(t) for t in texts],
        }
        if name == "TestAWDLSTMTokenizer":
            try:
                tok(texts, return_offsets_mapping=True)
            except NotImplementedError as e:
                report["families"][name]["offsets"] = str(e)
    report["leaked"] = sorted(m for m in sys.modules if m == "hf_elmo" or m.startswith("hf_elmo."))
    print(json.dumps(report))
    '''
)

CONTRACT_FAMILIES: list[type[TokenizerContract]] = [TestElmoTokenizer, TestElmoTokenizerWithVocabulary,
                                                    TestAWDLSTMTokenizer]


def test_the_contract_holds_under_transformers_4_57(tmp_path):
    if not TF457_PYTHON.exists():
        pytest.skip(".venv-tf457 not found: the set-up script (.ci/setup-tests) builds the transformers 4.57 env")
    spec, here = {}, {}
    for family in CONTRACT_FAMILIES:
        contract = family()
        folder = tmp_path / family.__name__
        tokenizer = contract.make_tokenizer(tmp_path)
        tokenizer.save_pretrained(folder)
        spec[family.__name__] = {"folder": str(folder), "texts": contract.TEXTS}
        here[family.__name__] = (tokenizer, contract)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    report = run_child(TF457_PYTHON, CHILD, tmp_path, str(tmp_path / "spec.json"))
    assert report["transformers"].startswith("4.57"), report["transformers"]
    assert report["leaked"] == []
    for name, got in report["families"].items():
        tokenizer, contract = here[name]
        texts = contract.TEXTS
        assert got["module"].startswith("transformers_modules."), got["module"]
        assert got["encode"] == got["call"] == [tokenizer.encode(t) for t in texts]
        assert got["right"] == _jsonable(tokenizer(texts, padding=True, return_special_tokens_mask=True).data)
        assert got["left"] == _jsonable(tokenizer(texts, padding=True, padding_side="left").data)
        assert got["pad"]["input_ids"] == got["pt"] == tokenizer(texts, padding=True)["input_ids"]
        assert got["decoded"] == got["decode_one"] == [contract.decoded(t) for t in texts]
        assert got["tokens"] == [tokenizer.tokenize(t) for t in texts]
        if name == "TestAWDLSTMTokenizer":
            assert "rewrite the text" in got["offsets"]


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))
