"""``hf-elmo embed``: a text file (one sentence per line) → an HDF5 file of ELMo vectors.

The output is laid out as AllenNLP's ``allennlp elmo`` command writes it, so that code reading those files reads these:
one float32 dataset per sentence, named ``str(line_index)`` (0-based), without the sentence boundary tokens:

* ``--layers all``: (n_layers + 1, n_words, 2·projection_dim): the token layer, then each biLSTM layer;
* ``--layers top``: (n_words, 2·projection_dim): the top biLSTM layer;
* ``--layers average``: (n_words, 2·projection_dim): the mean of the n_layers + 1 layers;

and a ``sentence_to_index`` dataset of shape (1,) holding a JSON object that maps each (stripped) sentence to its
dataset name. Unlike AllenNLP's stateful embedder, the model is stateless, so a sentence's vectors do not depend on
the sentences before it, and sentences are batched by length (less padding) without changing any result.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from ..conversion.common import PARTIAL_MARK, remove_stale_partials

NAME = "embed"
HELP = "write ELMo vectors of every sentence of a text file (one per line) to HDF5, as `allennlp elmo` does"
LAYER_MODES = ("all", "top", "average")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DEFAULT_BATCH_SIZE = 64  # AllenNLP's


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(NAME, help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    parser.add_argument("model", metavar="MODEL", help="a converted ELMo folder or a Hub repository id")
    parser.add_argument("input", metavar="INPUT.txt", type=Path,
                        help="UTF-8 text file, one sentence per line (no empty lines)")
    parser.add_argument("output", metavar="OUTPUT.hdf5", type=Path, help="HDF5 file to write (replaced if it exists)")
    parser.add_argument("--layers", choices=LAYER_MODES, default="all",
                        help="all layers, the top layer, or their average (default: all)")
    parser.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE,
                        help=f"sentences per batch (default: {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ... (default: cpu)")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32",
                        help="weights' dtype (the file always holds float32; default: float32)")
    parser.add_argument("--pre-tokenized", action="store_true",
                        help="the lines are already tokenised: split them on whitespace only")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    check_output_path(args.input, args.output)  # before anything runs, as the reading below
    sentences = read_sentences(args.input)  # fails fast, before the model is loaded
    model, tokenizer = load_elmo(args.model, device=args.device, dtype=args.dtype)
    n = embed_to_hdf5(
        model,
        tokenizer,
        sentences,
        args.output,
        layers=args.layers,
        batch_size=args.batch_size,
        pre_tokenized=args.pre_tokenized,
    )
    print(f"Wrote ELMo vectors (--layers {args.layers}) of {n} sentences to {args.output}")
    return 0


def check_output_path(input_path: str | os.PathLike, output: str | os.PathLike) -> None:
    """Raises ValueError unless ``output`` can be written as a file at the end of the run: not the input (which it
    would overwrite with HDF5), not a directory, in a folder that exists."""
    input_path, output = Path(input_path), Path(output)
    if output.is_dir():
        raise ValueError(f"output {output} is a directory: give the HDF5 file to write")
    if not output.parent.is_dir():
        raise ValueError(f"output {output}: the folder {output.parent} does not exist")
    if output.resolve() == input_path.resolve() or (output.exists() and input_path.exists()
                                                    and os.path.samefile(output, input_path)):
        raise ValueError(f"output {output} is the input file: it would be overwritten with HDF5")


def read_sentences(path: str | os.PathLike) -> list[str]:
    """The file's lines, stripped; an empty line is an error naming its line number (1-based), as in AllenNLP.

    Lines end at ``\n`` only (a ``\r\n`` ending is stripped): a ``\r`` inside a line is whitespace, not a line
    break, so that dataset ``i`` is line ``i + 1`` as every other tool counts lines."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text: {e}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line
    sentences = [line.strip() for line in lines]
    _reject_empty(path, [i for i, s in enumerate(sentences) if not s])
    if not sentences:
        raise ValueError(f"{path} holds no sentences")
    return sentences


def _reject_empty(path: Path, empty: list[int]) -> None:
    if empty:
        shown = ", ".join(str(i + 1) for i in empty[:10]) + (", ..." if len(empty) > 10 else "")
        raise ValueError(
            f"{path}: empty line{'s' if len(empty) > 1 else ''} at line number{'s' if len(empty) > 1 else ''} "
            f"{shown}: give one sentence per line and remove empty lines"
        )


def load_elmo(model_name_or_path: str, device: str = "cpu", dtype: str = "float32") -> tuple[torch.nn.Module, Any]:
    """Loads the biLM and its tokenizer as a user of the checkpoint would (Auto classes, remote code allowed).

    A task-head checkpoint gives its biLM (``.elmo``): only the biLM's layers are written.
    """
    from transformers import AutoModel, AutoTokenizer

    from ..model_folders import check_model_folder, from_pretrained_checked

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    check_model_folder(model_name_or_path, "elmo", role="hf-elmo embed")
    target = _device(device)
    model = from_pretrained_checked(AutoModel, model_name_or_path, trust_remote_code=True, dtype=DTYPES[dtype])
    model = getattr(model, "elmo", model)
    model.to(target).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, trust_remote_code=True)
    return model, tokenizer


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available")
    return device


def select_layers(layers: torch.Tensor, mode: str) -> torch.Tensor:
    """``layers`` (n_layers + 1, words, 2P) → what ``--layers mode`` writes."""
    if mode == "all":
        return layers
    if mode == "top":
        return layers[-1]
    if mode == "average":
        return layers.mean(dim=0)
    raise ValueError(f"layers must be one of {LAYER_MODES}, got {mode!r}")


def embed_to_hdf5(
    model: torch.nn.Module,
    tokenizer: Any,
    sentences: Sequence[str],
    output: str | os.PathLike,
    layers: str = "all",
    batch_size: int = DEFAULT_BATCH_SIZE,
    pre_tokenized: bool = False,
    progress: bool = True,
) -> int:
    """Embeds ``sentences`` with ``model`` (an ElmoModel) and writes them to ``output``; returns how many.

    Words come from ``tokenizer.tokenize`` (Moses-style, as ELMo's training data) or, with ``pre_tokenized``, from
    splitting on whitespace. Sentences run longest first in batches of ``batch_size``.
    """
    if layers not in LAYER_MODES:
        raise ValueError(f"layers must be one of {LAYER_MODES}, got {layers!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    words = [s.split() if pre_tokenized else tokenizer.tokenize(s) for s in sentences]
    wordless = [i + 1 for i, w in enumerate(words) if not w]
    if wordless:
        raise ValueError(f"the sentences on lines {wordless[:10]} hold no words once tokenised (empty lines?)")
    order = sorted(range(len(words)), key=lambda i: len(words[i]), reverse=True)
    device = next(model.parameters()).device

    # written under a temporary name beside the output and renamed at the end: a run that fails or is interrupted
    # midway leaves no partial file behind (nor a half-overwritten older one). The name is unique to this run (two
    # runs to one output: the last to finish wins, whole), and one left by a killed process is removed here.
    output = Path(output)
    remove_stale_partials(output)
    fd, name = tempfile.mkstemp(prefix=f".{output.name}{PARTIAL_MARK}{os.getpid()}-", dir=output.parent)
    os.close(fd)
    partial = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(partial, 0o666 & ~umask)  # mkstemp's 0600 would otherwise become the output's permissions
    try:
        _write_hdf5(model, tokenizer, sentences, words, order, partial, layers, batch_size, device, progress)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return len(sentences)


def _write_hdf5(model: torch.nn.Module, tokenizer: Any, sentences: Sequence[str], words: list[list[str]],
                order: list[int], path: Path, layers: str, batch_size: int, device: torch.device,
                progress: bool) -> None:
    import h5py
    from tqdm.auto import tqdm

    with h5py.File(path, "w") as fout, torch.inference_mode():
        bar = tqdm(total=len(order), unit="sentence", desc="ELMo", disable=not progress)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            enc = tokenizer([words[i] for i in batch], is_split_into_words=True, padding=True, return_tensors="pt")
            out = model(
                input_ids=enc["input_ids"].to(device),
                attention_mask=enc["attention_mask"].to(device),
                output_hidden_states=True,
            )
            stacked = torch.stack(out.hidden_states)  # (n_layers + 1, batch, positions, 2P)
            for row, index in enumerate(batch):
                positions = [p for p, w in enumerate(enc.word_ids(row)) if w is not None]
                vectors = select_layers(stacked[:, row, positions], layers)
                fout.create_dataset(str(index), data=vectors.float().cpu().numpy())
            bar.update(len(batch))
        bar.close()
        sentence_to_index = {sentence: str(i) for i, sentence in enumerate(sentences)}
        ds = fout.create_dataset("sentence_to_index", (1,), dtype=h5py.string_dtype(encoding="utf-8"))
        ds[0] = json.dumps(sentence_to_index)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value
