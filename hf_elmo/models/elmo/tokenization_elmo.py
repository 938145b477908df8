"""Tokenizer of ELMo: text → words → the original character ids.

ELMo reads characters, not word-piece ids: every word becomes ``max_characters_per_token`` (50) character ids, so
``input_ids`` has shape ``(batch, words, 50)``. The ids are those of the original bilm-tf/AllenNLP implementation
(see ``word_to_char_ids``). Raw text is split into words the way the 1B Word Benchmark that ELMo was trained on was
tokenised (Moses-style: punctuation separated, ``don't`` → ``don 't``, abbreviations such as ``U.S.`` kept).

A word vocabulary is optional: only the language-model head needs one (``token_ids`` → word indices).
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping
from typing import Any, Iterable, Sequence

import numpy as np
from transformers import BatchEncoding, PreTrainedTokenizer
from transformers.tokenization_utils_base import PaddingStrategy, TruncationStrategy
from transformers.utils import to_py_obj

VOCAB_FILES_NAMES = {"vocab_file": "vocab.txt"}

# The original character-id scheme (bilm-tf UnicodeCharsVocabulary / AllenNLP ELMoCharacterMapper), before the +1.
BOS_CHAR, EOS_CHAR, BOW_CHAR, EOW_CHAR, PAD_CHAR = 256, 257, 258, 259, 260

# Abbreviations whose final period belongs to the word (a subset of Moses' English non-breaking prefixes).
_NONBREAKING = frozenset(
    """Mr Mrs Ms Dr Prof Sr Jr St Mt Gen Gov Sen Rep Lt Col Capt Sgt Maj Cmdr Adm Rev Hon Pres Supt Fr Messrs Mmes
    Co Corp Inc Ltd Bros Dept Univ Assn Ave Blvd Rd vs etc al cf viz approx est Jan Feb Mar Apr Jun Jul Aug Sep Sept
    Oct Nov Dec Mon Tue Tues Wed Thu Thurs Fri Sat Sun Ph ie eg""".split()
)
# Only before a number: "No. 5", "pp. 12".
_NONBREAKING_BEFORE_NUMBER = frozenset({"No", "Nos", "Art", "pp", "p", "Nr", "Vol", "Fig", "Figs", "Eq"})
_CLITICS = re.compile(r"^'(?:s|t|re|ve|ll|d|m)$", re.IGNORECASE)
_LETTER = r"[^\W\d_]"
_SEPARATE = re.compile(r"([^\w\s.,'`\-])")  # every symbol but . , ' ` - stands alone
_PROTECTED = re.compile(r"(\.{2,}|-{2,})")  # ellipses and dash runs are words of their own, never split further
_COMMA_NOT_IN_NUMBER = re.compile(r"(?<!\d),|,(?!\d)")
_APOSTROPHE_CONTRACTION = re.compile(rf"({_LETTER})'({_LETTER})")
_APOSTROPHE_YEAR = re.compile(r"(\d)'(s)\b")
_APOSTROPHE_OTHER = re.compile(rf"(?<!{_LETTER})'|'(?!{_LETTER})")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def split_words(text: str) -> list[str]:
    """Splits raw text into words as the ELMo training data was tokenised (Moses-style, English).

    Idempotent on text that is already tokenised this way (``" ".join(split_words(t))`` splits to the same words).
    """
    if not text:
        return []
    text = unicodedata.normalize("NFC", _CONTROL.sub(" ", text))
    # Ellipses ("...") and dash runs ("--") stand alone and are not split further; the text between them is split
    # by the rules below. (Splitting around them, rather than swapping in placeholder characters, keeps any input
    # character from being mistaken for a placeholder.)
    words: list[str] = []
    protected: set[int] = set()
    for k, piece in enumerate(_PROTECTED.split(text)):
        if k % 2:
            protected.add(len(words))
            words.append(piece)
        else:
            words.extend(_split_plain(piece))
    out: list[str] = []
    for i, word in enumerate(words):
        if i not in protected and len(word) > 1 and word.endswith("."):
            stem = word[:-1]
            nxt = words[i + 1] if i + 1 < len(words) else ""
            is_last = i == len(words) - 1
            keep = not is_last and (
                ("." in stem and re.search(_LETTER, stem) is not None)
                or stem in _NONBREAKING
                or (len(stem) == 1 and stem.isalpha() and stem.isupper())
                or (stem in _NONBREAKING_BEFORE_NUMBER and nxt[:1].isdigit())
                or nxt[:1].islower()
            )
            if not keep:
                out.extend((stem, "."))
                continue
        out.append(word)
    return out


def _split_plain(text: str) -> list[str]:
    """The symbol, comma and apostrophe rules of ``split_words`` on text without ellipses or dash runs."""
    text = _SEPARATE.sub(r" \1 ", text)
    text = _COMMA_NOT_IN_NUMBER.sub(" , ", text)
    text = _APOSTROPHE_CONTRACTION.sub(r"\1 '\2", text)
    text = _APOSTROPHE_YEAR.sub(r"\1 '\2", text)
    words: list[str] = []
    for chunk in text.split():
        if _CLITICS.match(chunk):
            words.append(chunk)
            continue
        words.extend(_APOSTROPHE_OTHER.sub(" ' ", chunk).split())
    return words


def word_to_char_ids(word: str, max_characters_per_token: int = 50) -> list[int]:
    """The original character ids of one word (already shifted by +1, so that 0 means "no word").

    ``[BOW] + UTF-8 bytes (at most max-2) + [EOW]``, padded with PAD; the words ``<S>``/``</S>`` are the sentence
    boundaries ``[BOW, BOS, EOW]``/``[BOW, EOS, EOW]``, exactly as bilm-tf and AllenNLP map them.
    """
    ids = [PAD_CHAR] * max_characters_per_token
    ids[0] = BOW_CHAR
    if word == ElmoTokenizer.BOS_WORD:
        body = [BOS_CHAR]
    elif word == ElmoTokenizer.EOS_WORD:
        body = [EOS_CHAR]
    else:
        body = list(word.encode("utf-8", "ignore")[: max_characters_per_token - 2])
    ids[1 : 1 + len(body)] = body
    ids[1 + len(body)] = EOW_CHAR
    return [i + 1 for i in ids]


def char_ids_to_word(row: Sequence[int]) -> str:
    """The word that ``word_to_char_ids`` made these character ids from (its first 48 UTF-8 bytes: the rest of a
    longer word was never encoded); an all-zero row (padding, "no word") is the empty string.

    Raises:
        ValueError: the row is not one of ELMo's character-id rows (no BOW first, or no EOW).
    """
    values = [int(v) for v in row]
    if not any(values):
        return ""
    if values[0] != BOW_CHAR + 1 or EOW_CHAR + 1 not in values:
        raise ValueError(f"not an ELMo character-id row (BOW={BOW_CHAR + 1} first, then bytes + 1, EOW="
                         f"{EOW_CHAR + 1}): {values[:8]}...")
    body = values[1 : values.index(EOW_CHAR + 1)]
    if body == [BOS_CHAR + 1]:
        return ElmoTokenizer.BOS_WORD
    if body == [EOS_CHAR + 1]:
        return ElmoTokenizer.EOS_WORD
    if any(not 1 <= v <= 256 for v in body):
        raise ValueError(f"not an ELMo character-id row: byte ids must be 1..256, got {body}")
    # a word cut at 48 bytes may end inside a multi-byte character: that partial character is dropped
    return bytes(v - 1 for v in body).decode("utf-8", "ignore")


def _nesting(value: Any) -> int:
    """How deeply ``value`` nests (0 for a number, 1 for a list of numbers, ...; arrays and tensors by ``ndim``):
    it tells one ELMo sequence (words x characters: 2) from a batch of them (3)."""
    depth = 0
    while True:
        if hasattr(value, "ndim"):
            return depth + int(value.ndim)
        if not isinstance(value, (list, tuple)):
            return depth
        depth += 1
        value = next((v for v in value if not isinstance(v, (list, tuple)) or len(v)), None)
        if value is None:
            return depth


class _CharRow(list):
    """One word's character ids as the list of ints that transformers' encoding paths carry, with the same ids as an
    array beside it: a batch's tensor is stacked from the arrays, ~10x faster than converting nested lists."""

    __slots__ = ("array",)

    def __init__(self, ids: list[int]) -> None:
        super().__init__(ids)
        self.array = np.asarray(ids, dtype=np.int64)


class ElmoBatchEncoding(BatchEncoding):
    """A ``BatchEncoding`` that knows which input word every position came from (``word_ids``)."""

    def __init__(self, data: dict, word_ids: list[list[int | None]], tensor_type: Any = None) -> None:
        super().__init__(data, tensor_type=tensor_type)
        self._elmo_word_ids = word_ids

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """For every position of sequence ``batch_index``: the index of the input word, or None (boundary, padding)."""
        if not 0 <= batch_index < len(self._elmo_word_ids):
            raise IndexError(f"batch_index {batch_index} out of range for a batch of {len(self._elmo_word_ids)}")
        return list(self._elmo_word_ids[batch_index])

    def words(self, batch_index: int = 0) -> list[int | None]:
        return self.word_ids(batch_index)


# What encoding takes beside the arguments the base class names: ours (return_token_ids) and what transformers'
# own entry points hand over (split_special_tokens; 4.x's _encode_plus gets it too).
_EXTRA_ENCODE_ARGS = frozenset({"return_token_ids", "split_special_tokens"})


class ElmoTokenizer(PreTrainedTokenizer):
    """Turns text into ELMo's character ids: ``input_ids`` (batch, words, 50) and ``attention_mask`` (batch, words).

    A token is a word. Its model input, the element of ``input_ids``, is the word's row of 50 character ids, so
    ``input_ids`` is words x 50 per sequence; ``convert_tokens_to_ids`` gives the word-vocabulary ids instead (what
    the LM head predicts, ``return_token_ids=True``), as transformers' special-token ids (``bos_token_id``, ...) do.
    ``convert_ids_to_tokens``/``decode`` read both: an int is a vocabulary id, a row of character ids is the word it
    spells. Encoding runs through transformers' own paths (``encode``, ``__call__``, ``prepare_for_model``, ``pad``)
    with this tokenizer's boundaries (``build_inputs_with_special_tokens``) and padding rows (``_pad``).

    Args:
        vocab_file: optional word vocabulary, one word per line (the bilm-tf format, ``<S>``, ``</S>``, ``<UNK>``
            first); only the language-model head needs it (``return_token_ids=True``).
        max_characters_per_token: characters per word (50 in every published ELMo).
        do_split: split raw text into words (Moses-style); ``is_split_into_words=True`` bypasses it per call.
        model_max_length: maximum number of words per sequence, boundaries included, used by ``truncation=True``.
        pad_token: the name of a padding position, whose row of character ids is all zeros ("no word"); it is not a
            word of the vocabulary (``token_ids`` are -100 there).
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]
    BOS_WORD = "<S>"
    EOS_WORD = "</S>"
    UNK_WORD = "<UNK>"

    def __init__(
        self,
        vocab_file: str | None = None,
        max_characters_per_token: int = 50,
        do_split: bool = True,
        bos_token: str = "<S>",
        eos_token: str = "</S>",
        unk_token: str = "<UNK>",
        pad_token: str = "<pad>",
        model_max_length: int = 10**6,
        clean_up_tokenization_spaces: bool = False,
        **kwargs: Any,
    ) -> None:
        if max_characters_per_token < 3:
            raise ValueError(f"max_characters_per_token must be at least 3, got {max_characters_per_token}")
        self.max_characters_per_token = int(max_characters_per_token)
        self.do_split = do_split
        words = [self.BOS_WORD, self.EOS_WORD, self.UNK_WORD]
        if vocab_file is not None:
            words = self._read_vocab(vocab_file)
        self.vocab: dict[str, int] = {}
        for w in words:
            self.vocab.setdefault(w, len(self.vocab))
        # from_pretrained hands the special tokens over as AddedToken objects: the vocabulary is keyed by their text
        for special in (bos_token, eos_token, unk_token):
            self.vocab.setdefault(str(special), len(self.vocab))
        self._unk_word = str(unk_token)
        self.ids_to_tokens = {i: w for w, i in self.vocab.items()}
        self._char_cache: dict[str, np.ndarray] = {}
        self._row_cache: dict[str, _CharRow] = {}
        self._padding_row = _CharRow([0] * self.max_characters_per_token)  # "no word"
        super().__init__(
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            pad_token=pad_token,
            max_characters_per_token=max_characters_per_token,
            do_split=do_split,
            model_max_length=model_max_length,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            **kwargs,
        )

    @staticmethod
    def _read_vocab(vocab_file: str | os.PathLike) -> list[str]:
        try:
            with open(vocab_file, encoding="utf-8") as f:
                words = [line.rstrip("\n").strip() for line in f]
        except FileNotFoundError:
            raise FileNotFoundError(f"ELMo vocabulary file not found: {vocab_file}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{vocab_file} is not UTF-8 text: {e}") from None
        words = [w for w in words if w]
        if not words:
            raise ValueError(f"ELMo vocabulary file {vocab_file} holds no words")
        return words

    # ----- word vocabulary (for the LM head) -----
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab, **getattr(self, "_added_tokens_encoder", {}))

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        return split_words(text) if self.do_split else text.split()

    def tokenize(self, text: str, **kwargs: Any) -> list[str]:
        """Splits raw text into words (no boundaries added)."""
        return self._tokenize(text)

    def _convert_token_to_id(self, token: str) -> int:
        return self.vocab.get(str(token), self.vocab[self._unk_word])

    def _convert_id_to_token(self, index: int) -> str:
        return self.ids_to_tokens.get(index, self._unk_word)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        if not os.path.isdir(save_directory):
            raise ValueError(f"save_vocabulary needs an existing directory, got {save_directory}")
        path = os.path.join(save_directory, (filename_prefix + "-" if filename_prefix else "") + "vocab.txt")
        with open(path, "w", encoding="utf-8") as f:
            for word, _ in sorted(self.vocab.items(), key=lambda kv: kv[1]):
                f.write(word + "\n")
        return (path,)

    def _save_pretrained(self, save_directory: str | os.PathLike, file_names: tuple[str, ...],
                         legacy_format: bool | None = None, filename_prefix: str | None = None) -> tuple[str, ...]:
        # transformers' legacy added_tokens.json would hold only the padding token, which is no word of the
        # vocabulary and which tokenizer_config.json records already: left out, so that folders keep their layout
        names = super()._save_pretrained(save_directory, file_names, legacy_format=legacy_format,
                                         filename_prefix=filename_prefix)
        path = os.path.join(save_directory, (filename_prefix + "-" if filename_prefix else "") + "added_tokens.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                added = json.load(f)
            if set(added) <= {str(self.pad_token)}:
                os.remove(path)
                names = tuple(n for n in names if n != path)
        return names

    @classmethod
    def build_vocab(
        cls, texts: Iterable[str], min_freq: int = 1, max_size: int | None = None, is_split_into_words: bool = False
    ) -> list[str]:
        """A bilm-tf style vocabulary from a corpus: ``<S>``, ``</S>``, ``<UNK>``, then words by falling frequency
        (the order the sampled softmax's log-uniform sampler assumes)."""
        counts: Counter = Counter()
        for t in texts:
            counts.update(t if is_split_into_words else split_words(t))
        specials = [cls.BOS_WORD, cls.EOS_WORD, cls.UNK_WORD]
        ranked = [w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_freq]
        ranked = [w for w in ranked if w not in specials]
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(specials))]
        return specials + ranked

    # ----- character ids -----
    def word_char_ids(self, word: str) -> np.ndarray:
        """The 50 character ids of one word (cached: a batch repeats most of its words)."""
        ids = self._char_cache.get(word)
        if ids is None:
            ids = np.asarray(word_to_char_ids(word, self.max_characters_per_token), dtype=np.int64)
            if len(self._char_cache) < 1_000_000:
                self._char_cache[word] = ids
        return ids

    @property
    def pad_token_id(self) -> int | None:
        """0: what pipelines and collators fill the padding positions of ``input_ids`` with, so that a padding
        position is the all-zero row of character ids that ELMo reads as "no word". (The word vocabulary has no
        padding word: ``token_ids`` are -100 there.)"""
        return None if self.pad_token is None else 0

    def _char_row(self, word: str) -> _CharRow:
        """``word_char_ids`` as the list of ints that transformers' encoding paths carry (cached, and never changed
        in place: prepare_for_model and pad only build new lists of rows)."""
        row = self._row_cache.get(word)
        if row is None:
            row = _CharRow(word_to_char_ids(word, self.max_characters_per_token))
            if len(self._row_cache) < 1_000_000:
                self._row_cache[word] = row
        return row

    def convert_tokens_to_char_ids(self, tokens: str | Sequence[str]) -> list[int] | list[list[int]]:
        """The model input of words: one row of character ids per word (one row for a single word), what
        ``input_ids`` holds (the pad token: the all-zero row of padding); ``convert_tokens_to_ids`` gives their
        word-vocabulary ids instead."""
        def row(token: str) -> list[int]:
            return list(self._padding_row if token == self.pad_token else self._char_row(token))

        return row(tokens) if isinstance(tokens, str) else [row(str(t)) for t in tokens]

    def _is_char_sequence(self, ids: Any) -> bool:
        """Whether ``ids`` (python lists) is one sequence of character-id rows rather than of vocabulary ids."""
        return (isinstance(ids, (list, tuple)) and len(ids) > 0 and isinstance(ids[0], (list, tuple))
                and all(len(r) == self.max_characters_per_token for r in ids))

    # ----- special tokens: <S> ... </S> around every sequence -----
    def build_inputs_with_special_tokens(self, token_ids_0: list, token_ids_1: list | None = None) -> list:
        """``<S>`` + the words + ``</S>``, as the biLM was trained: the boundaries in the element type given
        (character rows for ``input_ids``, vocabulary ids for a list of ints)."""
        if token_ids_1 is not None:
            raise ValueError("ElmoTokenizer encodes single sequences; a pair of sequences is not supported")
        if token_ids_0 and not isinstance(token_ids_0[0], (list, tuple)):
            return [self.bos_token_id, *token_ids_0, self.eos_token_id]
        return [self._char_row(self.BOS_WORD), *token_ids_0, self._char_row(self.EOS_WORD)]

    def get_special_tokens_mask(self, token_ids_0: list, token_ids_1: list | None = None,
                                already_has_special_tokens: bool = False) -> list[int]:
        """1 at the ``<S>``/``</S>`` boundaries (and, for encoded input, at padding), 0 at words."""
        if token_ids_1 is not None:
            raise ValueError("ElmoTokenizer encodes single sequences; a pair of sequences is not supported")
        if not already_has_special_tokens:
            return [1] + [0] * len(token_ids_0) + [1]
        special_rows = (self._char_row(self.BOS_WORD), self._char_row(self.EOS_WORD))
        special_ids = set(self.all_special_ids)
        return [int(list(t) in special_rows or not any(t)) if isinstance(t, (list, tuple)) else int(t in special_ids)
                for t in token_ids_0]

    def create_token_type_ids_from_sequences(self, token_ids_0: list, token_ids_1: list | None = None) -> list[int]:
        return [0] * len(self.build_inputs_with_special_tokens(token_ids_0, token_ids_1))

    # ----- encoding: transformers' _encode_plus (5.x: single and batched; 4.x: single) and _batch_encode_plus -----
    def _as_batch(self, text: Any, is_split_into_words: bool) -> tuple[list[list[str]], bool]:
        """Normalises the accepted input forms into a list of word lists; says whether the input was batched."""
        if isinstance(text, str):
            if is_split_into_words:
                raise ValueError("is_split_into_words=True needs a list of words (or a list of lists), got a string")
            return [self._tokenize(text)], False
        if isinstance(text, (list, tuple)):
            if len(text) == 0:
                return [], True
            if is_split_into_words:
                if all(isinstance(w, str) for w in text):
                    return [list(text)], False
                if all(isinstance(s, (list, tuple)) and all(isinstance(w, str) for w in s) for s in text):
                    return [list(s) for s in text], True
                raise TypeError("is_split_into_words=True needs a list of words or a list of lists of words")
            if all(isinstance(s, str) for s in text):
                return [self._tokenize(s) for s in text], True
            if _nesting(text) >= 2 and not any(isinstance(w, str) for s in text for w in s):
                raise TypeError("ElmoTokenizer encodes text or words; ids (rows of character ids) are prepared with "
                                "prepare_for_model() and padded with pad()")
            if all(isinstance(s, (list, tuple)) for s in text):
                raise ValueError("got a batch of word lists: pass is_split_into_words=True")
        raise TypeError(f"text must be a string, a list of strings or (with is_split_into_words) word lists, got {type(text).__name__}")

    def _get_padding_truncation_strategies(self, padding: Any = False, truncation: Any = None,
                                           max_length: int | None = None, *args: Any, **kwargs: Any) -> tuple:
        # transformers pads padding="max_length" without max_length to model_max_length: a million words of 50
        # character ids here (the default), so ask for the length instead
        if padding == "max_length" and max_length is None:
            raise ValueError("padding='max_length' needs max_length")
        for name, value, kind in (("padding", padding, PaddingStrategy), ("truncation", truncation, TruncationStrategy)):
            if isinstance(value, str) and value not in {s.value for s in kind}:
                raise ValueError(f"unsupported {name} {value!r}: True, False or one of {[s.value for s in kind]}")
        return super()._get_padding_truncation_strategies(padding, truncation, max_length, *args, **kwargs)

    def _encode_plus(self, text: Any, text_pair: Any = None, is_split_into_words: bool = False,
                     **kwargs: Any) -> ElmoBatchEncoding:  # type: ignore[override]
        if text_pair is not None:
            raise ValueError("ElmoTokenizer encodes single sequences; text_pair is not supported")
        if text is None:
            raise ValueError("ElmoTokenizer needs `text`")
        batch, batched = self._as_batch(text, is_split_into_words)
        texts = None if is_split_into_words else ([text] if isinstance(text, str) else list(text))
        return self._encode_words(batch, batched, texts, **kwargs)

    def _batch_encode_plus(self, batch_text_or_text_pairs: Any, is_split_into_words: bool = False,
                           **kwargs: Any) -> ElmoBatchEncoding:  # type: ignore[override]
        # transformers 4.x encodes a batch here (5.x sends batches to _encode_plus as well); it hands a batch of
        # pairs over zipped, as tuples
        if not is_split_into_words and any(isinstance(t, tuple) for t in batch_text_or_text_pairs):
            raise ValueError("ElmoTokenizer encodes single sequences; text_pair is not supported")
        batch, _ = self._as_batch(list(batch_text_or_text_pairs), is_split_into_words)
        texts = None if is_split_into_words else list(batch_text_or_text_pairs)
        return self._encode_words(batch, True, texts, **kwargs)

    def _encode_words(
        self,
        batch: list[list[str]],
        batched: bool,
        texts: list[str] | None,
        add_special_tokens: bool = True,
        padding_strategy: PaddingStrategy = PaddingStrategy.DO_NOT_PAD,
        truncation_strategy: TruncationStrategy = TruncationStrategy.DO_NOT_TRUNCATE,
        max_length: int | None = None,
        stride: int = 0,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        **kwargs: Any,
    ) -> ElmoBatchEncoding:
        """Every sequence through transformers' ``prepare_for_model`` (boundaries, truncation, special-tokens
        mask), then the batch through ``pad``; beside them the word-vocabulary ids (``return_token_ids``), the
        character offsets of every word (``return_offsets_mapping``) and which word each position holds
        (``word_ids``), cut and padded as the positions are.

        Raw text gives offsets into itself; pre-split words, as transformers' fast tokenizers give them, offsets
        within each word, ``(0, len(word))``.
        """
        unknown = set(kwargs) - _EXTRA_ENCODE_ARGS
        if unknown:
            raise TypeError(f"ElmoTokenizer got unexpected arguments: {sorted(unknown)}")
        if return_tensors not in (None, "pt", "np"):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
        return_token_ids = bool(kwargs.get("return_token_ids", False))
        n_special = 2 if add_special_tokens else 0
        truncating = truncation_strategy != TruncationStrategy.DO_NOT_TRUNCATE and max_length is not None
        if truncating and max_length < n_special + 1:
            raise ValueError(f"max_length={max_length} leaves no room for a word beside the {n_special} boundary "
                             "tokens")
        if return_tensors is not None and batched and padding_strategy == PaddingStrategy.DO_NOT_PAD:
            padding_strategy = PaddingStrategy.LONGEST  # tensors need one length: a batch is padded to its longest

        columns: dict[str, list] = {}
        word_ids: list[list[int | None]] = []
        for k, words in enumerate(batch):
            encoded = self.prepare_for_model(
                [self._char_row(w) for w in words],
                add_special_tokens=add_special_tokens,
                padding=PaddingStrategy.DO_NOT_PAD.value,  # the batch is padded below, as a whole
                truncation=truncation_strategy.value,
                max_length=max_length,
                stride=stride,
                return_token_type_ids=return_token_type_ids,
                return_attention_mask=False,
                return_overflowing_tokens=return_overflowing_tokens,
                return_special_tokens_mask=return_special_tokens_mask,
                return_length=return_length,
                verbose=verbose,
            )
            kept = self._kept_words(len(words), len(encoded["input_ids"]) - n_special)
            boundary = [None] if add_special_tokens else []
            word_ids.append(boundary + list(kept) + boundary)
            if return_token_ids:
                ids = [self._convert_token_to_id(words[j]) for j in kept]
                encoded["token_ids"] = [self.bos_token_id, *ids, self.eos_token_id] if add_special_tokens else ids
            if return_offsets_mapping:
                spans = self._word_offsets(words, texts[k] if texts is not None else None)
                encoded["offset_mapping"] = [spans[j] if j is not None else (0, 0) for j in word_ids[-1]]
            for key, value in encoded.items():
                columns.setdefault(key, []).append(value)
        if not batch:
            columns = {"input_ids": [], "attention_mask": []} if return_attention_mask is not False else {"input_ids": []}
        padded = self.pad(
            columns,
            padding=padding_strategy.value,
            max_length=max_length,
            pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side,
            return_attention_mask=return_attention_mask,
        ) if batch else columns
        side = padding_side or self.padding_side
        for k, ids in enumerate(word_ids):
            n_pad = len(padded["input_ids"][k]) - len(ids)
            word_ids[k] = [None] * n_pad + ids if side == "left" else ids + [None] * n_pad
        data = dict(padded)
        if return_tensors is not None:
            data = {key: self._as_array(key, value) for key, value in data.items()}
        elif not batched:
            data = {key: value[0] for key, value in data.items()}
        if return_tensors == "pt":
            import torch

            data = {key: torch.from_numpy(value) for key, value in data.items()}
        return ElmoBatchEncoding(data, word_ids, tensor_type=return_tensors)

    def _as_array(self, key: str, value: list) -> np.ndarray:
        """One (padded) column as an int64 array, through numpy: much faster than transformers' conversion of
        nested lists, which matters at 50 ids a word. An empty batch keeps its shape's trailing sizes."""
        if not value:
            trailing = {"input_ids": (0, self.max_characters_per_token), "offset_mapping": (0, 2)}.get(key, (0,))
            return np.zeros((0, *trailing), dtype=np.int64)
        if key in ("overflowing_tokens", "num_truncated_tokens"):
            raise ValueError(f"{key} cannot be returned as tensors (its sequences differ in length); "
                             "use return_tensors=None")
        if key == "input_ids":
            rows = [getattr(r, "array", None) for seq in value for r in seq]
            if not rows:  # every sequence empty (no words, no boundaries)
                return np.zeros((len(value), 0, self.max_characters_per_token), dtype=np.int64)
            if all(r is not None for r in rows):
                return np.stack(rows).reshape(len(value), -1, self.max_characters_per_token)
        return np.asarray(value, dtype=np.int64)

    def _kept_words(self, n_words: int, n_kept: int) -> range:
        """The indices of the words that truncation kept (it cuts on ``truncation_side``)."""
        if self.truncation_side == "left":
            return range(n_words - n_kept, n_words)
        return range(n_kept)

    @staticmethod
    def _word_offsets(words: list[str], text: str | None) -> list[tuple[int, int]]:
        """Every word's (start, end) character span: in ``text`` when the words were split from it, else within the
        word itself (pre-split input, the convention of transformers' fast tokenizers)."""
        if text is None:
            return [(0, len(w)) for w in words]
        spans, cursor = [], 0
        for word in words:
            start = text.find(word, cursor)
            if start < 0:
                raise ValueError(f"cannot give offsets for {text!r}: the word {word!r} is not in the text as written "
                                 "(Unicode normalisation or control characters changed it); pass the words with "
                                 "is_split_into_words=True for offsets within each word")
            spans.append((start, start + len(word)))
            cursor = start + len(word)
        return spans

    # ----- padding: transformers' pad, with ELMo's padding rows -----
    def pad(  # type: ignore[override]
        self,
        encoded_inputs: Any,
        padding: bool | str | PaddingStrategy = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pads a list of encoded examples (as ``datasets``/data collators hand them over) into one batch.

        ``input_ids`` are padded with all-zero words, ``attention_mask`` with 0, ``special_tokens_mask`` with 1,
        ``token_ids`` and other per-word fields (e.g. ``labels``) with -100; other fields (e.g. a sequence label)
        are stacked as they are. This is transformers' ``pad``; only one example (its ``input_ids`` words x 50,
        which transformers would take for a batch) is wrapped into a batch of one here and unwrapped after.
        """
        if isinstance(encoded_inputs, (list, tuple)):
            if not encoded_inputs:
                raise ValueError("pad() got an empty list of examples")
            if not all(isinstance(e, Mapping) for e in encoded_inputs):
                raise TypeError("pad() takes a list of examples (dicts) or a dict of lists, got a list of "
                                f"{type(encoded_inputs[0]).__name__}")
            if "input_ids" not in encoded_inputs[0]:
                raise ValueError("pad() needs 'input_ids' in every example")
        elif not isinstance(encoded_inputs, Mapping):
            raise TypeError(f"pad() takes a list of examples or a dict of lists, got {type(encoded_inputs).__name__}")
        elif "input_ids" not in encoded_inputs:
            raise ValueError("pad() needs 'input_ids' in every example")
        elif _nesting(encoded_inputs["input_ids"]) == 2:
            out = super().pad([dict(encoded_inputs)], padding=padding, max_length=max_length,
                              pad_to_multiple_of=pad_to_multiple_of, padding_side=padding_side,
                              return_attention_mask=return_attention_mask, return_tensors=return_tensors,
                              verbose=verbose)
            return BatchEncoding({key: value[0] for key, value in out.items()})
        return super().pad(encoded_inputs, padding=padding, max_length=max_length,
                           pad_to_multiple_of=pad_to_multiple_of, padding_side=padding_side,
                           return_attention_mask=return_attention_mask, return_tensors=return_tensors,
                           verbose=verbose)

    def _pad(
        self,
        encoded_inputs: dict[str, Any],
        max_length: int | None = None,
        padding_strategy: PaddingStrategy = PaddingStrategy.DO_NOT_PAD,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
    ) -> dict:
        """One example padded to ``max_length`` words: transformers' ``_pad`` with ELMo's padding, an all-zero row
        of character ids ("no word"; ELMo has no padding token), and -100 for per-word fields it does not know."""
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        rows = encoded_inputs["input_ids"]
        n = len(rows)
        if padding_strategy == PaddingStrategy.LONGEST:
            max_length = n
        if max_length is not None and pad_to_multiple_of is not None and max_length % pad_to_multiple_of:
            max_length = (max_length // pad_to_multiple_of + 1) * pad_to_multiple_of
        if return_attention_mask and "attention_mask" not in encoded_inputs:
            encoded_inputs["attention_mask"] = [1] * n
        if padding_strategy == PaddingStrategy.DO_NOT_PAD or max_length is None or max_length <= n:
            return encoded_inputs
        side = padding_side if padding_side is not None else self.padding_side
        if side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
        fills = {"input_ids": self._padding_row, "attention_mask": 0, "special_tokens_mask": 1,
                 "token_type_ids": self.pad_token_type_id, "offset_mapping": (0, 0)}
        n_pad = max_length - n
        for key, value in encoded_inputs.items():
            if key not in fills and not (isinstance(value, (list, tuple)) and len(value) == n):
                continue  # not per word: e.g. a sequence's label
            fill = [fills.get(key, -100)] * n_pad
            encoded_inputs[key] = fill + list(value) if side == "left" else list(value) + fill
        return encoded_inputs

    # ----- decoding: a vocabulary id or a row of character ids back to its word -----
    def convert_ids_to_tokens(self, ids: Any, skip_special_tokens: bool = False) -> str | list[str]:  # type: ignore[override]
        """Words from ids: an int is a word-vocabulary id (as transformers' tokenizers read it), a row of character
        ids (an element of ``input_ids``) the word it spells; an all-zero row is padding (``pad_token``). With
        ``skip_special_tokens`` the boundaries and padding are left out."""
        ids = to_py_obj(ids)
        if isinstance(ids, int):
            return super().convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens)
        if not isinstance(ids, (list, tuple)):
            raise TypeError(f"convert_ids_to_tokens takes an int, a list of ints or rows of character ids, got "
                            f"{type(ids).__name__}")
        if not self._is_char_sequence(ids):
            if any(isinstance(i, (list, tuple)) for i in ids):
                raise ValueError(f"rows of character ids must each hold {self.max_characters_per_token} ids")
            return super().convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens)
        words = [char_ids_to_word(row) or str(self.pad_token or "") for row in ids]
        if skip_special_tokens:
            words = [w for w, row in zip(words, ids) if any(row) and w not in (self.BOS_WORD, self.EOS_WORD)]
        return words

    def _decode(self, token_ids: Any, skip_special_tokens: bool = False,
                clean_up_tokenization_spaces: bool | None = None, **kwargs: Any) -> str:
        """The words of one sequence (vocabulary ids or character rows), space-separated, as ELMo's tokenised
        training text was: ``tokenize`` gives the same words back."""
        tokens = self.convert_ids_to_tokens(token_ids, skip_special_tokens=skip_special_tokens)
        text = self.convert_tokens_to_string([tokens] if isinstance(tokens, str) else [t for t in tokens if t])
        clean = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        return self.clean_up_tokenization(text) if clean else text

    def decode(self, token_ids: Any, skip_special_tokens: bool = False, **kwargs: Any) -> str | list[str]:  # type: ignore[override]
        """One sequence's text; a batch (a list of sequences) gives a list of texts. One sequence of ``input_ids``
        is itself a list of lists (words x 50), which transformers would read as a batch: it is told apart by its
        rows' width."""
        token_ids = to_py_obj(token_ids)
        depth = _nesting(token_ids)
        if depth == 3 or (depth == 2 and not self._is_char_sequence(token_ids)):
            return [self._decode(seq, skip_special_tokens=skip_special_tokens, **kwargs) for seq in token_ids]
        return self._decode(token_ids, skip_special_tokens=skip_special_tokens, **kwargs)

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = False, **kwargs: Any) -> list[str]:  # type: ignore[override]
        """Every sequence of a batch decoded (``decode`` of each)."""
        return [self._decode(seq, skip_special_tokens=skip_special_tokens, **kwargs) for seq in to_py_obj(sequences)]


# ----------------------------------------------------------------------------------------------------------------
# pipeline("token-classification") for ELMo
# ----------------------------------------------------------------------------------------------------------------
# What a token classifier's config.json declares (``config.custom_pipelines``) so that
# ``pipeline("token-classification", model=folder, trust_remote_code=True)`` runs the pipeline below: transformers'
# own reads one id per token (``int(input_ids[i])``), where ELMo has a row of character ids per word.
CUSTOM_PIPELINES = {
    "token-classification": {
        "impl": "tokenization_elmo.ElmoTokenClassificationPipeline",
        "pt": ["AutoModelForTokenClassification"],
        "tf": [],
        "type": "text",
    }
}


def _token_classification_pipeline() -> type:
    from transformers import TokenClassificationPipeline

    class ElmoTokenClassificationPipeline(TokenClassificationPipeline):
        """transformers' token-classification pipeline for ELMo: every position's word is read from its row of
        character ids (transformers' own takes the position for one token id), and found in the sentence for its
        ``start``/``end`` (None where normalisation changed it). A position is a whole word, never a sub-word."""

        def gather_pre_entities(self, sentence: str, input_ids: Any, scores: np.ndarray, offset_mapping: Any,
                                special_tokens_mask: np.ndarray, aggregation_strategy: Any,
                                word_ids: Any = None, word_to_chars_map: Any = None) -> list[dict]:
            rows = to_py_obj(input_ids)
            entities, cursor = [], 0
            for idx, token_scores in enumerate(scores):
                if special_tokens_mask[idx]:
                    continue
                word = char_ids_to_word(rows[idx])
                start = sentence.find(word, cursor) if sentence and word else -1
                end = None
                if start >= 0:
                    end = cursor = start + len(word)
                entities.append({"word": word, "scores": token_scores, "start": start if start >= 0 else None,
                                 "end": end, "index": idx, "is_subword": False})
            return entities

    return ElmoTokenClassificationPipeline


def __getattr__(name: str) -> Any:
    # ElmoTokenClassificationPipeline is built on first use: transformers.pipelines is a heavy import that the
    # tokenizer itself never needs
    if name == "ElmoTokenClassificationPipeline":
        cls = globals()[name] = _token_classification_pipeline()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
