"""Tokenizer of ELMo: text → words → the original character ids.

ELMo reads characters, not word-piece ids: every word becomes ``max_characters_per_token`` (50) character ids, so
``input_ids`` has shape ``(batch, words, 50)``. The ids are those of the original bilm-tf/AllenNLP implementation
(see ``word_to_char_ids``). Raw text is split into words the way the 1B Word Benchmark that ELMo was trained on was
tokenised (Moses-style: punctuation separated, ``don't`` → ``don 't``, abbreviations such as ``U.S.`` kept).

A word vocabulary is optional: only the language-model head needs one (``token_ids`` → word indices).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from typing import Any, Iterable, Sequence

import numpy as np
from transformers import BatchEncoding, PreTrainedTokenizer

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


class ElmoTokenizer(PreTrainedTokenizer):
    """Turns text into ELMo's character ids: ``input_ids`` (batch, words, 50) and ``attention_mask`` (batch, words).

    Args:
        vocab_file: optional word vocabulary, one word per line (the bilm-tf format, ``<S>``, ``</S>``, ``<UNK>``
            first); only the language-model head needs it (``return_token_ids=True``).
        max_characters_per_token: characters per word (50 in every published ELMo).
        do_split: split raw text into words (Moses-style); ``is_split_into_words=True`` bypasses it per call.
        model_max_length: maximum number of words per sequence, boundaries included, used by ``truncation=True``.
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
        model_max_length: int = 10**6,
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
        super().__init__(
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            max_characters_per_token=max_characters_per_token,
            do_split=do_split,
            model_max_length=model_max_length,
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
            if all(isinstance(s, (list, tuple)) for s in text):
                raise ValueError("got a batch of word lists: pass is_split_into_words=True")
        raise TypeError(f"text must be a string, a list of strings or (with is_split_into_words) word lists, got {type(text).__name__}")

    def __call__(  # type: ignore[override]
        self,
        text: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        text_pair: Any = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        return_tensors: str | None = None,
        return_attention_mask: bool | None = True,
        return_token_ids: bool = False,
        return_length: bool = False,
        padding_side: str | None = None,
        **kwargs: Any,
    ) -> ElmoBatchEncoding:
        """Encodes text (or pre-split words) as ELMo character ids.

        Args:
            text: a string, a list of strings, or with ``is_split_into_words=True`` a list of words / of word lists.
            add_special_tokens: wrap each sequence in ``<S>`` … ``</S>`` as the biLM was trained (default True).
            padding: ``True``/``"longest"`` pads to the longest sequence, ``"max_length"`` to ``max_length``;
                a batch that is returned as tensors is always padded to its longest sequence.
            truncation: keep at most ``max_length`` words (boundaries included; ``</S>`` is kept at the end).
            return_tensors: ``"pt"``, ``"np"`` or None (lists).
            return_token_ids: also return ``token_ids``, the word-vocabulary ids the LM head predicts (-100 at padding).
            return_length: also return ``length``, the number of words of every sequence.
        """
        if text_pair is not None:
            raise ValueError("ElmoTokenizer encodes single sequences; text_pair is not supported")
        unknown = set(kwargs) - {"verbose", "return_token_type_ids", "stride", "return_overflowing_tokens",
                                 "return_special_tokens_mask", "return_offsets_mapping", "split_special_tokens"}
        if unknown:
            raise TypeError(f"ElmoTokenizer got unexpected arguments: {sorted(unknown)}")
        if text is None:
            raise ValueError("ElmoTokenizer needs `text`")
        batch, batched = self._as_batch(text, is_split_into_words)
        if truncation is True or truncation in ("longest_first", "only_first"):
            limit = max_length if max_length is not None else self.model_max_length
        elif truncation in (None, False, "do_not_truncate"):
            limit = None
        else:
            raise ValueError(f"unsupported truncation {truncation!r}")
        n_special = 2 if add_special_tokens else 0
        if limit is not None and limit < n_special + 1:
            raise ValueError(f"max_length={limit} leaves no room for a word beside the {n_special} boundary tokens")

        sequences: list[list[str]] = []
        word_index: list[list[int | None]] = []
        for words in batch:
            if limit is not None:
                words = words[: limit - n_special]
            idx: list[int | None] = list(range(len(words)))
            if add_special_tokens:
                words = [self.BOS_WORD, *words, self.EOS_WORD]
                idx = [None, *idx, None]
            sequences.append(words)
            word_index.append(idx)

        lengths = [len(s) for s in sequences]
        if padding is True or padding == "longest":
            target = max(lengths, default=0)
        elif padding == "max_length":
            if max_length is None:
                raise ValueError("padding='max_length' needs max_length")
            target = max_length
        elif padding in (False, None, "do_not_pad"):
            target = max(lengths, default=0) if (return_tensors is not None and batched) else None
        else:
            raise ValueError(f"unsupported padding {padding!r}")
        if target is not None and pad_to_multiple_of:
            target = -(-target // pad_to_multiple_of) * pad_to_multiple_of
        side = padding_side or self.padding_side

        n_chars = self.max_characters_per_token
        ids_rows, mask_rows, tok_rows = [], [], []
        for k, words in enumerate(sequences):
            chars = np.stack([self.word_char_ids(w) for w in words]) if words else np.zeros((0, n_chars), np.int64)
            mask = np.ones(len(words), dtype=np.int64)
            toks = np.asarray([self._convert_token_to_id(w) for w in words], dtype=np.int64) if return_token_ids else None
            if target is not None and target > len(words):
                n_pad = target - len(words)
                pad_c, pad_m = np.zeros((n_pad, n_chars), np.int64), np.zeros(n_pad, np.int64)
                pad_t = np.full(n_pad, -100, np.int64)
                if side == "left":
                    chars, mask = np.concatenate([pad_c, chars]), np.concatenate([pad_m, mask])
                    toks = np.concatenate([pad_t, toks]) if toks is not None else None
                    word_index[k] = [None] * n_pad + word_index[k]
                else:
                    chars, mask = np.concatenate([chars, pad_c]), np.concatenate([mask, pad_m])
                    toks = np.concatenate([toks, pad_t]) if toks is not None else None
                    word_index[k] = word_index[k] + [None] * n_pad
            ids_rows.append(chars)
            mask_rows.append(mask)
            tok_rows.append(toks)

        data: dict[str, Any] = {}
        if return_tensors is None:
            data["input_ids"] = [r.tolist() for r in ids_rows]
            if return_attention_mask is not False:
                data["attention_mask"] = [m.tolist() for m in mask_rows]
            if return_token_ids:
                data["token_ids"] = [t.tolist() for t in tok_rows]
            if return_length:
                data["length"] = lengths
            if not batched:
                data = {k: v[0] for k, v in data.items()}
        else:
            if return_tensors not in ("pt", "np"):
                raise ValueError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
            width = ids_rows[0].shape[0] if ids_rows else 0
            data["input_ids"] = np.stack(ids_rows) if ids_rows else np.zeros((0, width, n_chars), np.int64)
            if return_attention_mask is not False:
                data["attention_mask"] = np.stack(mask_rows) if mask_rows else np.zeros((0, width), np.int64)
            if return_token_ids:
                data["token_ids"] = np.stack(tok_rows) if tok_rows else np.zeros((0, width), np.int64)
            if return_length:
                data["length"] = np.asarray(lengths, dtype=np.int64)
        return ElmoBatchEncoding(data, word_index, tensor_type=return_tensors)

    def pad(  # type: ignore[override]
        self,
        encoded_inputs: Any,
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pads a list of encoded examples (as ``datasets``/data collators hand them over) into one batch.

        ``input_ids`` are padded with all-zero words, ``attention_mask`` with 0, ``token_ids`` and per-word
        ``labels`` with -100; other fields (e.g. a sequence label) are stacked as they are.
        """
        if isinstance(encoded_inputs, (list, tuple)):
            if not encoded_inputs:
                raise ValueError("pad() got an empty list of examples")
            features = [dict(f) for f in encoded_inputs]
        elif isinstance(encoded_inputs, dict):
            keys = list(encoded_inputs)
            features = [dict(zip(keys, vals)) for vals in zip(*(encoded_inputs[k] for k in keys))]
        else:
            raise TypeError(f"pad() takes a list of examples or a dict of lists, got {type(encoded_inputs).__name__}")
        if "input_ids" not in features[0]:
            raise ValueError("pad() needs 'input_ids' in every example")
        n_chars = self.max_characters_per_token
        arrays = [np.asarray(_to_numpy(f["input_ids"]), dtype=np.int64).reshape(-1, n_chars) for f in features]
        lengths = [a.shape[0] for a in arrays]
        target = max(lengths)
        if padding == "max_length" and max_length is not None:
            target = max(target, max_length)
        if pad_to_multiple_of:
            target = -(-target // pad_to_multiple_of) * pad_to_multiple_of
        left = (padding_side or self.padding_side) == "left"

        def fit(a: np.ndarray, fill: int) -> np.ndarray:
            n_pad = target - a.shape[0]
            pad = np.full((n_pad,) + a.shape[1:], fill, dtype=np.int64)
            return np.concatenate([pad, a] if left else [a, pad])

        out: dict[str, Any] = {"input_ids": np.stack([fit(a, 0) for a in arrays])}
        masks = [np.asarray(_to_numpy(f["attention_mask"]), np.int64) if "attention_mask" in f
                 else np.ones(n, np.int64) for f, n in zip(features, lengths)]
        if return_attention_mask is not False:
            out["attention_mask"] = np.stack([fit(m, 0) for m in masks])
        for key in features[0]:
            if key in ("input_ids", "attention_mask"):
                continue
            values = [np.asarray(_to_numpy(f[key])) for f in features]
            if values[0].ndim >= 1 and all(v.shape[0] == n for v, n in zip(values, lengths)):
                out[key] = np.stack([fit(v.astype(np.int64), -100) for v in values])
            else:
                out[key] = np.stack(values)
        return BatchEncoding(out, tensor_type=return_tensors)


def _to_numpy(value: Any) -> Any:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else value
