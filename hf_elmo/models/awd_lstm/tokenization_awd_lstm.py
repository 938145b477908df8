"""Tokenizer of AWD-LSTM / ULMFiT: fastai's default text processing, reproduced without fastai or spaCy.

fastai 2.x tokenises text with ``Tokenizer(WordTokenizer())``: a chain of string rules (``fix_html``, ``replace_rep``,
``replace_wrep``, ``spec_add_spaces``, ``rm_useless_spaces``, ``replace_all_caps``, ``replace_maj``, ``lowercase``,
the last one also putting ``xxbos`` in front), then spaCy's English tokenizer (``spacy.blank("en")`` with fastai's
special tokens added as special cases). ``Numericalize`` then maps the tokens through the vocabulary (``itos``),
unknown tokens to ``xxunk`` (id 0).

This module does the same with the standard library only: the fastai rules are re-implemented one by one, and
its sibling ``english_splitter.py`` (``EnglishWordSplitter``) implements spaCy's tokenizer algorithm with the
punctuation rules and tokenizer exceptions of spaCy 3's English language data, so that a vocabulary trained with
fastai gives the same ids.

fastai's other tokenizer, ``SentencePieceTokenizer`` (MultiFiT and the community ULMFiT models), runs the same rules
and then a SentencePiece model instead of the word splitter; ``AWDLSTMTokenizer(spm_file=...)`` does the same with the
``sentencepiece`` package (imported only then). Its ids are fastai's too: the index of the piece in fastai's
vocabulary (built from piece counts, see ``make_vocab``), not SentencePiece's own ids.
"""

from __future__ import annotations

import html
import json
import os
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

import transformers
from transformers import PreTrainedTokenizer

from .english_splitter import EnglishWordSplitter

# transformers 5 names the list of extra special tokens "extra_special_tokens"; 4.x calls it
# "additional_special_tokens" (and has a dict-valued "extra_special_tokens" of its own)
_EXTRA_SPECIALS_KWARG = (
    "extra_special_tokens" if int(transformers.__version__.split(".")[0]) >= 5 else "additional_special_tokens"
)

VOCAB_FILES_NAMES = {"vocab_file": "vocab.json", "spm_file": "spm.model"}

# fastai's special tokens, in fastai's order (``defaults.text_spec_tok``): a fastai vocabulary starts with them.
UNK, PAD, BOS, EOS, FLD, TK_REP, TK_WREP, TK_UP, TK_MAJ = (
    "xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxrep", "xxwrep", "xxup", "xxmaj"
)
SPECIAL_TOKENS = (UNK, PAD, BOS, EOS, FLD, TK_REP, TK_WREP, TK_UP, TK_MAJ)
FAKE_TOKEN = "xxfake"  # fastai pads its vocabularies with it to a multiple of 8
SPIECE = "\u2581"  # SentencePiece's word-boundary mark ("▁")


# ----------------------------------------------------------------------------------------------------------------
# fastai's text rules (fastai/text/core.py), applied in this order before the word splitter
# ----------------------------------------------------------------------------------------------------------------
_HTML_FIXES = (
    ("#39;", "'"), ("amp;", "&"), ("#146;", "'"), ("nbsp;", " "), ("#36;", "$"), ("\\n", "\n"), ("quot;", "'"),
    ("<br />", "\n"), ('\\"', '"'), ("<unk>", UNK), (" @.@ ", "."), (" @-@ ", "-"), ("...", " …"),
)
_RE_CHAR_REPEAT = re.compile(r"(\S)(\1{2,})")
_RE_WORD_REPEAT = re.compile(r"(?:\s|^)(\w+)\s+((?:\1\s+)+)\1(\s|\W|$)")
_RE_SPEC = re.compile(r"([/#\\])")
_RE_SPACES = re.compile(" {2,}")
_RE_ALL_CAPS = re.compile(r"(\s|^)([A-Z]+[^a-z\s]*)(?=(\s|$))")
_RE_MAJ = re.compile(r"(\s|^)([A-Z][^A-Z\s]*)(?=(\s|$))")


def fix_html(text: str) -> str:
    """Repairs what scraped documents are full of: half-escaped entities, ``<br />``, literal ``\\n``, ``...``."""
    for old, new in _HTML_FIXES:
        text = text.replace(old, new)
    return html.unescape(text)


def replace_rep(text: str) -> str:
    """A character repeated 3+ times → `` xxrep N c `` (``coooool`` → ``c xxrep 5 o l``)."""
    return _RE_CHAR_REPEAT.sub(lambda m: f" {TK_REP} {len(m.group(2)) + 1} {m.group(1)} ", text)


def replace_wrep(text: str) -> str:
    """A word repeated 3+ times → `` xxwrep N word `` (``so so so much`` → ``xxwrep 3 so much``)."""
    return _RE_WORD_REPEAT.sub(
        lambda m: f" {TK_WREP} {len(m.group(2).split()) + 2} {m.group(1)} {m.group(3)}", text
    )


def spec_add_spaces(text: str) -> str:
    """Spaces around ``/``, ``#`` and ``\\``."""
    return _RE_SPEC.sub(r" \1 ", text)


def rm_useless_spaces(text: str) -> str:
    """Runs of spaces (only U+0020) → one space."""
    return _RE_SPACES.sub(" ", text)


def replace_all_caps(text: str) -> str:
    """An all-caps (ASCII) word of 2+ characters → ``xxup`` + the word in lower case."""
    def repl(m: re.Match) -> str:
        word = m.group(2)
        return m.group(1) + (f"{TK_UP} " if len(word) > 1 else "") + word.lower()
    return _RE_ALL_CAPS.sub(repl, text)


def replace_maj(text: str) -> str:
    """A capitalised (ASCII) word of 2+ characters → ``xxmaj`` + the word in lower case."""
    def repl(m: re.Match) -> str:
        word = m.group(2)
        return m.group(1) + (f"{TK_MAJ} " if len(word) > 1 else "") + word.lower()
    return _RE_MAJ.sub(repl, text)


def lowercase(text: str, add_bos: bool = True, add_eos: bool = False) -> str:
    """Lower case, stripped, with ``xxbos`` in front (and ``xxeos`` at the end when asked)."""
    return (f"{BOS} " if add_bos else "") + text.lower().strip() + (f" {EOS}" if add_eos else "")


def replace_space(token: str) -> str:
    """fastai's post-rule (used when it tokenises a whole corpus): a space inside a token → ``▁``."""
    return token.replace(" ", "\u2581")


DEFAULT_RULES = (fix_html, replace_rep, replace_wrep, spec_add_spaces, rm_useless_spaces, replace_all_caps, replace_maj)


def apply_rules(text: str, add_bos: bool = True, add_eos: bool = False) -> str:
    """fastai's ``defaults.text_proc_rules`` on one text: what the word splitter then receives."""
    for rule in DEFAULT_RULES:
        text = rule(text)
    return lowercase(text, add_bos=add_bos, add_eos=add_eos)


# ----------------------------------------------------------------------------------------------------------------
# Back from fastai's tokens to text: the rules undone, then the words joined as text spaces them
# ----------------------------------------------------------------------------------------------------------------
def decode_spec_tokens(tokens: Sequence[str]) -> list[str]:
    """fastai's ``decode_spec_tokens``: the case and repetition rules undone (``xxmaj w`` → ``W``, ``xxup w`` →
    ``W`` in upper case, ``xxrep n c`` → ``c`` n times, ``xxwrep n w`` → ``w`` n times as words).

    A rule whose argument is missing (the sequence ends, or a count is not a number) is dropped and what follows
    kept as it is; a rule token never applies to another special token (``xxmaj xxunk`` stays ``xxunk``).
    """
    out: list[str] = []
    rule, count = None, None
    for token in tokens:
        if token in (TK_MAJ, TK_UP, TK_REP, TK_WREP):
            rule, count = token, None
        elif rule is None or token in SPECIAL_TOKENS:
            out.append(token)
            rule = None
        elif rule == TK_MAJ:
            out.append(token[:1].upper() + token[1:])
            rule = None
        elif rule == TK_UP:
            out.append(token.upper())
            rule = None
        elif count is None:
            if token.isdigit():
                count = int(token)
            else:
                out.append(token)
                rule = None
        else:
            out.extend([token * count] if rule == TK_REP else [token] * count)
            rule, count = None, None
    return out


# What spaCy splits off and text writes against the word before (closing punctuation, clitics) or after (opening
# punctuation); hyphens and slashes join words (fastai spaces "/", spaCy splits "well-known"); a whitespace token
# ("\n") is written as it is, without spaces around it.
_CLOSING = frozenset(",.!?;:%)]}…»”’")
_OPENING = frozenset("([{$£€¥#«“‘¿¡")
_JOINING = frozenset({"-", "/", "\\", "–", "—"})
_CLITICS = frozenset({"'s", "'m", "'re", "'ve", "'ll", "'d", "n't", "’s", "’m", "’re", "’ve", "’ll", "’d", "n’t"})
_QUOTES = frozenset({'"', "'", "`"})


def _attaches_left(word: str) -> bool:
    """Whether text writes ``word`` against the word before it (no space)."""
    return (word.isspace() or word.lower() in _CLITICS or word in _JOINING
            or (bool(word) and all(c in _CLOSING for c in word)))


def detokenize(words: Sequence[str], open_quotes: bool = False) -> str:
    """Words joined as text spaces them: a space between two words unless the second is closing punctuation or a
    clitic (``is`` ``n't`` → ``isn't``), the first is opening punctuation, either is a hyphen or slash or whitespace;
    straight quotes open and close in turn. (Spaces that the tokenisation dropped cannot be known: fastai's tokens
    do not keep them.)"""
    out: list[str] = []
    previous = None
    for word in words:
        if not word:
            continue
        if word in _QUOTES:
            open_quotes = not open_quotes
            space = previous is not None and open_quotes and not _binds_right(previous)
        else:
            space = previous is not None and not _attaches_left(word) and not _binds_right(previous)
        out.append((" " if space else "") + word)
        previous = word if word not in _QUOTES or open_quotes else ")"  # a closed quote spaces as a ")" would
    return "".join(out)


def _binds_right(word: str) -> bool:
    """Whether text writes the word after ``word`` against it (no space)."""
    return (word.isspace() or word in _JOINING or (word in _QUOTES)
            or (bool(word) and all(c in _OPENING for c in word)))


_SPLITTER: EnglishWordSplitter | None = None


def _default_splitter() -> EnglishWordSplitter:
    global _SPLITTER
    if _SPLITTER is None:
        _SPLITTER = EnglishWordSplitter(SPECIAL_TOKENS)
    return _SPLITTER


def fastai_tokenize(text: str, add_bos: bool = True, add_eos: bool = False, post_rules: bool = False) -> list[str]:
    """fastai's ``Tokenizer(WordTokenizer())`` on one text: the rules, then spaCy's English tokenizer.

    ``post_rules=True`` also applies fastai's post-rule ``replace_space`` (a space inside a token → ``▁``), as fastai
    does when it tokenises a whole corpus (``tokenize_df``/``tokenize_folder``, so ``TextBlock``/``TextDataLoaders``)
    but not when a ``Tokenizer`` is called on one text.
    """
    if not isinstance(text, str):
        raise TypeError(f"fastai_tokenize needs a str, got {type(text).__name__}")
    tokens = _default_splitter()(apply_rules(text, add_bos=add_bos, add_eos=add_eos))
    return [replace_space(t) for t in tokens] if post_rules else tokens


def make_vocab(count: Counter, min_freq: int = 3, max_vocab: int = 60000,
               special_tokens: Sequence[str] = SPECIAL_TOKENS) -> list[str]:
    """fastai's ``make_vocab``: the ``max_vocab`` most common tokens (ties in first-seen order) seen at least
    ``min_freq`` times, fastai's special tokens moved to the front, cut to ``max_vocab``, then padded with
    ``xxfake`` (by 8 - len % 8 entries: 1 to 8, never 0, exactly as fastai does)."""
    vocab = [tok for tok, n in count.most_common(max_vocab) if n >= min_freq]
    for tok in reversed(special_tokens):
        if tok in vocab:
            vocab.remove(tok)
        vocab.insert(0, tok)
    vocab = vocab[:max_vocab]
    return vocab + [FAKE_TOKEN] * (8 - len(vocab) % 8)


# ----------------------------------------------------------------------------------------------------------------
# fastai's SentencePieceTokenizer (fastai/text/core.py): the same rules, then SentencePiece
# ----------------------------------------------------------------------------------------------------------------
# SentencePieceTokenizer's defaults: at most 30,000 pieces when the size is derived from the texts; character
# coverage 0.99999 for the languages of its eu_langs ("en" included), 0.9998 for the others
SPM_MAX_VOCAB_SIZE = 30000
SPM_CHARACTER_COVERAGE = 0.99999


def _sentencepiece() -> Any:
    """The ``sentencepiece`` package, imported only for SentencePiece tokenizers (a word-level folder loads
    without it; the ``try`` also keeps transformers' remote-code check from requiring it)."""
    try:
        import sentencepiece
    except ImportError:
        raise ImportError("a SentencePiece AWD-LSTM tokenizer needs the sentencepiece package: "
                          "pip install sentencepiece") from None
    return sentencepiece


def load_sentencepiece(spm_file: str | os.PathLike) -> Any:
    """A ``SentencePieceProcessor`` of ``spm_file``; FileNotFoundError / ValueError naming the file otherwise."""
    if not os.path.isfile(spm_file):
        raise FileNotFoundError(f"SentencePiece model file not found: {spm_file}")
    try:
        return _sentencepiece().SentencePieceProcessor(model_file=os.fspath(spm_file))
    except RuntimeError as e:
        raise ValueError(f"{spm_file} is not a SentencePiece model: {' '.join(str(e).split())[:200]}") from None


def sentencepiece_tokenize(text: str, sp_model: Any, add_bos: bool = True, add_eos: bool = False) -> list[str]:
    """fastai's ``Tokenizer(SentencePieceTokenizer(...))`` on one text: the rules (``apply_rules``), then
    SentencePiece's pieces (``EncodeAsPieces``: ``▁`` marks a word start, NFKC-normalised; a run of characters the
    model does not know is one piece of its surface text). The markers come out as pieces (``▁xxbos``, ``▁xxmaj``)."""
    if not isinstance(text, str):
        raise TypeError(f"sentencepiece_tokenize needs a str, got {type(text).__name__}")
    return sp_model.encode(apply_rules(text, add_bos=add_bos, add_eos=add_eos), out_type=str)


def join_pieces(pieces: Sequence[str]) -> str:
    """SentencePiece pieces as text: ``▁`` → a space; fastai's special tokens (what an id 0–8 reads as, e.g. the
    ``xxunk`` of an unknown piece) stand as words of their own."""
    return "".join(SPIECE + p + SPIECE if p in SPECIAL_TOKENS else p for p in pieces).replace(SPIECE, " ")


def sentencepiece_vocab_size(lines: Iterable[str], max_vocab_size: int = SPM_MAX_VOCAB_SIZE) -> int:
    """fastai's ``SentencePieceTokenizer._get_vocab_sz``: a quarter of the distinct space-separated words of the
    rule-processed texts, rounded up to a multiple of 8, at least 29, at most ``max_vocab_size``."""
    count: Counter = Counter()
    for line in lines:
        count.update(line.split())
        if len(count) // 4 > max_vocab_size:
            return max_vocab_size
    size = len(count) // 4
    return max(size + (-size) % 8, 29)


def train_sentencepiece(texts: Iterable[str], output_dir: str | os.PathLike, vocab_size: int | None = None,
                        model_type: str = "unigram", character_coverage: float = SPM_CHARACTER_COVERAGE,
                        max_vocab_size: int = SPM_MAX_VOCAB_SIZE) -> Path:
    """A SentencePiece model trained as fastai's ``SentencePieceTokenizer.setup``/``train`` trains one: every text
    through the rules, written as one line of ``output_dir/texts.out`` (a text holding newlines as several), then
    ``SentencePieceTrainer`` with fastai's arguments: the nine ``▁``-prefixed special tokens as user-defined symbols
    (ids 0–8), ``<unk>`` at 9, no pad/bos/eos pieces, a soft vocabulary limit. ``vocab_size`` None: fastai's rule
    (``sentencepiece_vocab_size``). Returns ``output_dir/spm.model``; nothing is downloaded."""
    if isinstance(texts, str):
        raise TypeError("train_sentencepiece needs an iterable of texts, got one str")
    spm = _sentencepiece()
    output_dir = Path(output_dir)
    raw = output_dir / "texts.out"
    with open(raw, "w", encoding="utf-8") as f:
        for text in texts:
            f.write(f"{apply_rules(text)}\n")
    if vocab_size is None:
        with open(raw, encoding="utf-8") as f:
            vocab_size = sentencepiece_vocab_size(f, max_vocab_size)
    try:
        spm.SentencePieceTrainer.Train(
            input=str(raw), vocab_size=int(vocab_size), model_prefix=str(output_dir / "spm"),
            character_coverage=character_coverage, model_type=model_type, unk_id=len(SPECIAL_TOKENS), pad_id=-1,
            bos_id=-1, eos_id=-1, minloglevel=2, user_defined_symbols=[SPIECE + t for t in SPECIAL_TOKENS],
            hard_vocab_limit=False)
    except RuntimeError as e:
        raise ValueError(f"SentencePiece could not be trained on these texts (vocab_size {vocab_size}, model_type "
                         f"{model_type}): {' '.join(str(e).split())[:300]}") from None
    finally:
        raw.unlink()
    return output_dir / "spm.model"


def _refuse_offsets(kwargs: dict) -> None:
    """transformers 5 would silently return no offsets; 4.x says only that slow tokenizers have none."""
    if kwargs.get("return_offsets_mapping"):
        raise NotImplementedError(
            "AWDLSTMTokenizer cannot return offsets: fastai's rules rewrite the text before it is split (xxmaj, xxup, "
            "xxrep and lower case), so its tokens do not point into the text")


class AWDLSTMTokenizer(PreTrainedTokenizer):
    """fastai's default text processing for AWD-LSTM / ULMFiT models, as a transformers tokenizer.

    ``tokenize`` gives exactly fastai's tokens (``xxbos`` first); ids are fastai's (``Numericalize``): the index in
    the vocabulary, ``xxunk`` (0 in a fastai vocabulary) for anything else. ``xxpad`` (1) pads.

    Args:
        vocab_file: ``vocab.json``, a JSON list of tokens (fastai's ``itos``; index = id).
        itos: the vocabulary as a list instead of a file (e.g. from ``read_itos_pickle``).
        replace_space: apply fastai's post-rule ``replace_space`` (spaces inside a token → ``▁``), as fastai's
            corpus tokenisation (``TextBlock``, ``TextDataLoaders``) does; off by default, as when fastai's
            ``Tokenizer`` is called on a text.
        backwards: each text's tokens in reverse, as fastai's ``TextBlock(..., backwards=True)`` feeds a backward
            model (``reverse_text``: the whole document flipped on its own, ``xxbos`` last, before any padding).
            ``tokenize`` and the ids are then in the model's reading order, a pre-split input is taken in that
            order too, and ``decode`` reverses back to the text.
        spm_file: ``spm.model``, a SentencePiece model: fastai's ``SentencePieceTokenizer`` instead of the word
            splitter (the same rules first, then SentencePiece; see ``sentencepiece_tokenize``). Tokens are then
            pieces (``▁xxbos``, ``▁xxmaj``, ``▁hello``) and ids index fastai's vocabulary (``vocab_file``), whose
            entries 0–8 (``xxbos`` without ``▁``) the pieces never are; ``decode`` joins the pieces. Saved beside
            ``vocab.json``; a folder holding ``spm.model`` loads as a SentencePiece tokenizer.

    A pre-split input (``is_split_into_words=True`` or a list of strings to ``convert_tokens_to_ids``) is taken as
    fastai tokens and only numericalised, as fastai's ``Tokenizer`` passes lists through.
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str | None = None,
        itos: Sequence[str] | None = None,
        spm_file: str | os.PathLike | None = None,
        unk_token: str = UNK,
        pad_token: str = PAD,
        bos_token: str = BOS,
        eos_token: str = EOS,
        extra_special_tokens: Sequence[str] | None = None,
        replace_space: bool = False,
        backwards: bool = False,
        model_max_length: int = 10**6,
        **kwargs: Any,
    ) -> None:
        if vocab_file is not None and itos is not None:
            raise ValueError("give either vocab_file or itos, not both")
        if vocab_file is not None:
            itos = self._read_vocab(vocab_file)
        elif itos is None:
            itos = list(SPECIAL_TOKENS)
        itos = list(itos)
        bad = [t for t in itos if not isinstance(t, str)]
        if bad:
            raise ValueError(f"a vocabulary holds strings only; got {type(bad[0]).__name__} {bad[0]!r}")
        if not itos:
            raise ValueError("the vocabulary is empty")
        self.itos: list[str] = itos
        # fastai's Numericalize: the last index of a token wins; "xxfake" (padding) maps to xxunk like any unknown
        self.o2i: dict[str, int] = {tok: i for i, tok in enumerate(itos) if tok != FAKE_TOKEN}
        self.replace_space = bool(replace_space)
        if not isinstance(backwards, bool):
            raise ValueError(f"backwards must be True or False, got {backwards!r}")
        self.backwards = backwards
        self.sp_model = None if spm_file is None else load_sentencepiece(spm_file)
        self._unk = str(unk_token)
        legacy = kwargs.pop("additional_special_tokens", None)
        if isinstance(extra_special_tokens, dict):  # transformers 4.x's named extra tokens: not ours
            extra_special_tokens = None
        if extra_special_tokens is None:
            extra_special_tokens = legacy if legacy is not None else [FLD, TK_REP, TK_WREP, TK_UP, TK_MAJ]
        kwargs[_EXTRA_SPECIALS_KWARG] = [str(t) for t in extra_special_tokens]
        super().__init__(
            unk_token=unk_token,
            pad_token=pad_token,
            bos_token=bos_token,
            eos_token=eos_token,
            replace_space=replace_space,
            backwards=backwards,
            model_max_length=model_max_length,
            **kwargs,
        )

    @staticmethod
    def _read_vocab(vocab_file: str | os.PathLike) -> list[str]:
        try:
            with open(vocab_file, encoding="utf-8") as f:
                itos = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"AWD-LSTM vocabulary file not found: {vocab_file}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{vocab_file} is not a JSON vocabulary: {e}") from None
        if isinstance(itos, dict) and isinstance(itos.get("itos"), list):
            itos = itos["itos"]
        if not isinstance(itos, list) or not all(isinstance(t, str) for t in itos):
            raise ValueError(f"{vocab_file} must hold a JSON list of strings (fastai's itos)")
        return itos

    # ----- vocabulary -----
    @property
    def document_start_id(self) -> int | None:
        """The id every document starts with, the model's ``bos_token_id``: ``xxbos``'s, or for SentencePiece
        ``▁xxbos``'s (the piece the model reads; ``xxbos`` itself never occurs); None when the vocabulary lacks it."""
        return self.o2i.get(BOS if self.sp_model is None else SPIECE + BOS)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def __len__(self) -> int:
        added = getattr(self, "_added_tokens_decoder", {})
        return max(len(self.itos), max(added, default=-1) + 1)

    def get_vocab(self) -> dict[str, int]:
        vocab = dict(self.o2i)
        vocab.update(getattr(self, "_added_tokens_encoder", {}))
        if getattr(self, "_numbering_new_tokens", False):
            # transformers numbers new tokens from len(get_vocab()): make that the end of itos, whose repeated
            # entries ("xxfake") the dict above counts once
            for i in range(len(self.itos)):
                if self.o2i.get(self.itos[i]) != i:
                    vocab[f"\x00hole{i}"] = i
        return vocab

    def _add_tokens(self, new_tokens: Any, special_tokens: bool = False) -> int:
        self._numbering_new_tokens = True
        try:
            return super()._add_tokens(new_tokens, special_tokens=special_tokens)
        finally:
            self._numbering_new_tokens = False

    def _convert_token_to_id(self, token: str) -> int:
        token = str(token)
        if token in self.o2i:
            return self.o2i[token]
        return self.o2i.get(self._unk, 0)

    def _convert_id_to_token(self, index: int) -> str:
        if 0 <= index < len(self.itos):
            return self.itos[index]
        return self._unk

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Text from fastai tokens: the case and repetition rules undone (``decode_spec_tokens``), the other special
        tokens (``xxbos``, ``xxpad``, ``xxunk``, ...) left out, the words spaced as text (``detokenize``; pieces
        keep SentencePiece's spaces)."""
        return self._text(self._words(tokens))

    def _text(self, words: Sequence[str]) -> str:
        return " ".join(words) if self.sp_model is not None else detokenize(words)

    def _words(self, tokens: Sequence[str]) -> list[str]:
        """The words that fastai tokens stand for (SentencePiece pieces joined into words first): the rules undone,
        the other special tokens left out."""
        if self.sp_model is not None:
            tokens = join_pieces(tokens).split()
        specials = set(self.all_special_tokens)
        return [t for t in decode_spec_tokens(tokens) if t not in specials]

    def _decode(self, token_ids: Any, skip_special_tokens: bool = False,
                clean_up_tokenization_spaces: bool | None = None, **kwargs: Any) -> str:
        """With ``skip_special_tokens``: the text (``convert_tokens_to_string``), as generated text should read;
        without: fastai's tokens as the model reads them, space-separated (``xxbos xxmaj hello world .``).

        A sequence that does not start a text (no ``xxbos`` first, padding aside) continues one: its first word
        gets the space that would stand before it, so that a prompt's text followed by the decoded continuation
        reads right (transformers' text-generation pipeline joins them so) and decoding a prompt gives the start of
        decoding the prompt and its continuation.
        """
        ids = [token_ids] if isinstance(token_ids, int) else [int(i) for i in token_ids]
        tokens = self.convert_ids_to_tokens(ids)
        if self.backwards:  # the model's reading order back to the text's
            tokens = tokens[::-1]
        if not skip_special_tokens:
            return " ".join(join_pieces(tokens).split() if self.sp_model is not None else tokens)
        tokens = [t for t in tokens if t != self.pad_token]
        words = self._words(tokens)
        continues = bool(tokens) and tokens[0] not in (self.bos_token, SPIECE + self.bos_token)
        if self.sp_model is not None:  # a piece says itself whether it starts a word
            spaced = join_pieces(tokens).startswith(" ")
        else:
            spaced = bool(words) and not _attaches_left(words[0])
        return (" " if continues and words and spaced else "") + self._text(words)

    def get_special_tokens_mask(self, token_ids_0: list[int], token_ids_1: list[int] | None = None,
                                already_has_special_tokens: bool = False) -> list[int]:
        """1 at fastai's special tokens (``xxbos`` and the rule tokens ``xxmaj``, ``xxup``, ... that the text rules
        put among the words), 0 at words: fastai's processing writes them into the token stream itself, so the ids
        always hold them already."""
        if token_ids_1 is not None:
            raise ValueError("AWDLSTMTokenizer encodes single texts; a pair of sequences is not supported")
        special = set(self.all_special_ids)
        if self.sp_model is not None:  # the markers as SentencePiece writes them: "▁xxbos", "▁xxmaj", ...
            special |= {self.o2i[SPIECE + t] for t in SPECIAL_TOKENS if SPIECE + t in self.o2i}
        return [int(i in special) for i in token_ids_0]


    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        if not os.path.isdir(save_directory):
            raise ValueError(f"save_vocabulary needs an existing directory, got {save_directory}")
        prefix = os.path.join(save_directory, filename_prefix + "-" if filename_prefix else "")
        path = prefix + VOCAB_FILES_NAMES["vocab_file"]
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.itos, f, ensure_ascii=False, indent=0)
        if self.sp_model is None:
            return (path,)
        spm_path = prefix + VOCAB_FILES_NAMES["spm_file"]
        with open(spm_path, "wb") as f:
            f.write(self.sp_model.serialized_model_proto())
        return (path, spm_path)

    # ----- tokenisation -----
    def tokenize(self, text: str, add_special_tokens: bool = True, **kwargs: Any) -> list[str]:  # type: ignore[override]
        """fastai's tokens for one text (``xxbos`` first unless ``add_special_tokens=False``)."""
        add_bos = kwargs.pop("_awd_add_bos", add_special_tokens)
        return self._reading_order(self._fastai_tokens(text, add_bos))

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        return self._reading_order(self._fastai_tokens(text, False))

    def _fastai_tokens(self, text: str, add_bos: bool) -> list[str]:
        """fastai's tokens of one text, in the text's order: words, or SentencePiece pieces."""
        if self.sp_model is not None:
            return sentencepiece_tokenize(text, self.sp_model, add_bos=add_bos)
        return fastai_tokenize(text, add_bos=add_bos, post_rules=self.replace_space)

    def _reading_order(self, tokens: list[str]) -> list[str]:
        """The tokens in the order the model reads them: the text's, or reversed for a backward model."""
        return tokens[::-1] if self.backwards else tokens

    def _tokens_to_ids(self, tokens: Sequence[Any]) -> list[int]:
        return [self._convert_token_to_id_with_added_voc(str(t)) for t in tokens]

    def _encode_plus(self, text: Any, text_pair: Any = None, add_special_tokens: bool = True,
                     is_split_into_words: bool = False, **kwargs: Any):  # type: ignore[override]
        if text_pair is not None:
            raise ValueError("AWDLSTMTokenizer encodes single texts; text_pair is not supported")
        _refuse_offsets(kwargs)
        if is_split_into_words:
            # fastai tokens already: numericalise only (fastai's Tokenizer passes lists through unchanged)
            if isinstance(text, (list, tuple)) and text and all(isinstance(t, (list, tuple)) for t in text):
                text = [self._tokens_to_ids(seq) for seq in text]
            elif isinstance(text, (list, tuple)):
                text = self._tokens_to_ids(text)
            is_split_into_words = False
        kwargs["_awd_add_bos"] = add_special_tokens
        return super()._encode_plus(text, add_special_tokens=add_special_tokens,
                                    is_split_into_words=is_split_into_words, **kwargs)

    def _batch_encode_plus(self, batch_text_or_text_pairs: Any, add_special_tokens: bool = True,
                           is_split_into_words: bool = False, **kwargs: Any):  # pragma: no cover (transformers 4.x)
        # transformers 4.x encodes batches here (5.x goes through _encode_plus only)
        _refuse_offsets(kwargs)
        if is_split_into_words:
            batch_text_or_text_pairs = [self._tokens_to_ids(seq) for seq in batch_text_or_text_pairs]
        kwargs["_awd_add_bos"] = add_special_tokens
        return super()._batch_encode_plus(batch_text_or_text_pairs, add_special_tokens=add_special_tokens,
                                          is_split_into_words=is_split_into_words, **kwargs)

    # ----- vocabulary building -----
    @staticmethod
    def build_vocab(texts: Iterable[str], min_freq: int = 3, max_vocab: int = 60000,
                    replace_space: bool = False, sp_model: Any = None) -> list[str]:
        """A vocabulary (itos) exactly as fastai builds one from these texts (``Numericalize.setups``/``make_vocab``):
        every text tokenised (``xxbos`` included; into SentencePiece pieces with ``sp_model``), fastai's nine
        special tokens first, then the tokens seen at least ``min_freq`` times by falling frequency (ties in order
        of first appearance), at most ``max_vocab`` entries, padded with ``xxfake`` to a multiple of 8."""
        if isinstance(texts, str):
            raise TypeError("build_vocab needs an iterable of texts, got one str")
        count: Counter = Counter()
        for text in texts:
            count.update(fastai_tokenize(text, post_rules=replace_space) if sp_model is None
                         else sentencepiece_tokenize(text, sp_model))
        return make_vocab(count, min_freq=min_freq, max_vocab=max_vocab)

    def with_vocabulary(self, itos: Sequence[str]) -> "AWDLSTMTokenizer":
        """This tokenizer (its splitter or SentencePiece model, ``replace_space``, ``backwards``) with the vocabulary
        ``itos`` instead: fastai's vocabulary adaptation keeps the tokenization and renumbers the tokens."""
        with tempfile.TemporaryDirectory() as tmp:
            spm_file = None
            if self.sp_model is not None:
                spm_file = Path(tmp) / VOCAB_FILES_NAMES["spm_file"]
                spm_file.write_bytes(self.sp_model.serialized_model_proto())
            return type(self)(itos=itos, spm_file=spm_file, replace_space=self.replace_space,
                              backwards=self.backwards)

    @classmethod
    def from_texts(cls, texts: Iterable[str], min_freq: int = 3, max_vocab: int = 60000, sentencepiece: bool = False,
                   vocab_size: int | None = None, model_type: str = "unigram",
                   character_coverage: float = SPM_CHARACTER_COVERAGE, **kwargs: Any) -> "AWDLSTMTokenizer":
        """A tokenizer whose vocabulary is built from ``texts`` as fastai would (see ``build_vocab``).

        ``sentencepiece=True``: first a SentencePiece model of ``vocab_size`` pieces (None: fastai's rule from the
        texts) trained on them as fastai's ``SentencePieceTokenizer`` trains one (``train_sentencepiece``, in a
        temporary folder), then fastai's vocabulary of its pieces; ``model_type`` and ``character_coverage`` are
        SentencePieceTokenizer's (fastai uses 0.9998 for languages outside its ``eu_langs``)."""
        if isinstance(texts, str):
            raise TypeError("from_texts needs an iterable of texts, got one str")
        if not sentencepiece:
            if vocab_size is not None:
                raise ValueError("vocab_size is the SentencePiece model's size: give sentencepiece=True too")
            itos = cls.build_vocab(texts, min_freq=min_freq, max_vocab=max_vocab,
                                   replace_space=kwargs.get("replace_space", False))
            return cls(itos=itos, **kwargs)
        texts = list(texts)
        with tempfile.TemporaryDirectory() as tmp:
            spm_file = train_sentencepiece(texts, tmp, vocab_size=vocab_size, model_type=model_type,
                                           character_coverage=character_coverage)
            itos = cls.build_vocab(texts, min_freq=min_freq, max_vocab=max_vocab, sp_model=load_sentencepiece(spm_file))
            return cls(itos=itos, spm_file=spm_file, **kwargs)
