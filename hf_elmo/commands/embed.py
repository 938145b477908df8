"""``hf-elmo embed``: a text file (one sentence per line) → an HDF5 file of ELMo vectors.

The output is laid out as AllenNLP's ``allennlp elmo`` command writes it, so that code reading those files reads these:
one float32 dataset per sentence, named ``str(line_index)`` (0-based), without the sentence boundary tokens:

* ``--layers all``: (n_layers + 1, n_words, 2·projection_dim): the token layer, then each biLSTM layer;
* ``--layers top``: (n_words, 2·projection_dim): the top biLSTM layer;
* ``--layers average``: (n_words, 2·projection_dim): the mean of the n_layers + 1 layers;

and a ``sentence_to_index`` dataset of shape (1,) holding a JSON object that maps each (stripped) sentence to its
dataset name (``embed_hdf5``). Unlike AllenNLP's stateful embedder, the model is stateless, so a sentence's vectors
do not depend on the sentences around it, and sentences are batched by length (less padding) without changing any
result.

Any number of sentences in bounded memory: the input is read line by line (``embed_input``), a window of
``--window`` sentences at a time is sorted by length and cut into batches, and each sentence's dataset is written to
the output's partial file as soon as its batch has run; only the sentence index grows with the input. Under
``torchrun``/``accelerate launch`` the processes split the input and rank 0 merges their parts (``embed_shard``).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from ..conversion.common import PARTIAL_MARK, remove_stale_partials
from . import add_threads_argument, description, one_line, torch_threads
from .embed_hdf5 import merge_parts, record_sentences, write_sentence_index
from .embed_input import iter_sentences, read_sentences, scan_sentences, windows
from .embed_shard import DEFAULT_TIMEOUT_S, Shard, exchange, process_group, shard_device, shard_from_env

__all__ = ["embed_to_hdf5", "load_elmo", "model_input_keys", "read_sentences", "select_layers"]

NAME = "embed"
HELP = "write ELMo vectors of every sentence of a text file (one per line) to HDF5, as `allennlp elmo` does"
LAYER_MODES = ("all", "top", "average")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DEFAULT_BATCH_SIZE = 64  # AllenNLP's
WINDOW_BATCHES = 50  # sentences sorted by length together: --window defaults to this many batches


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(NAME, help=HELP, description=description(HELP))
    parser.add_argument("model", metavar="MODEL", help="a converted ELMo folder or a Hub repository id")
    parser.add_argument("input", metavar="INPUT.txt", type=Path,
                        help="UTF-8 text file, one sentence per line (no empty lines)")
    parser.add_argument("output", metavar="OUTPUT.hdf5", type=Path, help="HDF5 file to write (replaced if it exists)")
    parser.add_argument("--layers", choices=LAYER_MODES, default="all",
                        help="all layers, the top layer, or their average (default: all)")
    parser.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE,
                        help=f"sentences per batch (default: {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--window", type=_positive_int, default=None,
                        help="sentences read ahead and sorted by length before batching: memory is bounded by this "
                             f"(default: {WINDOW_BATCHES} batches)")
    parser.add_argument("--device", default="cpu",
                        help="torch device: cpu, cuda, cuda:1, ... (under torchrun, cuda is cuda:LOCAL_RANK; "
                             "default: cpu)")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32",
                        help="weights' dtype (the file always holds float32; default: float32)")
    parser.add_argument("--pre-tokenized", action="store_true",
                        help="the lines are already tokenised: split them on whitespace only")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                        help="under torchrun/accelerate launch: how long a process waits for the others at the "
                             f"merge before it gives up (default: {DEFAULT_TIMEOUT_S:g})")
    add_threads_argument(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    check_output_path(args.input, args.output)  # before anything runs, as the reading below
    total = scan_sentences(args.input)  # fails fast, before the model is loaded; the file is not held in memory
    shard = shard_from_env(timeout_s=args.timeout)
    device = shard_device(_device(args.device), shard)
    with torch_threads(args.threads), process_group(shard, device):
        model, tokenizer = load_elmo(args.model, device=str(device), dtype=args.dtype)
        n = embed_to_hdf5(
            model,
            tokenizer,
            iter_sentences(args.input),
            args.output,
            layers=args.layers,
            batch_size=args.batch_size,
            pre_tokenized=args.pre_tokenized,
            window=args.window,
            total=total,
            shard=shard,
        )
    if shard is None or shard.rank == 0:
        split = f" in {shard.world_size} processes" if shard else ""
        print(f"Wrote ELMo vectors (--layers {args.layers}) of {n} sentences to {args.output}{split}")
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


def model_input_keys(model: torch.nn.Module, tokenizer: Any) -> frozenset[str]:
    """The keys of the tokenizer's encoding to pass to ``model``: those its ``forward`` names, and, where it also
    takes ``**kwargs``, the tokenizer's ``model_input_names`` (an input such a model reads from its keywords). So a
    tokenizer that emits more than ``input_ids``/``attention_mask`` (e.g. word ids beside the characters) feeds a
    model that takes them, and keys a model does not take (offsets, token ids) stay out."""
    params = inspect.signature(model.forward).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if any(p.kind is p.VAR_KEYWORD for p in params):
        names.update(getattr(tokenizer, "model_input_names", ()))
    return frozenset(names)


def embed_to_hdf5(
    model: torch.nn.Module,
    tokenizer: Any,
    sentences: Iterable[str],
    output: str | os.PathLike,
    layers: str = "all",
    batch_size: int = DEFAULT_BATCH_SIZE,
    pre_tokenized: bool = False,
    progress: bool = True,
    window: int | None = None,
    total: int | None = None,
    shard: Shard | None = None,
) -> int:
    """Embeds ``sentences`` with ``model`` (an ElmoModel) and writes them to ``output``; returns how many.

    Words come from ``tokenizer.tokenize`` (split as sacremoses' English Moses tokenizer splits, as ELMo's training
    data was) or, with ``pre_tokenized``, from splitting on whitespace. ``sentences`` is consumed lazily, ``window``
    sentences at a time (default ``WINDOW_BATCHES`` batches): each window runs longest first in batches of
    ``batch_size`` and is written before the next is read. ``total`` (the number of sentences, when known) sizes the
    progress bar. With ``shard`` (a process of a torchrun world, whose process group is initialised) this process
    embeds its share into a part file and rank 0 merges every part into ``output``; the count returned is the whole
    world's.
    """
    if layers not in LAYER_MODES:
        raise ValueError(f"layers must be one of {LAYER_MODES}, got {layers!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    window = WINDOW_BATCHES * batch_size if window is None else window
    if window < 1:
        raise ValueError(f"window must be positive, got {window}")
    numbered = enumerate(sentences) if shard is None else shard.take(sentences)
    if total is not None and shard is not None:
        total = shard.share(total)
    write = functools.partial(_write_embeddings, model=model, tokenizer=tokenizer, numbered=numbered, layers=layers,
                              batch_size=batch_size, window=window, pre_tokenized=pre_tokenized,
                              progress=progress and (shard is None or shard.rank == 0), total=total)

    # written under a temporary name beside the output and renamed at the end: a run that fails or is interrupted
    # midway leaves no partial file behind (nor a half-overwritten older one). The name is unique to this run (two
    # runs to one output: the last to finish wins, whole), and one left by a killed process is removed here.
    output = Path(output)
    remove_stale_partials(output)
    partial = _new_partial(output)
    try:
        if shard is None:
            with _hdf5(partial, "w") as fout:
                count, index = write(fout)
                write_sentence_index(fout, index)
            os.replace(partial, output)
            return count
        return _embed_shard(shard, partial, output, write)
    finally:
        partial.unlink(missing_ok=True)


def _embed_shard(shard: Shard, partial: Path, output: Path,
                 write: Callable[[Any], tuple[int, dict[str, int]]]) -> int:
    """One rank's run: its part into ``partial``, then rank 0 merges the parts and renames the result ``output``.
    Every rank learns the others' outcome at each step, so an error anywhere stops all of them with its message."""
    error, count, index = None, 0, {}
    try:
        with _hdf5(partial, "w") as fout:
            count, index = write(fout)
            if shard.rank:
                write_sentence_index(fout, index)
    except Exception as e:  # reported to the others below; an interrupt is not (the launcher stops the others)
        error = e
    reports = exchange(shard, (one_line(error) if error else None, str(partial), count), "the merge")
    if error is not None:
        raise error
    _raise_failures(shard, [(rank, report[0]) for rank, report in enumerate(reports)], "failed")

    error = None
    if shard.rank == 0:
        try:
            with _hdf5(partial, "a") as fout:
                merge_parts(fout, [report[1] for report in reports[1:]], index)
                write_sentence_index(fout, index)
            os.replace(partial, output)
        except Exception as e:
            error = e
    outcome = exchange(shard, one_line(error) if error else None, "the end of the merge")
    if error is not None:
        raise error
    _raise_failures(shard, [(0, outcome[0])], f"failed to merge the parts into {output}")
    return sum(report[2] for report in reports)


def _raise_failures(shard: Shard, outcomes: list[tuple[int, str | None]], what: str) -> None:
    failed = [(rank, message) for rank, message in outcomes if message]
    if failed:
        rank, message = failed[0]
        others = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise ValueError(f"{shard}: stopped: rank {rank} {what}{others}: {message}")


def _new_partial(output: Path) -> Path:
    """An empty file ``.<output name>.partial-<pid>-<random>`` beside ``output``, with a file's usual permissions."""
    fd, name = tempfile.mkstemp(prefix=f".{output.name}{PARTIAL_MARK}{os.getpid()}-", dir=output.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp's 0600 would otherwise become the output's permissions
    return Path(name)


def _hdf5(path: Path, mode: str) -> Any:
    import h5py

    return h5py.File(path, mode)


def _write_embeddings(fout: Any, model: torch.nn.Module, tokenizer: Any, numbered: Iterable[tuple[int, str]],
                      layers: str, batch_size: int, window: int, pre_tokenized: bool, progress: bool,
                      total: int | None) -> tuple[int, dict[str, int]]:
    """Writes the vectors of each (index, sentence) into the open h5py file ``fout``, a window at a time; returns
    how many, and the sentence index (sentence → its last index)."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    keys = model_input_keys(model, tokenizer)
    index: dict[str, int] = {}
    count = 0
    with torch.inference_mode(), tqdm(total=total, unit="sentence", desc="ELMo", disable=not progress) as bar:
        for chunk in windows(numbered, window):
            words = [s.split() if pre_tokenized else tokenizer.tokenize(s) for _, s in chunk]
            wordless = [chunk[k][0] + 1 for k, w in enumerate(words) if not w]
            if wordless:
                raise ValueError(f"the sentences on lines {wordless[:10]} hold no words once tokenised (empty lines?)")
            record_sentences(index, chunk)
            order = sorted(range(len(chunk)), key=lambda k: len(words[k]), reverse=True)
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                enc = tokenizer([words[k] for k in batch], is_split_into_words=True, padding=True,
                                return_tensors="pt")
                out = model(**{k: v.to(device) for k, v in enc.items() if k in keys}, output_hidden_states=True)
                stacked = torch.stack(out.hidden_states)  # (n_layers + 1, batch, positions, 2P)
                for row, k in enumerate(batch):
                    positions = [p for p, w in enumerate(enc.word_ids(row)) if w is not None]
                    vectors = select_layers(stacked[:, row, positions], layers)
                    fout.create_dataset(str(chunk[k][0]), data=vectors.float().cpu().numpy())
                bar.update(len(batch))
            count += len(chunk)
    return count, index


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value
