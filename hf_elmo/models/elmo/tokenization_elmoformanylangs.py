"""Tokenizer of the ELMoForManyLangs models (Che et al., 2018: 44 languages): words → the model's own character and
word ids, exactly as the original package (``elmoformanylangs``: ``read_list`` and ``create_one_batch``) builds them.

What differs from bilm-tf's ELMo (``ElmoTokenizer``), all facts of the original that its models were trained with:

* characters are ids of the model's own character lexicon (``char.dic``, unicode characters with ``<oov>``), not
  UTF-8 bytes; words are ids of its word lexicon (``word.dic``, ``<oov>`` for unknown words), which the model reads
  beside the characters (``token_ids``);
* each word's row of ``max_characters_per_token`` (50) slots is filled with ``<pad>``; slot 0 holds the id of
  **``<eow>``** and the slot after the last character the id of **``<bow>``** (the original swaps them:
  ``bow_id, eow_id = char2id['<eow>'], char2id['<bow>']``); a word longer than 48 characters is cut to 48, its
  word id is that of the cut word; a word equal to ``<bos>`` or ``<eos>`` (wherever it stands) is encoded
  ``[<eow>, <bos>|<eos>, <bow>]`` with the lexicon's id of that whole token;
* every sentence is read between the literal words ``<bos>`` and ``<eos>``; padding positions hold ``<pad>`` (word
  id and a row of ``<pad>`` characters);
* the lexicons are read as ``Embedder.get_model`` reads them: ``line.strip().split('\\t')``, and a line left with one
  field (its key was whitespace, stripped away) is the entry of U+3000.

Input is a list of words (``is_split_into_words=True``), as ``Embedder.sents2elmo`` takes sentences; a plain string
is split on whitespace. The folder's ``word.dic`` and ``char.dic`` are the lexicons in the original format.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from transformers.utils import to_py_obj

from .tokenization_elmo import ElmoTokenizer, _CharRow

VOCAB_FILES_NAMES = {"vocab_file": "word.dic", "char_file": "char.dic"}
# The markers the character lexicon must hold (the original asserts them) and the word lexicon's specials.
CHAR_SPECIALS = ("<bow>", "<eow>", "<oov>", "<pad>", "<bos>", "<eos>")
WORD_SPECIALS = ("<oov>", "<pad>", "<bos>", "<eos>")
# A lexicon line whose key was whitespace (stripped with the line) stands for this character (Embedder.get_model).
STRIPPED_KEY = "\u3000"


class LexiconError(ValueError):
    """A ``word.dic``/``char.dic`` that the original reader could not read, or that lacks a required entry."""


def read_lexicon(path: str | os.PathLike, required: Sequence[str] = ()) -> dict[str, int]:
    """A lexicon (``token<TAB>id`` per line, UTF-8) read as ``Embedder.get_model`` reads it: each line stripped
    and split on tabs, a line left with one field keyed U+3000, a later line overriding an earlier one. Lines break
    where ``codecs.open`` breaks them (``str.splitlines``); blank lines are skipped. Raises ``FileNotFoundError`` or
    [`LexiconError`] naming the file (and the line, or the missing ``required`` entries)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"ELMoForManyLangs lexicon not found: {path}") from None
    except UnicodeDecodeError as e:
        raise LexiconError(f"{path} is not UTF-8 text: {e}") from None
    lexicon: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.strip().split("\t")
        if fields == [""]:
            continue
        if len(fields) == 1:
            fields.insert(0, STRIPPED_KEY)
        if len(fields) != 2 or not fields[1].isdigit():
            raise LexiconError(f"{path}, line {number}: expected 'token<TAB>id', got {line[:80]!r}")
        lexicon[fields[0]] = int(fields[1])
    if not lexicon:
        raise LexiconError(f"{path} holds no entries")
    missing = [key for key in required if key not in lexicon]
    if missing:
        raise LexiconError(f"{path} lacks {', '.join(missing)} (every ELMoForManyLangs lexicon holds them)")
    return lexicon


def write_lexicon(lexicon: dict[str, int], path: str | os.PathLike) -> None:
    """Writes ``lexicon`` in the original format, by id; ``read_lexicon`` reads back the same dictionary."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for token, index in sorted(lexicon.items(), key=lambda kv: (kv[1], kv[0])):
            f.write(f"{token}\t{index}\n")


class ElmoForManyLangsTokenizer(ElmoTokenizer):
    """Words → ``input_ids`` (batch, words, 50) character ids, ``token_ids`` (batch, words) word ids and
    ``attention_mask``, as ELMoForManyLangs' ``create_one_batch`` builds them (see the module's docstring).

    ``ElmoTokenizer``'s encoding paths (``__call__``, ``prepare_for_model``, ``pad``, truncation, ``word_ids()``)
    with this model's rows, boundaries and lexicons; ``token_ids`` are always returned (the model reads them).
    ``convert_tokens_to_ids`` gives word ids; ``decode`` reads word ids or rows of character ids.

    Args:
        vocab_file: the word lexicon (``word.dic``).
        char_file: the character lexicon (``char.dic``).
        max_characters_per_token: slots per word (50); words are cut to this minus 2 characters.
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "token_ids", "attention_mask"]
    BOS_WORD = "<bos>"
    EOS_WORD = "<eos>"
    UNK_WORD = "<oov>"

    def __init__(
        self,
        vocab_file: str,
        char_file: str,
        max_characters_per_token: int = 50,
        bos_token: str = "<bos>",
        eos_token: str = "<eos>",
        unk_token: str = "<oov>",
        pad_token: str = "<pad>",
        model_max_length: int = 10**6,
        clean_up_tokenization_spaces: bool = False,
        **kwargs: Any,
    ) -> None:
        if max_characters_per_token < 3:
            raise ValueError(f"max_characters_per_token must be at least 3, got {max_characters_per_token}")
        self.max_characters_per_token = int(max_characters_per_token)
        self.do_split = False
        self.vocab = read_lexicon(vocab_file, WORD_SPECIALS)
        self.char_vocab = read_lexicon(char_file, CHAR_SPECIALS)
        self._unk_word = str(unk_token)
        self.ids_to_tokens = {i: w for w, i in self.vocab.items()}
        self.ids_to_chars = {i: c for c, i in self.char_vocab.items()}
        c = self.char_vocab
        # swapped as in the original's create_one_batch: slot 0 holds <eow>, the slot after the word <bow>
        self._first, self._last, self._char_oov, self._char_pad = c["<eow>"], c["<bow>"], c["<oov>"], c["<pad>"]
        self._word_pad = self.vocab["<pad>"]
        self._row_cache: dict[str, _CharRow] = {}
        self._padding_row = _CharRow([self._char_pad] * self.max_characters_per_token)
        # ElmoTokenizer's own __init__ reads bilm-tf's vocabulary: the base class is set up directly
        super(ElmoTokenizer, self).__init__(
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            pad_token=pad_token,
            max_characters_per_token=max_characters_per_token,
            model_max_length=model_max_length,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            **kwargs,
        )

    # ----- words -----
    def _cut(self, word: str) -> str:
        """``read_list``: a word longer than ``max_characters_per_token - 2`` characters is cut to that many."""
        return word[: self.max_characters_per_token - 2]

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        return text.split()

    def _convert_token_to_id(self, token: str) -> int:
        return self.vocab.get(self._cut(str(token)), self.vocab[self._unk_word])

    @property
    def char_padding_id(self) -> int:
        """The character id of the padding slots and positions (``<pad>``: ``config.char_padding_id``)."""
        return self._char_pad

    @property
    def pad_token_id(self) -> int | None:
        """The ``<pad>`` character id: what pipelines and collators fill the padding positions of ``input_ids``
        with, a row the model reads as "no word" (``token_ids`` are padded with the ``<pad>`` word id)."""
        return None if self.pad_token is None else self._char_pad

    # ----- character rows -----
    def char_row_ids(self, word: str) -> list[int]:
        """The ``max_characters_per_token`` character ids of one word, as ``create_one_batch`` writes them."""
        word = self._cut(word)
        if word in (self.BOS_WORD, self.EOS_WORD):
            inner = [self.char_vocab[word]]
        else:
            inner = [self.char_vocab.get(ch, self._char_oov) for ch in word]
        row = [self._first, *inner, self._last]
        return row + [self._char_pad] * (self.max_characters_per_token - len(row))

    def _row_starts(self) -> set[int]:
        """A row of this lexicon starts with the slot-0 mark (the original's ``<eow>`` id) or is all padding."""
        return {self._first, self._char_pad}

    def _row_word(self, row: Sequence[int]) -> str:
        """The (cut) word a row of character ids spells; the padding row is ``pad_token``."""
        row = list(row)
        if row == list(self._padding_row):
            return str(self.pad_token or "")
        inner = row[1:]
        if self._last in inner:
            inner = inner[: inner.index(self._last)]
        return "".join(self.ids_to_chars.get(i, "") for i in inner)

    def get_special_tokens_mask(self, token_ids_0: list, token_ids_1: list | None = None,
                                already_has_special_tokens: bool = False) -> list[int]:
        """1 at the ``<bos>``/``<eos>`` boundaries (and, for encoded input, at padding), 0 at words."""
        if not already_has_special_tokens or token_ids_1 is not None:
            return super().get_special_tokens_mask(token_ids_0, token_ids_1, already_has_special_tokens)
        special_rows = (self._char_row(self.BOS_WORD), self._char_row(self.EOS_WORD), self._padding_row)
        special_ids = set(self.all_special_ids)
        return [int(list(t) in special_rows) if isinstance(t, (list, tuple)) else int(t in special_ids)
                for t in token_ids_0]

    # ----- encoding: ElmoTokenizer's, with the word ids always and padded with <pad> -----
    def _encode_words(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("return_token_ids", True)
        return super()._encode_words(*args, **kwargs)

    def _pad(self, encoded_inputs: dict[str, Any], *args: Any, **kwargs: Any) -> dict:
        before = len(encoded_inputs.get("token_ids") or ())
        encoded_inputs = super()._pad(encoded_inputs, *args, **kwargs)
        ids = encoded_inputs.get("token_ids")
        if ids is not None and len(ids) != before:  # ElmoTokenizer pads per-word fields with -100
            encoded_inputs["token_ids"] = [self._word_pad if i == -100 else i for i in ids]
        return encoded_inputs

    # ----- decoding -----
    def convert_ids_to_tokens(self, ids: Any, skip_special_tokens: bool = False) -> str | list[str]:  # type: ignore[override]
        """Words from word ids, or from rows of character ids (an element of ``input_ids``: the cut word it
        spells, ``<oov>`` characters as ``unk_token``). ``skip_special_tokens`` leaves out boundaries and padding."""
        ids = to_py_obj(ids)
        if not self._is_char_sequence(ids):
            return super().convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens)
        words = [self._row_word(row) for row in ids]
        if skip_special_tokens:
            mask = self.get_special_tokens_mask(ids, already_has_special_tokens=True)
            words = [w for w, special in zip(words, mask) if not special]
        return words

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        if not os.path.isdir(save_directory):
            raise ValueError(f"save_vocabulary needs an existing directory, got {save_directory}")
        prefix = filename_prefix + "-" if filename_prefix else ""
        paths = []
        for lexicon, name in ((self.vocab, VOCAB_FILES_NAMES["vocab_file"]), (self.char_vocab,
                                                                            VOCAB_FILES_NAMES["char_file"])):
            path = os.path.join(save_directory, prefix + name)
            write_lexicon(lexicon, path)
            paths.append(path)
        return tuple(paths)
