"""Tokenizer of ELMo: text → words → the original character ids.

ELMo reads characters, not word-piece ids: every word becomes ``max_characters_per_token`` (50) character ids, so
``input_ids`` has shape ``(batch, words, 50)``. The ids are those of the original bilm-tf/AllenNLP implementation
(see ``word_to_char_ids``). Raw text is split into words the way the 1B Word Benchmark that ELMo was trained on was
tokenised: by the Moses tokenizer for English (``split_words``, identical to sacremoses' ``MosesTokenizer("en")``
with ``escape=False``: punctuation separated, ``don't`` → ``don 't``, abbreviations such as ``U.S.`` kept).

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


# Shared int objects for the character ids a row holds (Python shares only -5..256): the marks (257-261) and the
# padding fill most of a row, and an int object each would be ~1.1 KB of a cached row's ~2.4 KB.
_SHARED_INTS = tuple(range(4096))


class _CharRow(list):
    """One word's character ids as the list of ints that transformers' encoding paths carry, with the same ids as an
    int32 array beside it: a batch's tensor is stacked from the arrays, ~10x faster than converting nested lists.
    ~1 KB a row (a tokenizer caches 32,768 of them)."""

    __slots__ = ("array",)

    def __init__(self, ids: list[int]) -> None:
        super().__init__([_SHARED_INTS[i] if 0 <= i < len(_SHARED_INTS) else i for i in ids])
        self.array = np.asarray(ids, dtype=np.int32)


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
        do_split: split raw text into words (Moses' English tokenizer, ``split_words``); ``is_split_into_words=True``
            bypasses it per call.
        model_max_length: maximum number of words per sequence, boundaries included, used by ``truncation=True``.
        pad_token: the name of a padding position, whose row of character ids is all zeros ("no word"); it is not a
            word of the vocabulary (``token_ids`` are -100 there).
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]
    BOS_WORD = "<S>"
    EOS_WORD = "</S>"
    UNK_WORD = "<UNK>"
    # Words whose character ids are kept (the first ones met, which in running text are the frequent ones): an entry
    # is ~1 KB (the list transformers carries and its array), a miss costs ~3.5 µs against ~40 µs a word for the
    # whole encoding, so over a corpus (hf-elmo embed) memory stops growing at ~35 MB instead of with the input.
    CHAR_CACHE_WORDS = 32_768

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
        """The 50 character ids of one word, int64 (cached: a batch repeats most of its words)."""
        return self._char_row(word).array.astype(np.int64)

    @property
    def pad_token_id(self) -> int | None:
        """0: what pipelines and collators fill the padding positions of ``input_ids`` with, so that a padding
        position is the all-zero row of character ids that ELMo reads as "no word". (The word vocabulary has no
        padding word: ``token_ids`` are -100 there.)"""
        return None if self.pad_token is None else 0

    def char_row_ids(self, word: str) -> list[int]:
        """The ``max_characters_per_token`` character ids of one word, uncached (bilm-tf's bytes and marks)."""
        return word_to_char_ids(word, self.max_characters_per_token)

    def _char_row(self, word: str) -> _CharRow:
        """``word_char_ids`` as the list of ints that transformers' encoding paths carry (cached, and never changed
        in place: prepare_for_model and pad only build new lists of rows)."""
        row = self._row_cache.get(word)
        if row is None:
            row = _CharRow(self.char_row_ids(word))
            if len(self._row_cache) < self.CHAR_CACHE_WORDS:
                self._row_cache[word] = row
        return row

    def convert_tokens_to_char_ids(self, tokens: str | Sequence[str]) -> list[int] | list[list[int]]:
        """The model input of words: one row of character ids per word (one row for a single word), what
        ``input_ids`` holds (the pad token: the all-zero row of padding); ``convert_tokens_to_ids`` gives their
        word-vocabulary ids instead."""
        def row(token: str) -> list[int]:
            return list(self._padding_row if token == self.pad_token else self._char_row(token))

        return row(tokens) if isinstance(tokens, str) else [row(str(t)) for t in tokens]

    def _row_starts(self) -> set[int]:
        """The ids a row of character ids can start with: the beginning-of-word mark, or 0 (the padding row)."""
        return {BOW_CHAR + 1, 0}

    def _is_char_sequence(self, ids: Any) -> bool:
        """Whether ``ids`` (python lists) is one sequence of character-id rows rather than a batch of vocabulary-id
        sequences: rows exactly ``max_characters_per_token`` wide that each start as a character row does (a batch
        of 50 word ids a row is otherwise read as words)."""
        starts = self._row_starts()
        return (isinstance(ids, (list, tuple)) and len(ids) > 0 and isinstance(ids[0], (list, tuple))
                and all(len(r) == self.max_characters_per_token and r[0] in starts for r in ids))

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
                return np.stack(rows).astype(np.int64).reshape(len(value), -1, self.max_characters_per_token)
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
        # the control characters that splitting deletes are looked past: a word's span covers those inside it
        kept = [i for i, c in enumerate(text) if not _ASCII_CONTROL.match(c)] if _ASCII_CONTROL.search(text) else None
        visible = text if kept is None else "".join(text[i] for i in kept)
        spans, cursor = [], 0
        for word in words:
            start = visible.find(word, cursor)
            if start < 0:
                raise ValueError(f"cannot give offsets for {text!r}: the word {word!r} is not in the text as written "
                                 "(Unicode normalisation changed it); pass the words with is_split_into_words=True "
                                 "for offsets within each word")
            cursor = start + len(word)
            spans.append((start, cursor) if kept is None else (kept[start], kept[cursor - 1] + 1))
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
        ``start``/``end`` (None where NFC normalisation or a deleted control character changed it). A position is a
        whole word, never a sub-word."""

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


# ----------------------------------------------------------------------------------------------------------------
# Word splitting: the Moses tokenizer for English (mosesdecoder's tokenizer.perl, as sacremoses runs it)
# ----------------------------------------------------------------------------------------------------------------
def split_words(text: str) -> list[str]:
    """Splits raw text into words as the ELMo training data (the 1B Word Benchmark) was tokenised: the Moses
    tokenizer for English, exactly as ``sacremoses.MosesTokenizer(lang="en").tokenize(text, escape=False)`` (its
    default options) splits it, which tests/test_elmo_moses_splitting.py checks on thousands of texts.

    Two differences, both where sacremoses' words would not be the text's:

    - the text is NFC-normalised first (sacremoses does not normalise): decomposed text (``e`` + U+0301) would
      otherwise lose every accent to a "word" of its own (``cafe``, U+0301), as the combining marks are no letters
      to Moses. On NFC text (nearly all text) this changes nothing.
    - sacremoses marks runs of dots with the placeholder ``DOTMULTI`` and turns every ``(DOT)+MULTI`` back into
      dots, so the literal text ``DOTMULTI`` becomes ``.``; runs of dots are kept as they are here, without a
      placeholder, and such text keeps its letters.

    Like Moses, it deletes the ASCII control characters that are not whitespace (``a\\x00b`` → ``ab``); every
    other character of a word is the text's own.
    """
    if not text:
        return []
    text = _ASCII_CONTROL.sub("", _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text))).strip()
    for needed, pattern, replacement in _RULES:
        if needed in text:
            text = pattern.sub(replacement, text)
    words = _split_final_periods(text.split())
    if words and words[-1].endswith(".'"):  # a period + quote ending the text: both stand alone
        stem = words.pop()[:-2]
        words += [stem, ".", "'"] if stem else [".", "'"]
    return words


def _split_final_periods(words: list[str]) -> list[str]:
    """Moses' period rule: a word's final period stands alone unless the word is an abbreviation (``U.S.``, a
    nonbreaking prefix such as ``Mr.``, ``No.`` before a number) or the next word starts in lower case."""
    out: list[str] = []
    for i, word in enumerate(words):
        # a run of dots ("...") is a word of its own and keeps them all
        if len(word) > 1 and word[-1] == "." and word[-2] != ".":
            stem = word[:-1]
            following = words[i + 1] if i + 1 < len(words) else ""
            if not (
                ("." in stem and _ALPHA_CHAR.search(stem))  # an abbreviation with periods inside: "U.S.", "e.g."
                or stem in _NONBREAKING_PREFIXES
                or _LOWER_CHAR.match(following)  # the sentence goes on: "etc. and"
                or (stem in _NUMERIC_ONLY_PREFIXES and following[:1] in _ASCII_DIGITS)  # "No. 5"
            ):
                out += [stem, "."]
                continue
        out.append(word)
    return out


def _char_class(table: str) -> str:
    """The body of a regular-expression character class from a table of hexadecimal code points and ranges."""
    members = []
    for item in table.split():
        first, _, last = item.partition("-")
        members.append(re.escape(chr(int(first, 16))) + (f"-{re.escape(chr(int(last, 16)))}" if last else ""))
    return "".join(members)


# Moses' English nonbreaking prefixes (sacremoses' nonbreaking_prefix.en, the list of mosesdecoder's
# share/nonbreaking_prefixes): a word ending in "." whose stem is one of these keeps its period.
_NONBREAKING_PREFIXES = frozenset(
    """A B C D E F G H I J K L M N O P Q R S T U V W X Y Z Adj Adm Adv Asst Bart Bldg Brig Bros Capt Cmdr Col Comdr
    Con Corp Cpl DR Dr Drs Ens Gen Gov Hon Hr Hosp Insp Lt MM MR MRS MS Maj Messrs Mlle Mme Mr Mrs Ms Msgr Op Ord
    Pfc Ph Prof Pvt Rep Reps Res Rev Rt Sen Sens Sfc Sgt Sr St Supt Surg v vs i.e rev e.g Rs Nos Nr Jan Feb Mar Apr
    Jun Jul Aug Sep Oct Nov Dec""".split()
)
# The prefixes of that list marked #NUMERIC_ONLY#: they keep their period only before a number ("No. 5", "pp. 12").
_NUMERIC_ONLY_PREFIXES = frozenset({"No", "Art", "pp"})
_ASCII_DIGITS = frozenset("0123456789")

# Moses' character classes as sacremoses defines them: its perluniprops data (Perl's Unicode properties of an older
# Unicode version), which Python's unicodedata cannot reproduce (e.g. CJK ideographs and Hangul syllables are no
# letters there, some combining vowel signs are), as hexadecimal code points and ranges of code points.
# tests/test_elmo_moses_splitting.py checks each against sacremoses' own.
# IsAlpha, the letters (with sacremoses' additions, the Indic viramas and nuktas)
_MOSES_ALPHA = (
    "41-5a 61-7a aa b5 ba c0-d6 d8-f6 f8-2c1 2c6-2d1 2e0-2e4 2ec 2ee 345 370-374 376-377 37a-37d 37f 386 388-38a 38c "
    "38e-3a1 3a3-3f5 3f7-481 48a-52f 531-556 559 561-587 5b0-5bd 5bf 5c1-5c2 5c4-5c5 5c7 5d0-5ea 5f0-5f2 610-61a "
    "620-657 659-65f 66e-6d3 6d5-6dc 6e1-6e8 6ed-6ef 6fa-6fc 6ff 710-73f 74d-7b1 7ca-7ea 7f4-7f5 7fa 800-817 81a-82c "
    "840-858 8a0-8b2 8e4-8e9 8f0-950 955-963 971-983 985-98c 98f-990 993-9a8 9aa-9b0 9b2 9b6-9b9 9bc-9c4 9c7-9c8 "
    "9cb-9ce 9d7 9dc-9dd 9df-9e3 9f0-9f1 a01-a03 a05-a0a a0f-a10 a13-a28 a2a-a30 a32-a33 a35-a36 a38-a39 a3c a3e-a42 "
    "a47-a48 a4b-a4d a51 a59-a5c a5e a70-a75 a81-a83 a85-a8d a8f-a91 a93-aa8 aaa-ab0 ab2-ab3 ab5-ab9 abc-ac5 ac7-ac9 "
    "acb-acd ad0 ae0-ae3 afd-aff b01-b03 b05-b0c b0f-b10 b13-b28 b2a-b30 b32-b33 b35-b39 b3c-b44 b47-b48 b4b-b4d "
    "b56-b57 b5c-b5d b5f-b63 b71 b82-b83 b85-b8a b8e-b90 b92-b95 b99-b9a b9c b9e-b9f ba3-ba4 ba8-baa bae-bb9 bbe-bc2 "
    "bc6-bc8 bca-bcd bd0 bd7 c00-c03 c05-c0c c0e-c10 c12-c28 c2a-c39 c3d-c44 c46-c48 c4a-c4d c55-c56 c58-c59 c60-c63 "
    "c81-c83 c85-c8c c8e-c90 c92-ca8 caa-cb3 cb5-cb9 cbc-cc4 cc6-cc8 cca-ccd cd5-cd6 cde ce0-ce3 cf1-cf2 d01-d03 "
    "d05-d0c d0e-d10 d12-d44 d46-d48 d4a-d4e d57 d60-d63 d7a-d7f d82-d83 d85-d96 d9a-db1 db3-dbb dbd dc0-dc6 dca "
    "dcf-dd4 dd6 dd8-ddf df2-df3 e01-e3a e40-e46 e4d e81-e82 e84 e87-e88 e8a e8d e94-e97 e99-e9f ea1-ea3 ea5 ea7 "
    "eaa-eab ead-ebd ec0-ec4 ec6 ecd edc-edf f00 f40-f47 f49-f6c f71-f81 f88-f97 f99-fbc 1000-1036 1038-1039 "
    "103b-103f 1050-1062 1065-1068 106e-1086 108e 109c-109d 10a0-10c5 10c7 10cd 10d0-10fa 10fc-1248 124a-124d "
    "1250-1256 1258 125a-125d 1260-1288 128a-128d 1290-12b0 12b2-12b5 12b8-12be 12c0 12c2-12c5 12c8-12d6 12d8-1310 "
    "1312-1315 1318-135a 135f 1380-138f 13a0-13f4 1401-166c 166f-167f 1681-169a 16a0-16ea 16ee-16f8 1700-170c "
    "170e-1714 1720-1733 1740-1753 1760-176c 176e-1770 1772-1773 1780-17b3 17b6-17c8 17d7 17dc 1820-1877 1880-18aa "
    "18b0-18f5 1900-191e 1920-192b 1930-1938 1950-196d 1970-1974 1980-19ab 19b0-19c9 1a00-1a1b 1a20-1a5e 1a61-1a74 "
    "1aa7 1b00-1b33 1b35-1b43 1b45-1b4b 1b80-1ba9 1bab-1baf 1bba-1be5 1be7-1bf1 1c00-1c35 1c37 1c4d-1c4f 1c5a-1c7d "
    "1ce9-1cec 1cee-1cf3 1cf5-1cf6 1d00-1dbf 1de7-1df4 1e00-1f15 1f18-1f1d 1f20-1f45 1f48-1f4d 1f50-1f57 1f59 1f5b "
    "1f5d 1f5f-1f7d 1f80-1fb4 1fb6-1fbc 1fbe 1fc2-1fc4 1fc6-1fcc 1fd0-1fd3 1fd6-1fdb 1fe0-1fec 1ff2-1ff4 1ff6-1ffc "
    "2071 207f 2090-209c 2102 2107 210a-2113 2115 2119-211d 2124 2126 2128 212a-212d 212f-2139 213c-213f 2145-2149 "
    "214e 2160-2188 24b6-24e9 25cc 2c00-2c2e 2c30-2c5e 2c60-2ce4 2ceb-2cee 2cf2-2cf3 2d00-2d25 2d27 2d2d 2d30-2d67 "
    "2d6f 2d80-2d96 2da0-2da6 2da8-2dae 2db0-2db6 2db8-2dbe 2dc0-2dc6 2dc8-2dce 2dd0-2dd6 2dd8-2dde 2de0-2dff 2e2f "
    "3006 3031-3035 303c 3041-3096 309d-309f 30a1-30fa 30fc-30ff 3105-312d 3131-318e 31a0-31ba 31f0-31ff a000-a48c "
    "a4d0-a4fd a500-a60c a610-a61f a62a-a62b a640-a66e a674-a67b a67f-a69d a69f-a6ef a717-a71f a722-a788 a78b-a78e "
    "a790-a7ad a7b0-a7b1 a7f7-a801 a803-a805 a807-a80a a80c-a827 a840-a873 a880-a8c4 a8f2-a8f7 a8fb a90a-a92a "
    "a930-a953 a960-a97c a980-a9b2 a9b4-a9bf a9cf a9e0-a9e4 a9e6-a9ef a9fa-a9fe aa00-aa36 aa40-aa4d aa60-aa76 aa7a "
    "aa7e-aabe aac0 aac2 aadb-aadd aae0-aaef aaf2-aaf6 ab01-ab06 ab09-ab0e ab11-ab16 ab20-ab26 ab28-ab2e ab30-ab5a "
    "ab5c-ab5f ab64-ab65 abc0-abea d7b0-d7c6 d7cb-d7fb fb00-fb06 fb13-fb17 fb1d-fb28 fb2a-fb36 fb38-fb3c fb3e "
    "fb40-fb41 fb43-fb44 fb46-fbb1 fbd3-fd3d fd50-fd8f fd92-fdc7 fdf0-fdfb fe70-fe74 fe76-fefc ff21-ff3a ff41-ff5a "
    "ff66-ffbe ffc2-ffc7 ffca-ffcf ffd2-ffd7 ffda-ffdc 10a3f 11046 110b9-110ba 11133 11173 111c0 111ca 11235-11236 "
    "112e9-112ea 1133c 1134d 11442 11446 114c2-114c3 115bf-115c0 1163f 116b6-116b7 11839-1183a 119e0 11a34 11c3f "
    "11d42 11d45 11d97 1e94a"
)
# what IsAlnum adds to IsAlpha: the decimal digits
_MOSES_DIGITS = (
    "30-39 660-669 6f0-6f9 7c0-7c9 966-96f 9e6-9ef a66-a6f ae6-aef b66-b6f be6-bef c66-c6f ce6-cef d66-d6f de6-def "
    "e50-e59 ed0-ed9 f20-f29 1040-1049 1090-1099 17e0-17e9 1810-1819 1946-194f 19d0-19d9 1a80-1a89 1a90-1a99 "
    "1b50-1b59 1bb0-1bb9 1c40-1c49 1c50-1c59 a620-a629 a8d0-a8d9 a900-a909 a9d0-a9d9 a9f0-a9f9 aa50-aa59 abf0-abf9 "
    "ff10-ff19"
)
# IsN, the numbers (digits, numerals, fractions, ...)
_MOSES_NUMBER = (
    "30-39 b2-b3 b9 bc-be 660-669 6f0-6f9 7c0-7c9 966-96f 9e6-9ef 9f4-9f9 a66-a6f ae6-aef b66-b6f b72-b77 be6-bf2 "
    "c66-c6f c78-c7e ce6-cef d66-d75 de6-def e50-e59 ed0-ed9 f20-f33 1040-1049 1090-1099 1369-137c 16ee-16f0 "
    "17e0-17e9 17f0-17f9 1810-1819 1946-194f 19d0-19da 1a80-1a89 1a90-1a99 1b50-1b59 1bb0-1bb9 1c40-1c49 1c50-1c59 "
    "2070 2074-2079 2080-2089 2150-2182 2185-2189 2460-249b 24ea-24ff 2776-2793 2cfd 3192-3195 3220-3229 3248-324f "
    "3251-325f 3280-3289 32b1-32bf a620-a629 a6e6-a6ef a830-a835 a8d0-a8d9 a900-a909 a9d0-a9d9 a9f0-a9f9 aa50-aa59 "
    "abf0-abf9 ff10-ff19"
)
# IsLower, the lower-case letters
_MOSES_LOWER = (
    "61-7a aa b5 ba df-f6 f8-ff 101 103 105 107 109 10b 10d 10f 111 113 115 117 119 11b 11d 11f 121 123 125 127 129 "
    "12b 12d 12f 131 133 135 137-138 13a 13c 13e 140 142 144 146 148-149 14b 14d 14f 151 153 155 157 159 15b 15d 15f "
    "161 163 165 167 169 16b 16d 16f 171 173 175 177 17a 17c 17e-180 183 185 188 18c-18d 192 195 199-19b 19e 1a1 1a3 "
    "1a5 1a8 1aa-1ab 1ad 1b0 1b4 1b6 1b9-1ba 1bd-1bf 1c6 1c9 1cc 1ce 1d0 1d2 1d4 1d6 1d8 1da 1dc-1dd 1df 1e1 1e3 1e5 "
    "1e7 1e9 1eb 1ed 1ef-1f0 1f3 1f5 1f9 1fb 1fd 1ff 201 203 205 207 209 20b 20d 20f 211 213 215 217 219 21b 21d 21f "
    "221 223 225 227 229 22b 22d 22f 231 233-239 23c 23f-240 242 247 249 24b 24d 24f-293 295-2b8 2c0-2c1 2e0-2e4 345 "
    "371 373 377 37a-37d 390 3ac-3ce 3d0-3d1 3d5-3d7 3d9 3db 3dd 3df 3e1 3e3 3e5 3e7 3e9 3eb 3ed 3ef-3f3 3f5 3f8 "
    "3fb-3fc 430-45f 461 463 465 467 469 46b 46d 46f 471 473 475 477 479 47b 47d 47f 481 48b 48d 48f 491 493 495 497 "
    "499 49b 49d 49f 4a1 4a3 4a5 4a7 4a9 4ab 4ad 4af 4b1 4b3 4b5 4b7 4b9 4bb 4bd 4bf 4c2 4c4 4c6 4c8 4ca 4cc 4ce-4cf "
    "4d1 4d3 4d5 4d7 4d9 4db 4dd 4df 4e1 4e3 4e5 4e7 4e9 4eb 4ed 4ef 4f1 4f3 4f5 4f7 4f9 4fb 4fd 4ff 501 503 505 507 "
    "509 50b 50d 50f 511 513 515 517 519 51b 51d 51f 521 523 525 527 529 52b 52d 52f 561-587 13f8-13fd 1c80-1c88 "
    "1d00-1dbf 1e01 1e03 1e05 1e07 1e09 1e0b 1e0d 1e0f 1e11 1e13 1e15 1e17 1e19 1e1b 1e1d 1e1f 1e21 1e23 1e25 1e27 "
    "1e29 1e2b 1e2d 1e2f 1e31 1e33 1e35 1e37 1e39 1e3b 1e3d 1e3f 1e41 1e43 1e45 1e47 1e49 1e4b 1e4d 1e4f 1e51 1e53 "
    "1e55 1e57 1e59 1e5b 1e5d 1e5f 1e61 1e63 1e65 1e67 1e69 1e6b 1e6d 1e6f 1e71 1e73 1e75 1e77 1e79 1e7b 1e7d 1e7f "
    "1e81 1e83 1e85 1e87 1e89 1e8b 1e8d 1e8f 1e91 1e93 1e95-1e9d 1e9f 1ea1 1ea3 1ea5 1ea7 1ea9 1eab 1ead 1eaf 1eb1 "
    "1eb3 1eb5 1eb7 1eb9 1ebb 1ebd 1ebf 1ec1 1ec3 1ec5 1ec7 1ec9 1ecb 1ecd 1ecf 1ed1 1ed3 1ed5 1ed7 1ed9 1edb 1edd "
    "1edf 1ee1 1ee3 1ee5 1ee7 1ee9 1eeb 1eed 1eef 1ef1 1ef3 1ef5 1ef7 1ef9 1efb 1efd 1eff-1f07 1f10-1f15 1f20-1f27 "
    "1f30-1f37 1f40-1f45 1f50-1f57 1f60-1f67 1f70-1f7d 1f80-1f87 1f90-1f97 1fa0-1fa7 1fb0-1fb4 1fb6-1fb7 1fbe "
    "1fc2-1fc4 1fc6-1fc7 1fd0-1fd3 1fd6-1fd7 1fe0-1fe7 1ff2-1ff4 1ff6-1ff7 2071 207f 2090-209c 210a 210e-210f 2113 "
    "212f 2134 2139 213c-213d 2146-2149 214e 2170-217f 2184 24d0-24e9 25cc 2c30-2c5e 2c61 2c65-2c66 2c68 2c6a 2c6c "
    "2c71 2c73-2c74 2c76-2c7d 2c81 2c83 2c85 2c87 2c89 2c8b 2c8d 2c8f 2c91 2c93 2c95 2c97 2c99 2c9b 2c9d 2c9f 2ca1 "
    "2ca3 2ca5 2ca7 2ca9 2cab 2cad 2caf 2cb1 2cb3 2cb5 2cb7 2cb9 2cbb 2cbd 2cbf 2cc1 2cc3 2cc5 2cc7 2cc9 2ccb 2ccd "
    "2ccf 2cd1 2cd3 2cd5 2cd7 2cd9 2cdb 2cdd 2cdf 2ce1 2ce3-2ce4 2cec 2cee 2cf3 2d00-2d25 2d27 2d2d a641 a643 a645 "
    "a647 a649 a64b a64d a64f a651 a653 a655 a657 a659 a65b a65d a65f a661 a663 a665 a667 a669 a66b a66d a681 a683 "
    "a685 a687 a689 a68b a68d a68f a691 a693 a695 a697 a699 a69b-a69d a723 a725 a727 a729 a72b a72d a72f-a731 a733 "
    "a735 a737 a739 a73b a73d a73f a741 a743 a745 a747 a749 a74b a74d a74f a751 a753 a755 a757 a759 a75b a75d a75f "
    "a761 a763 a765 a767 a769 a76b a76d a76f-a778 a77a a77c a77f a781 a783 a785 a787 a78c a78e a791 a793-a795 a797 "
    "a799 a79b a79d a79f a7a1 a7a3 a7a5 a7a7 a7a9 a7b5 a7b7 a7f8-a7fa ab30-ab5a ab5c-ab65 ab70-abbf fb00-fb06 "
    "fb13-fb17 ff41-ff5a 10428-1044f 104d8-104fb 10cc0-10cf2 118c0-118df 1d41a-1d433 1d44e-1d454 1d456-1d467 "
    "1d482-1d49b 1d4b6-1d4b9 1d4bb 1d4bd-1d4c3 1d4c5-1d4cf 1d4ea-1d503 1d51e-1d537 1d552-1d56b 1d586-1d59f "
    "1d5ba-1d5d3 1d5ee-1d607 1d622-1d63b 1d656-1d66f 1d68a-1d6a5 1d6c2-1d6da 1d6dc-1d6e1 1d6fc-1d714 1d716-1d71b "
    "1d736-1d74e 1d750-1d755 1d770-1d788 1d78a-1d78f 1d7aa-1d7c2 1d7c4-1d7c9 1d7cb 1e922-1e943"
)

_ALPHA = _char_class(_MOSES_ALPHA)
_NUMBER = _char_class(_MOSES_NUMBER)
_ALNUM = _ALPHA + _char_class(_MOSES_DIGITS)
_ALPHA_CHAR = re.compile(f"[{_ALPHA}]")
_LOWER_CHAR = re.compile(f"[{_char_class(_MOSES_LOWER)}]")
_WHITESPACE = re.compile(r"\s+")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b]")  # the ASCII control characters that are not whitespace

# The rules, in Moses' order, on text whose whitespace is single spaces; each puts spaces where words part. Each
# comes with a string it cannot match without (so text without it skips the rule: most text has no apostrophe).
_RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    # every character but a letter, a digit and . ' ` , - stands alone
    ("", re.compile(rf"([^{_ALNUM}\s.'`,\-])"), r" \1 "),
    # a run of dots ("...") stands alone; no rule below splits it
    ("..", re.compile(r"\.{2,}"), r" \g<0> "),
    # a comma stands alone unless a number is on both sides ("5,300"), or at the end of the text after a number
    (",", re.compile(rf"([^{_NUMBER}]),"), r"\1 , "),
    (",", re.compile(rf",([^{_NUMBER}])"), r" , \1"),
    (",", re.compile(rf"([{_NUMBER}]),$"), r"\1 , "),
    # an apostrophe between two non-letters, after a non-letter non-number before a letter, or after a letter
    # before a non-letter stands alone ("' quoted '")
    ("'", re.compile(rf"([^{_ALPHA}])'([^{_ALPHA}])"), r"\1 ' \2"),
    ("'", re.compile(rf"([^{_ALPHA}{_NUMBER}])'([{_ALPHA}])"), r"\1 ' \2"),
    ("'", re.compile(rf"([{_ALPHA}])'([^{_ALPHA}])"), r"\1 ' \2"),
    # between letters it starts the next word ("don 't", "ma 'am", "O 'Donnell"), after a number before s too
    # ("1990 's")
    ("'", re.compile(rf"([{_ALPHA}])'([{_ALPHA}])"), r"\1 '\2"),
    ("'", re.compile(rf"([{_NUMBER}])'s"), r"\1 's"),
)
