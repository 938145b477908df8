"""The HDF5 layout that ``hf-elmo embed`` shares with AllenNLP's ``allennlp elmo``: its sentence index, and the
merging of the parts that sharded processes write into one file of that layout.

The index is one string dataset, ``sentence_to_index``, of shape (1,), holding a JSON object that maps each
(stripped) sentence to the name of its dataset (its 0-based line number). A sentence on several lines maps to its
last line, as AllenNLP's dict comprehension leaves it; the JSON lists the sentences in the order of their datasets,
so that any batching, and any split across processes, writes the same string. The layout wants the index whole in
one string: it is the only part of the output held in memory, about the input's text plus ~100 bytes a sentence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

SENTENCE_INDEX = "sentence_to_index"


def write_sentence_index(fout: Any, index: Mapping[str, int]) -> None:
    """Writes ``index`` (sentence → line index) into the open h5py file ``fout`` as AllenNLP lays it out.

    The JSON is written piece by piece into one byte buffer, in line order (the index's own order where it already
    is, as `record_sentences` keeps it), rather than through a reordered copy of the index and a string: at 100k
    sentences the end of a run takes ~10 MB more than the index instead of ~50 MB."""
    import h5py

    items: Iterable[tuple[str, int]] = index.items()
    last = -1
    for _, i in items:
        if i < last:
            items = sorted(index.items(), key=lambda item: item[1])
            break
        last = i
    text = bytearray(b"{")  # json.dumps writes ASCII (non-ASCII characters escaped): one byte a character
    for k, (sentence, i) in enumerate(items):
        text += b", " if k else b""
        text += json.dumps(sentence).encode("ascii")
        text += f': "{i}"'.encode("ascii")
    text += b"}"
    ds = fout.create_dataset(SENTENCE_INDEX, (1,), dtype=h5py.string_dtype(encoding="utf-8"))
    ds[0] = bytes(text)


def record_sentences(index: dict[str, int], numbered: Iterable[tuple[int, str]]) -> None:
    """Adds (line index, sentence) pairs, in line order, to ``index``: a sentence met again moves to its new line
    (AllenNLP's dict comprehension keeps the last), and the dict stays in line order."""
    for i, sentence in numbered:
        index.pop(sentence, None)
        index[sentence] = i


def read_sentence_index(fin: Any) -> dict[str, int]:
    """The ``sentence_to_index`` of the open h5py file ``fin``, as sentence → line index."""
    return {sentence: int(name) for sentence, name in json.loads(fin[SENTENCE_INDEX].asstr()[0]).items()}


def merge_index(index: dict[str, int], other: Mapping[str, int]) -> None:
    """Folds ``other`` into ``index``: a sentence found in both keeps its later line, as in one pass over the file."""
    for sentence, i in other.items():
        if i > index.get(sentence, -1):
            index[sentence] = i


def merge_parts(fout: Any, parts: Iterable[str | Path], index: dict[str, int]) -> None:
    """Copies every sentence dataset of each part file into the open h5py file ``fout`` (one at a time, as HDF5
    objects: nothing is decoded) and folds the parts' indexes into ``index``; ``fout``'s own index is written by the
    caller once all parts are in. A dataset name found twice means the parts overlap: refused by name."""
    import h5py

    for part in parts:
        with h5py.File(part, "r") as fin:
            for name in fin:
                if name == SENTENCE_INDEX:
                    continue
                if name in fout:
                    raise ValueError(f"{part}: dataset {name!r} is already in {fout.filename}: the parts overlap")
                fin.copy(fin[name], fout, name=name)
            merge_index(index, read_sentence_index(fin))
