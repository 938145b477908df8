"""AWDLSTMTokenizer: fastai 2.8's default text processing (rules + spaCy's English tokenizer) without fastai or spaCy.

Parity with fastai is checked on the fixture made by fastai 2.8.12 (every text: tokens and ids; the vocabulary
rebuilt from the texts); the word splitter is also checked against outputs of spaCy 3.8's English tokenizer written
out below (spaCy itself is never imported).
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoConfig, AutoTokenizer, DataCollatorWithPadding, PretrainedConfig

from hf_elmo.conversion.safe_pickle import read_itos_pickle
from hf_elmo.models.awd_lstm import AWDLSTMTokenizer
from hf_elmo.models.awd_lstm import tokenization_awd_lstm as tok_mod
from hf_elmo.models.awd_lstm.tokenization_awd_lstm import (
    SPECIAL_TOKENS,
    EnglishWordSplitter,
    fastai_tokenize,
    fix_html,
    lowercase,
    make_vocab,
    replace_all_caps,
    replace_maj,
    replace_rep,
    replace_wrep,
    rm_useless_spaces,
    spec_add_spaces,
)

FASTAI_FIXTURE = Path(__file__).resolve().parents[1].parent / "shared/fixtures/awd_lstm/fastai"
FIXTURE_SKIP = f"{FASTAI_FIXTURE} not found: the fastai reference fixtures live beside the repository"


def _fixture() -> dict:
    if not (FASTAI_FIXTURE / "tokenization.json").is_file() or not (FASTAI_FIXTURE / "vocab.pkl").is_file():
        pytest.skip(FIXTURE_SKIP)
    return json.loads((FASTAI_FIXTURE / "tokenization.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def fixture_data() -> dict:
    return _fixture()


@pytest.fixture(scope="module")
def fastai_itos() -> list[str]:
    _fixture()
    return read_itos_pickle(FASTAI_FIXTURE / "vocab.pkl")


@pytest.fixture(scope="module")
def tokenizer(fastai_itos) -> AWDLSTMTokenizer:
    return AWDLSTMTokenizer(itos=fastai_itos)


@pytest.fixture(scope="module")
def small_tokenizer() -> AWDLSTMTokenizer:
    texts = ["Hello world. Hello there!", "The world is big, the world is round.", "Hello again, world."]
    return AWDLSTMTokenizer.from_texts(texts, min_freq=1)


# ----------------------------------------------------------------------------------------------------------------
# Parity with fastai 2.8.12 (the fixture)
# ----------------------------------------------------------------------------------------------------------------
def test_fixture_every_text_tokens_and_ids(fixture_data, tokenizer):
    texts, tokens, ids = fixture_data["texts"], fixture_data["tokens"], fixture_data["ids"]
    assert len(texts) == len(tokens) == len(ids) > 0
    for text, want_tokens, want_ids in zip(texts, tokens, ids):
        assert tokenizer.tokenize(text) == want_tokens, text
        assert tokenizer(text)["input_ids"] == want_ids, text
        assert tokenizer.convert_tokens_to_ids(want_tokens) == want_ids, text


def test_fixture_batch_ids_padded(fixture_data, tokenizer):
    texts, ids = fixture_data["texts"], fixture_data["ids"]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    width = max(len(i) for i in ids)
    assert enc["input_ids"].shape == (len(texts), width)
    for row, mask, want in zip(enc["input_ids"].tolist(), enc["attention_mask"].tolist(), ids):
        assert row == want + [1] * (width - len(want))  # xxpad is id 1
        assert mask == [1] * len(want) + [0] * (width - len(want))


def test_fixture_vocab_rebuilt_from_texts(fixture_data, fastai_itos):
    # The fixture's vocabulary was built by fastai from exactly these texts, every token kept (min_freq=1):
    # 9 special tokens + 381 tokens = 390, padded with 2 "xxfake" to 392.
    assert len(fastai_itos) == 392 and fastai_itos[-2:] == ["xxfake", "xxfake"]
    assert AWDLSTMTokenizer.build_vocab(fixture_data["texts"], min_freq=1) == fastai_itos
    # fastai's default min_freq=3 keeps the frequent ones, in the same order
    itos3 = AWDLSTMTokenizer.build_vocab(fixture_data["texts"])
    assert itos3[:9] == list(SPECIAL_TOKENS)
    kept = [t for t in itos3 if t != "xxfake"]
    assert kept == [t for t in fastai_itos if t in set(kept)]
    assert len(itos3) % 8 == 0


def test_fixture_vocab_pickle_and_json_agree(fastai_itos, tmp_path):
    tok = AWDLSTMTokenizer(itos=fastai_itos)
    tok.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8")) == fastai_itos
    assert AWDLSTMTokenizer(vocab_file=str(tmp_path / "vocab.json")).itos == fastai_itos


def test_special_token_ids(tokenizer):
    assert tokenizer.unk_token == "xxunk" and tokenizer.unk_token_id == 0
    assert tokenizer.pad_token == "xxpad" and tokenizer.pad_token_id == 1
    assert tokenizer.bos_token == "xxbos" and tokenizer.bos_token_id == 2
    assert tokenizer.eos_token == "xxeos" and tokenizer.eos_token_id == 3
    assert set(SPECIAL_TOKENS) <= set(tokenizer.all_special_tokens)
    assert len(tokenizer) == tokenizer.vocab_size == 392


# ----------------------------------------------------------------------------------------------------------------
# fastai's rules, one by one
# ----------------------------------------------------------------------------------------------------------------
def test_fix_html():
    assert fix_html("a<br />b") == "a\nb"
    assert fix_html("&lt;b&gt; caf&eacute;") == "<b> café"
    assert fix_html("&quot;x&quot;") == "&'x&'"  # "quot;" → "'" before unescaping, as in fastai
    assert fix_html("it#39;s #36;5 a nbsp;b") == "it's $5 a  b"
    assert fix_html("x &amp; y") == "x && y"  # fastai replaces "amp;" before unescaping: "&amp;" → "&&"
    assert fix_html("wait...") == "wait …"
    assert fix_html("a\\nb") == "a\nb"
    assert fix_html("an <unk> word") == "an xxunk word"
    assert fix_html("3 @.@ 5 well @-@ known 1 @,@ 000") == "3.5 well-known 1 @,@ 000"  # (no rule for @,@)


def test_replace_rep_and_wrep():
    assert replace_rep("coooool") == "c xxrep 5 o l"
    assert replace_rep("!!!!") == " xxrep 4 ! "
    assert replace_rep("cool") == "cool"
    assert replace_wrep("the the the the end") == " xxwrep 4 the  end"
    assert replace_wrep("so so much") == "so so much"  # two repeats are left alone
    assert fastai_tokenize("coooool") == ["xxbos", "c", "xxrep", "5", "o", "l"]
    assert fastai_tokenize("the the the the") == ["xxbos", "xxwrep", "4", "the"]


def test_caps_rules():
    assert replace_all_caps("HELLO world") == "xxup hello world"
    assert replace_all_caps("I am") == "i am"  # one letter: lower-cased, no xxup
    assert replace_maj("Hello World") == "xxmaj hello xxmaj world"
    assert replace_maj("A b") == "a b"
    assert fastai_tokenize("HELLO") == ["xxbos", "xxup", "hello"]
    assert fastai_tokenize("Hello") == ["xxbos", "xxmaj", "hello"]
    # only ASCII capitals count, as in fastai's regexes
    assert fastai_tokenize("Émile") == ["xxbos", "émile"]


def test_space_rules_and_lowercase():
    assert spec_add_spaces("a/b#c\\d") == "a / b # c \\ d"
    assert rm_useless_spaces("a   b\t\tc") == "a b\t\tc"
    assert lowercase("  Hello  ") == "xxbos hello"
    assert lowercase("Hi", add_bos=False, add_eos=True) == "hi xxeos"


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("I LOVED this movie!!! It's sooooo GOOD. The the the the end.",
         ["xxbos", "i", "xxup", "loved", "this", "movie", "xxrep", "3", "!", "xxmaj", "it", "'s", "s", "xxrep", "5", "o",
          "xxup", "good", ".", "xxmaj", "the", "xxwrep", "3", "the", "end", "."]),
        ("<br /><br />Line one.<br /> Line two &lt;b&gt;bold&lt;/b&gt; &quot;q&quot; #39;s",
         ["xxbos", "xxmaj", "line", "one", ".", "\n ", "xxmaj", "line", "two", "<", "b", ">", "bold", "<", "/", "b",
          ">", "&", "'", "q", "&", "'", "'s"]),
        ("Visit https://www.example.com/a/b#frag or email ME@EXAMPLE.COM",
         ["xxbos", "xxmaj", "visit", "https", ":", "/", "/", "xxrep", "3", "w", ".example.com", "/", "a", "/", "b", "#",
          "frag", "or", "email", "xxup", "me@example.com"]),
        ("He said: \"Don't\"... then left\u2014quietly. NASA's U.S.-based team",
         ["xxbos", "xxmaj", "he", "said", ":", '"', "do", "n't", '"', "…", "then", "left", "\u2014", "quietly", ".",
          "nasa", "'s", "u.s.-based", "team"]),
        ("  \t Tabs\tand\nnewlines\n\n  ", ["xxbos", "xxmaj", "tabs", "\t", "and", "\n", "newlines"]),
        ("McDonald's iPhone OK A I x.Y", ["xxbos", "mcdonald", "'s", "iphone", "xxup", "ok", "a", "i", "x.y"]),
    ],
)
def test_whole_pipeline_like_fastai(text, tokens):
    # expected tokens: fastai 2.8's rules + spaCy 3.8's English tokenizer on the same texts
    assert fastai_tokenize(text) == tokens


def test_replace_space_post_rule():
    text = "one<br /> two"
    assert fastai_tokenize(text) == ["xxbos", "one", "\n ", "two"]
    assert fastai_tokenize(text, post_rules=True) == ["xxbos", "one", "\n\u2581", "two"]
    tok = AWDLSTMTokenizer.from_texts([text], min_freq=1, replace_space=True)
    assert "\n\u2581" in tok.itos and tok.tokenize(text)[2] == "\n\u2581"


# ----------------------------------------------------------------------------------------------------------------
# The word splitter against spaCy's English tokenizer (outputs of spaCy 3.8, written out)
# ----------------------------------------------------------------------------------------------------------------
SPACY_CASES = [
    ("don't", ["do", "n't"]),
    ("i'm gonna", ["i", "'m", "gon", "na"]),
    ("we'll've", ["we", "'ll", "'ve"]),
    ("can't stop, won't stop", ["ca", "n't", "stop", ",", "wo", "n't", "stop"]),
    ("cannot", ["can", "not"]),
    ("y'all", ["y'", "all"]),
    ("it's its", ["it", "'s", "its"]),
    ("ma'am o'clock", ["ma'am", "o'clock"]),
    ("don\u2019t", ["do", "n\u2019t"]),
    ("u.s. ms. mr. dr. e.g. i.e. a.m. 5pm 10a.m.",
     ["u.s", ".", "ms", ".", "mr", ".", "dr", ".", "e.g.", "i.e.", "a.m.", "5", "pm", "10", "a.m."]),
    ("U.S. Ms. Mr. Dr. Calif. N.Y. Ph.D.", ["U.S.", "Ms.", "Mr.", "Dr.", "Calif.", "N.Y.", "Ph.D."]),
    ("the u.s.a. and st. louis", ["the", "u.s.a", ".", "and", "st", ".", "louis"]),
    ("3.14 1,000,000 $5.99 5$ 10km 20°c. 50% +5 5+3 2-3 -4",
     ["3.14", "1,000,000", "$", "5.99", "5", "$", "10", "km", "20", "°", "c", ".", "50", "%", "+5", "5", "+", "3",
      "2", "-", "3", "-4"]),
    ("well-known mid-october e-mail x--y a\u2014b 6-3",
     ["well", "-", "known", "mid", "-", "october", "e", "-", "mail", "x", "--", "y", "a", "\u2014", "b", "6", "-", "3"]),
    ("\"quoted\" 'single' «guillemets» \u201ccurly\u201d (brackets) [square] {curly}",
     ['"', "quoted", '"', "'", "single", "'", "«", "guillemets", "»", "\u201c", "curly", "\u201d", "(", "brackets",
      ")", "[", "square", "]", "{", "curly", "}"]),
    ("wait... what?! no!!! …really …… yes?!?",
     ["wait", "...", "what", "?", "!", "no", "!", "!", "!", "…", "really", "…", "…", "yes", "?", "!", "?"]),
    ("hello:) :-( <3 ^_^ (:", ["hello", ":)", ":-(", "<3", "^_^", "(:"]),
    ("a : ) b", ["a", ":", ")", "b"]),
    ("x(a.m.)", ["x(a.m", ".", ")"]),
    ("http://example.com/page?x=1 www.google.com foo.bar.org user@mail.com 192.168.0.1 8.8.8.8",
     ["http://example.com/page?x=1", "www.google.com", "foo.bar.org", "user@mail.com", "192.168.0.1", "8.8.8.8"]),
    ("a\nb a\n b a  b a \t b\u00a0c", ["a", "\n", "b", "a", "\n ", "b", "a", " ", "b", "a", "\t ", "b", "\u00a0", "c"]),
    ("hello.world hello.World and,or a/b a=b a<b",
     ["hello.world", "hello", ".", "World", "and", ",", "or", "a", "/", "b", "a", "=", "b", "a", "<", "b"]),
    ("c++ and/or w/o 'cause 'bout", ["c++", "and/or", "w/o", "'cause", "'bout"]),
    ("🍮 café 日本語 emoji😀here ©2020 °f.", ["🍮", "café", "日本語", "emoji", "😀", "here", "©", "2020", "°", "f", "."]),
]


@pytest.mark.parametrize("text, tokens", SPACY_CASES)
def test_word_splitter_matches_spacy(text, tokens):
    assert EnglishWordSplitter(SPECIAL_TOKENS)(text) == tokens


def test_word_splitter_special_tokens_stay_whole():
    split = EnglishWordSplitter(SPECIAL_TOKENS)
    assert split("xxbos xxmaj hello xxup xxunk") == ["xxbos", "xxmaj", "hello", "xxup", "xxunk"]
    assert split("") == []
    assert split(" a") == [" ", "a"]


@pytest.mark.parametrize("module", ["tokenization_awd_lstm.py", "english_splitter.py"])
def test_module_is_self_contained(module):
    # ships to the Hub as remote code: only the standard library, transformers, torch, numpy and its siblings
    tree = ast.parse((Path(tok_mod.__file__).parent / module).read_text(encoding="utf-8"))
    imported, siblings = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                imported.add(node.module.split(".")[0])
            else:
                siblings.add(node.module)
    # sentencepiece only for a SentencePiece tokenizer, imported inside a try (see tests/test_imports.py)
    assert imported <= {"__future__", "html", "json", "os", "re", "collections", "typing", "pathlib", "tempfile",
                        "transformers", "torch", "numpy", "sentencepiece"}, imported
    assert siblings <= {"english_splitter"}, siblings


def test_the_splitter_is_a_sibling_module():
    # the English splitter is its own module, and the tokenizer uses it from there
    assert EnglishWordSplitter.__module__ == "hf_elmo.models.awd_lstm.english_splitter"
    assert "class EnglishWordSplitter" not in Path(tok_mod.__file__).read_text(encoding="utf-8")


# ----------------------------------------------------------------------------------------------------------------
# Vocabulary building (fastai's make_vocab)
# ----------------------------------------------------------------------------------------------------------------
def test_make_vocab_like_fastai():
    count = Counter(["b", "a", "a", "b", "c", "c", "c", "d", "xxmaj", "xxmaj", "xxmaj", "xxmaj"])
    # falling frequency, ties in first-seen order ("b" before "a"), specials first, "d" below min_freq
    vocab = make_vocab(count, min_freq=2)
    assert vocab[:9] == list(SPECIAL_TOKENS)
    assert vocab[9:12] == ["c", "b", "a"]
    assert vocab[12:] == ["xxfake"] * 4 and len(vocab) == 16
    # a length already a multiple of 8 still gets 8 "xxfake", as fastai does
    count8 = Counter({f"w{i}": 5 for i in range(7)})
    assert make_vocab(count8)[16:] == ["xxfake"] * 8
    # max_vocab caps the kept tokens (counted before the specials are put in front)
    capped = make_vocab(Counter({f"w{i}": 10 - i for i in range(10)}), max_vocab=12)
    assert capped[:12] == list(SPECIAL_TOKENS) + ["w0", "w1", "w2"] and set(capped[12:]) == {"xxfake"}


def test_build_vocab_min_freq_and_from_texts():
    texts = ["the cat", "the dog", "the cat sat"]
    itos = AWDLSTMTokenizer.build_vocab(texts, min_freq=2)
    assert itos[:11] == list(SPECIAL_TOKENS) + ["the", "cat"]
    assert "dog" not in itos and "sat" not in itos
    tok = AWDLSTMTokenizer.from_texts(texts, min_freq=2)
    assert tok.itos == itos
    assert tok.tokenize("The dog") == ["xxbos", "xxmaj", "the", "dog"]
    assert tok("The dog")["input_ids"] == [2, 8, 9, 0]
    with pytest.raises(TypeError):
        AWDLSTMTokenizer.build_vocab("one text")


# ----------------------------------------------------------------------------------------------------------------
# transformers API
# ----------------------------------------------------------------------------------------------------------------
def test_unknown_words_and_fake_are_unk(small_tokenizer):
    ids = small_tokenizer("hello zebra")["input_ids"]
    assert ids == [2, small_tokenizer.convert_tokens_to_ids("hello"), 0]
    assert small_tokenizer.convert_tokens_to_ids(["zebra", "xxfake", "xxunk"]) == [0, 0, 0]
    assert small_tokenizer.convert_ids_to_tokens([0, 1, 2]) == ["xxunk", "xxpad", "xxbos"]


def test_empty_document(small_tokenizer):
    assert small_tokenizer.tokenize("") == ["xxbos"]
    assert small_tokenizer("")["input_ids"] == [2]
    assert small_tokenizer("   \n ")["input_ids"] == [2]


def test_add_special_tokens_false_drops_bos(small_tokenizer):
    assert small_tokenizer.tokenize("Hello", add_special_tokens=False) == ["xxmaj", "hello"]
    ids = small_tokenizer.convert_tokens_to_ids(["xxmaj", "hello"])
    assert small_tokenizer("Hello", add_special_tokens=False)["input_ids"] == ids
    assert small_tokenizer(["Hello", "Hello"], add_special_tokens=False)["input_ids"] == [ids, ids]


def test_padding_truncation_tensors(small_tokenizer):
    texts = ["Hello world.", "The world is big, the world is round."]
    lens = [len(small_tokenizer.tokenize(t)) for t in texts]
    right = small_tokenizer(texts, padding=True, return_tensors="pt")
    assert isinstance(right["input_ids"], torch.Tensor) and right["input_ids"].shape == (2, max(lens))
    assert right["input_ids"][0, lens[0]:].tolist() == [1] * (max(lens) - lens[0])
    assert right["attention_mask"].sum(1).tolist() == lens
    left = small_tokenizer(texts, padding=True, padding_side="left", return_tensors="np")
    assert isinstance(left["input_ids"], np.ndarray)
    assert left["input_ids"][0, : max(lens) - lens[0]].tolist() == [1] * (max(lens) - lens[0])
    assert left["input_ids"][0, -lens[0]:].tolist() == right["input_ids"][0, : lens[0]].tolist()
    assert left["attention_mask"][0].tolist() == [0] * (max(lens) - lens[0]) + [1] * lens[0]
    fixed = small_tokenizer(texts, padding="max_length", truncation=True, max_length=6)
    assert [len(r) for r in fixed["input_ids"]] == [6, 6]
    assert fixed["input_ids"][1] == small_tokenizer(texts[1])["input_ids"][:6]  # xxbos kept, the end cut
    assert fixed["input_ids"][1][0] == 2


def test_data_collator_with_padding(small_tokenizer):
    features = [small_tokenizer(t) for t in ["Hello world.", "Hello there, the world is round."]]
    batch = DataCollatorWithPadding(small_tokenizer, return_tensors="pt")(features)
    n = len(features[1]["input_ids"])
    assert batch["input_ids"].shape == (2, n)
    assert batch["input_ids"][0].tolist() == features[0]["input_ids"] + [1] * (n - len(features[0]["input_ids"]))
    assert batch["attention_mask"][0].tolist() == [1] * len(features[0]["input_ids"]) + [0] * (
        n - len(features[0]["input_ids"]))


def test_decode_and_pre_split_tokens(small_tokenizer):
    ids = small_tokenizer("Hello world.")["input_ids"]
    assert small_tokenizer.decode(ids) == "xxbos xxmaj hello world ."
    assert small_tokenizer.decode(ids, skip_special_tokens=True) == "Hello world."  # xxmaj undone, text spacing
    # a list of tokens is taken as fastai tokens and only numericalised, as fastai's Tokenizer passes lists through
    hello = small_tokenizer.convert_tokens_to_ids("hello")
    assert small_tokenizer(["xxbos", "hello", "zebra"], is_split_into_words=True)["input_ids"] == [2, hello, 0]
    batch = small_tokenizer([["xxbos", "hello"], ["zebra"]], is_split_into_words=True)
    assert batch["input_ids"] == [[2, hello], [0]]


def test_save_load_round_trip_and_auto_tokenizer(small_tokenizer, tmp_path):
    small_tokenizer.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert saved == small_tokenizer.itos
    loaded = AWDLSTMTokenizer.from_pretrained(tmp_path)
    text = "Hello there, the WORLD is round!!!"
    assert loaded.itos == small_tokenizer.itos
    assert loaded(text)["input_ids"] == small_tokenizer(text)["input_ids"]
    assert loaded.pad_token_id == 1 and loaded.unk_token_id == 0 and loaded.bos_token_id == 2

    class _TokTestConfig(PretrainedConfig):
        model_type = "awd_lstm_tokenizer_test"

    AutoConfig.register(_TokTestConfig.model_type, _TokTestConfig, exist_ok=True)
    AutoTokenizer.register(_TokTestConfig, slow_tokenizer_class=AWDLSTMTokenizer, exist_ok=True)
    auto = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(auto, AWDLSTMTokenizer)
    assert auto(text)["input_ids"] == small_tokenizer(text)["input_ids"]


TF457_PYTHON = Path(__file__).resolve().parents[1] / ".venv-tf457/bin/python"


def test_saved_tokenizer_loads_as_remote_code_with_transformers_4_57(small_tokenizer, tmp_path):
    """The saved folder carries tokenization_awd_lstm.py: it loads with trust_remote_code where hf_elmo is absent."""
    if not TF457_PYTHON.exists():
        pytest.skip(".venv-tf457 not found: the set-up script builds the transformers 4.57 environment")
    import hf_elmo  # noqa: F401  (registers the tokenizer for the Auto classes, so the folder carries its code)

    small_tokenizer.save_pretrained(tmp_path)
    assert (tmp_path / "tokenization_awd_lstm.py").is_file() and (tmp_path / "english_splitter.py").is_file()
    texts = ["Hello there, the WORLD is round!!!", "", "x"]
    script = (
        "import json, sys\n"
        "sys.modules['hf_elmo'] = None\n"
        "import transformers\n"
        "from transformers import AutoTokenizer\n"
        f"tok = AutoTokenizer.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)\n"
        f"enc = tok({texts!r}, padding=True)\n"
        "print(json.dumps({'v': transformers.__version__, 'ids': enc['input_ids'], 'mask': enc['attention_mask'],\n"
        "                  'tokens': tok.tokenize('Hello there'), 'len': len(tok)}))\n"
    )
    done = subprocess.run([str(TF457_PYTHON), "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["v"].startswith("4.57"), report["v"]
    want = small_tokenizer(texts, padding=True)
    assert report["ids"] == want["input_ids"] and report["mask"] == want["attention_mask"]
    assert report["tokens"] == small_tokenizer.tokenize("Hello there") and report["len"] == len(small_tokenizer)


def test_vocab_with_whitespace_tokens_round_trips(tmp_path):
    tok = AWDLSTMTokenizer.from_texts(["a\n\nb", "a<br /> b\tc"], min_freq=1)
    assert {"\n\n", "\n ", "\t"} <= set(tok.itos)
    tok.save_pretrained(tmp_path)
    assert AWDLSTMTokenizer.from_pretrained(tmp_path).itos == tok.itos


def test_bad_vocab_files(tmp_path):
    bad = tmp_path / "vocab.json"
    bad.write_text('{"a": 1}', encoding="utf-8")
    with pytest.raises(ValueError, match="JSON list of strings"):
        AWDLSTMTokenizer(vocab_file=str(bad))
    with pytest.raises(FileNotFoundError):
        AWDLSTMTokenizer(vocab_file=str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="strings only"):
        AWDLSTMTokenizer(itos=["xxunk", 3])


def test_added_tokens_get_ids_after_the_vocab(fastai_itos):
    tok = AWDLSTMTokenizer(itos=fastai_itos)  # ends with two "xxfake"
    assert tok.add_tokens(["brandnewtoken"]) == 1
    assert tok.convert_tokens_to_ids("brandnewtoken") == 392 and len(tok) == 393


# ----------------------------------------------------------------------------------------------------------------
# Reading fastai's vocabulary pickles safely
# ----------------------------------------------------------------------------------------------------------------
class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_read_itos_pickle_plain(tmp_path):
    path = tmp_path / "itos.pkl"
    path.write_bytes(pickle.dumps(["xxunk", "xxpad", "the"]))
    assert read_itos_pickle(path) == ["xxunk", "xxpad", "the"]
    path.write_bytes(pickle.dumps({"itos": ["xxunk", "a"], "other": 3}, protocol=2))
    assert read_itos_pickle(str(path)) == ["xxunk", "a"]


def test_read_itos_pickle_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(["xxunk", _Exploit(str(marker))]))  # built, never loaded with pickle.load
    with pytest.raises(ValueError, match="not a plain vocabulary") as e:
        read_itos_pickle(path)
    assert str(path) in str(e.value) and "pickle is code" in str(e.value)
    assert not marker.exists()
    # any class at all is refused, harmless ones too
    path.write_bytes(pickle.dumps(Counter({"a": 1})))
    with pytest.raises(ValueError, match="collections.Counter"):
        read_itos_pickle(path)


def test_read_itos_pickle_refuses_non_strings(tmp_path):
    path = tmp_path / "bad.pkl"
    for obj in (["xxunk", 5], ["a", {"b"}], {"stoi": {"a": 0}}, "just a string", []):
        path.write_bytes(pickle.dumps(obj))
        with pytest.raises(ValueError, match="not a plain vocabulary") as e:
            read_itos_pickle(path)
        assert str(path) in str(e.value)
    path.write_bytes(b"\x80\x04\x95garbage")
    with pytest.raises(ValueError, match="not a plain vocabulary"):
        read_itos_pickle(path)


# ----------------------------------------------------------------------------------------------------------------
# Robustness
# ----------------------------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80))
def test_random_unicode_no_crash_ids_in_range(small_tokenizer, text):
    tokens = small_tokenizer.tokenize(text)
    assert tokens[0] == "xxbos" and all(isinstance(t, str) and t for t in tokens)
    ids = small_tokenizer(text)["input_ids"]
    assert len(ids) == len(tokens)
    assert all(0 <= i < small_tokenizer.vocab_size for i in ids)
