"""Batches for ULMFiT training: the language-model stream and length-sorted classifier batches.

Language model (fastai's LMDataLoader semantics)
------------------------------------------------
Each epoch the documents are (optionally) shuffled and concatenated into one token stream. The stream is cut into
``batch_size`` contiguous rows of R = ``row_length = (n_tokens − 1) // batch_size`` tokens (the few tokens past the
last whole row are dropped, the −1 leaves room for the last target); row ``j`` reads ``stream[j·R : (j+1)·R]`` and
predicts ``stream[j·R + 1 : (j+1)·R + 1]``. Batch ``k`` holds window ``k`` of every row, so batch ``k+1`` continues
each row exactly where batch ``k`` stopped: a recurrent model can carry its state from one batch to the next
(:class:`~hf_elmo.training.trainers.StatefulLMTrainer`). Within an epoch every token of the rows is an input exactly
once and, from the second on, a target exactly once.

Window lengths: without jitter, fastai v2's rule (every window ``bptt`` long, the last one shorter). With jitter,
the AWD-LSTM rule that fastai used when ULMFiT was published (``LanguageModelLoader``): per window, b = ``bptt``
with probability 0.95, else ``bptt/2``; length = max(5, int(normal(b, 5))), at most ``bptt + 25``; the last
window is cut at the row's end. One difference, so that the Trainer can count its steps: every epoch has the same
number of windows (:func:`num_windows`, ⌈row_length / E[length]⌉); an epoch's lengths are drawn with the rule until
a draw whose windows cover the rows in exactly that many windows comes up. Conditioning on the count leaves the
length distribution as it was (to well within sampling noise), and no token is left out (fastai's loader stopped
after ⌈row_length/bptt⌉ windows, dropping the ~3% of the stream that shorter windows had not reached).

Labels: the model shifts them, as transformers' causal LMs do. With ``label_style="extended"`` (the default) a
window of ``n`` inputs comes with ``n + 1`` labels: the inputs followed by the next stream token, so that
``labels[:, 1:]`` are the next-token targets of all ``n`` positions and no target is lost at a window boundary.
A model supports both this and the usual same-length labels with :func:`next_token_targets`.
``label_style="inputs"`` gives transformers' usual ``labels = input_ids``, for models that insist on labels as long
as their inputs: every window's last position then goes untrained (its target, the next window's first token, is
not in the window), i.e. one target in ``bptt`` is lost. ``label_style="next_token"`` gives the ``n`` targets
themselves (fastai's ``y``), ONLY for models that do not shift (a shifting model would learn to predict two tokens
ahead).

Classifier (fastai's SortedDL)
------------------------------
:func:`sorted_batches` / :class:`SortedLengthSampler`: batches of texts of similar length (little padding), in a
random order, the first one holding the longest text (an out-of-memory error shows up at once).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import IterableDataset, Sampler, get_worker_info

LabelStyle = Literal["extended", "inputs", "next_token"]


# --------------------------------------------------------------------------------------------------------------------
# Next-token targets
# --------------------------------------------------------------------------------------------------------------------
def next_token_targets(labels: torch.Tensor, input_length: int, ignore_index: int = -100) -> torch.Tensor:
    """The (batch, input_length) next-token targets of a causal LM from its ``labels``.

    ``labels`` one longer than the inputs (this module's ``label_style="extended"``): ``labels[:, 1:]``, a target for
    every position. Labels as long as the inputs (transformers' convention): ``labels[:, 1:]`` and ``ignore_index``
    for the last position, whose next token is unknown.
    """
    if labels.dim() != 2:
        raise ValueError(f"labels must be (batch, length), got shape {tuple(labels.shape)}")
    if labels.shape[1] == input_length + 1:
        return labels[:, 1:]
    if labels.shape[1] == input_length:
        return torch.nn.functional.pad(labels[:, 1:], (0, 1), value=ignore_index)
    raise ValueError(
        f"labels of length {labels.shape[1]} do not fit {input_length} input positions: expected {input_length} "
        f"(the inputs themselves) or {input_length + 1} (the inputs and the token after them)"
    )


# --------------------------------------------------------------------------------------------------------------------
# Window lengths
# --------------------------------------------------------------------------------------------------------------------
def _check_rule(bptt: int, p_bptt: float, sigma: float, min_len: int, max_extra: int) -> None:
    if int(bptt) != bptt or bptt < 1:
        raise ValueError(f"bptt must be a positive integer, got {bptt}")
    if not 0 <= p_bptt <= 1:
        raise ValueError(f"p_bptt must lie in [0, 1], got {p_bptt}")
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if min_len < 1 or max_extra < 0 or min_len > bptt + max_extra:
        raise ValueError(f"need 1 <= min_len <= bptt + max_extra, got min_len={min_len}, bptt={bptt}, "
                         f"max_extra={max_extra}")


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def expected_window_length(bptt: int, p_bptt: float = 0.95, sigma: float = 5.0, min_len: int = 5,
                           max_extra: int = 25) -> float:
    """E[length] of a jittered window, min(max(min_len, int(X)), bptt + max_extra) with X ~ N(b, sigma²), b =
    ``bptt`` with probability ``p_bptt`` else ``bptt/2`` (exact, summed over the integer lengths)."""
    _check_rule(bptt, p_bptt, sigma, min_len, max_extra)
    hi = bptt + max_extra
    total = 0.0
    for b, weight in ((float(bptt), p_bptt), (bptt / 2.0, 1.0 - p_bptt)):
        if weight == 0:
            continue
        if sigma == 0:
            total += weight * min(max(min_len, math.trunc(b)), hi)
            continue
        cdf = lambda x: _phi((x - b) / sigma)  # noqa: E731
        mean = min_len * cdf(min_len + 1) + hi * (1.0 - cdf(hi))
        mean += sum(k * (cdf(k + 1) - cdf(k)) for k in range(min_len + 1, hi))
        total += weight * mean
    return total


def num_windows(row_length: int, bptt: int, jitter: bool = True, p_bptt: float = 0.95, sigma: float = 5.0,
                min_len: int = 5, max_extra: int = 25) -> int:
    """Windows (= batches) per epoch: ⌈row_length / bptt⌉ without jitter, ⌈row_length / E[length]⌉ with it."""
    if row_length < 1:
        raise ValueError(f"row_length must be >= 1, got {row_length}")
    if not jitter:
        _check_rule(bptt, p_bptt, sigma, min_len, max_extra)
        return math.ceil(row_length / bptt)
    mean = expected_window_length(bptt, p_bptt, sigma, min_len, max_extra)
    return max(1, math.ceil(row_length / mean - 1e-9))


def window_lengths(row_length: int, bptt: int, jitter: bool = True, seed: int = 0, epoch: int = 0,
                   p_bptt: float = 0.95, sigma: float = 5.0, min_len: int = 5, max_extra: int = 25,
                   max_tries: int = 100_000) -> np.ndarray:
    """One epoch's window lengths (int64, summing to ``row_length``), :func:`num_windows` of them; deterministic in
    (``seed``, ``epoch``). See the module docstring for the rule."""
    n = num_windows(row_length, bptt, jitter, p_bptt, sigma, min_len, max_extra)
    if not jitter:
        lengths = np.full(n, bptt, dtype=np.int64)
        lengths[-1] = row_length - (n - 1) * bptt
        return lengths
    rng = np.random.default_rng([seed, epoch, 1])
    hi = bptt + max_extra
    per_draw = min(1024, max(1, (1 << 20) // n))  # tries drawn at once: at most ~1M numbers
    tried = 0
    while tried < max_tries:
        k = min(per_draw, max_tries - tried)
        centres = np.where(rng.random((k, n)) < p_bptt, float(bptt), bptt / 2.0)
        draws = np.clip(np.trunc(rng.normal(centres, sigma)), min_len, hi).astype(np.int64)
        ends = np.cumsum(draws, axis=1)
        before_last = ends[:, -2] if n > 1 else np.zeros(k, dtype=np.int64)
        hits = np.flatnonzero((before_last < row_length) & (ends[:, -1] >= row_length))
        if hits.size:
            lengths = draws[hits[0]]
            lengths[-1] = row_length - (before_last[hits[0]] if n > 1 else 0)
            return lengths
        tried += k
    raise RuntimeError(
        f"no draw of {n} jittered windows covered a row of {row_length} tokens in {max_tries} tries (bptt={bptt}, "
        f"p_bptt={p_bptt}, sigma={sigma}): use jitter=False or the default rule"
    )


# --------------------------------------------------------------------------------------------------------------------
# The language-model stream
# --------------------------------------------------------------------------------------------------------------------
def _as_token_array(doc: Any, index: int) -> np.ndarray:
    if isinstance(doc, torch.Tensor):
        doc = doc.detach().cpu().numpy()
    arr = np.asarray(doc)
    if arr.ndim != 1:
        raise ValueError(
            f"document {index} must be a 1-D sequence of token ids, got {arr.ndim} dimension(s) (a single document "
            "goes in as [token_ids])"
        )
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"document {index} must hold integer token ids, got dtype {arr.dtype}")
    if arr.min() < 0:
        raise ValueError(f"document {index} holds negative token ids")
    return arr.astype(np.int64, copy=False)


class LMStreamDataset(IterableDataset):
    """The language-model stream of ``documents`` (see the module docstring), for the transformers ``Trainer``.

    Iterating yields one sample per row and window, window by window (all ``batch_size`` rows of window 0, then of
    window 1, ...), as dicts of ``input_ids`` (n,) and ``labels`` (n + 1,) (or (n,), see ``label_style``) long
    tensors, so that a DataLoader with the SAME ``batch_size`` and no shuffling (the Trainer's loader for an
    iterable dataset) stacks them into the consecutive (batch_size, n) batches. With DataLoader workers, worker
    ``w`` of ``W`` produces windows ``w, w + W, ...``, which the loader's round robin puts back in order. For a
    loop of your own, :meth:`batches` gives the batches directly.

    Each epoch shuffles the documents (``shuffle``) and draws the window lengths (``jitter``) afresh, from
    (``seed``, epoch). The Trainer calls :meth:`set_epoch` before every epoch; without it, each pass in the main
    process moves on to the next epoch by itself.

    Args:
        documents: token ids per document (lists, numpy arrays or 1-D tensors of non-negative integers).
        batch_size: rows per batch; must equal the DataLoader's (``per_device_train_batch_size``).
        bptt: the nominal window length (fastai: 72, the AWD-LSTM paper 70).
        jitter: draw window lengths with the AWD-LSTM/fastai rule (training); False: fixed ``bptt`` (evaluation).
        shuffle: shuffle the documents each epoch (training); False keeps their order (evaluation).
        seed: seed of the shuffles and the window lengths.
        p_bptt, sigma, min_len, max_extra: the jitter rule (fastai's 0.95, 5, 5, 25).
        label_style: ``"extended"`` (labels = inputs + the next token, for models that shift with
            :func:`next_token_targets`), ``"inputs"`` (labels = inputs, for shifting models that want labels as long
            as the inputs; loses each window's last target) or ``"next_token"`` (the targets, for models that do
            not shift).
    """

    def __init__(
        self,
        documents: Iterable[Sequence[int] | np.ndarray | torch.Tensor],
        batch_size: int,
        bptt: int = 72,
        jitter: bool = True,
        shuffle: bool = True,
        seed: int = 0,
        *,
        p_bptt: float = 0.95,
        sigma: float = 5.0,
        min_len: int = 5,
        max_extra: int = 25,
        label_style: LabelStyle = "extended",
    ) -> None:
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        if label_style not in ("extended", "inputs", "next_token"):
            raise ValueError(f"label_style must be 'extended', 'inputs' or 'next_token', got {label_style!r}")
        _check_rule(bptt, p_bptt, sigma, min_len, max_extra)
        docs = [_as_token_array(doc, i) for i, doc in enumerate(documents)]
        self._doc_lengths = np.array([len(d) for d in docs], dtype=np.int64)
        self._doc_starts = np.concatenate([[0], np.cumsum(self._doc_lengths)[:-1]]).astype(np.int64)
        self._tokens = np.concatenate(docs) if docs else np.zeros(0, dtype=np.int64)
        if self._tokens.size and self._tokens.max() < 2**31:
            self._tokens = self._tokens.astype(np.int32)  # half the memory of a big corpus
        n_tokens = int(self._tokens.size)
        self.batch_size = int(batch_size)
        self.row_length = (n_tokens - 1) // self.batch_size
        if self.row_length < 1:
            raise ValueError(
                f"{n_tokens} tokens are too few for {batch_size} rows: the stream needs at least batch_size + 1 tokens"
            )
        self.bptt, self.jitter, self.shuffle, self.seed = int(bptt), bool(jitter), bool(shuffle), int(seed)
        self._rule = dict(p_bptt=p_bptt, sigma=sigma, min_len=min_len, max_extra=max_extra)
        self.label_style = label_style
        self.num_batches = num_windows(self.row_length, self.bptt, self.jitter, **self._rule)
        self.epoch = 0

    @property
    def num_tokens(self) -> int:
        """Tokens in the stream (all documents)."""
        return int(self._tokens.size)

    def __len__(self) -> int:
        """Samples per epoch (rows × windows); a DataLoader with ``batch_size`` rows makes :attr:`num_batches`."""
        return self.num_batches * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """The epoch that the next pass produces (its shuffle and window lengths)."""
        self.epoch = int(epoch)

    def stream(self, epoch: int) -> np.ndarray:
        """The epoch's token stream: the documents, shuffled when ``shuffle``, end to end."""
        if not self.shuffle:
            return self._tokens
        order = np.random.default_rng([self.seed, epoch, 0]).permutation(len(self._doc_lengths))
        lengths, starts = self._doc_lengths[order], self._doc_starts[order]
        # position i of the shuffled stream = (i − where its document starts there) + where it starts in _tokens
        offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        return self._tokens[np.arange(self.num_tokens, dtype=np.int64) + offsets]

    def rows(self, epoch: int) -> np.ndarray:
        """(batch_size, row_length + 1) view of the epoch's stream: row j's inputs and, one further, its targets."""
        used = self.stream(epoch)[: self.batch_size * self.row_length + 1]
        return np.lib.stride_tricks.sliding_window_view(used, self.row_length + 1)[:: self.row_length]

    def window_lengths(self, epoch: int) -> np.ndarray:
        """The epoch's window lengths (summing to :attr:`row_length`)."""
        return window_lengths(self.row_length, self.bptt, self.jitter, self.seed, epoch, **self._rule)

    def _windows(self, epoch: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
        lengths = self.window_lengths(epoch)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        return self.rows(epoch), [(int(s), int(n)) for s, n in zip(starts, lengths)]

    def _labels(self, rows: np.ndarray, start: int, n: int) -> np.ndarray:
        first, end = {"extended": (0, 1), "inputs": (0, 0), "next_token": (1, 1)}[self.label_style]
        return rows[..., start + first : start + n + end]

    def batches(self, epoch: int | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """The epoch's batches as dicts of ``input_ids`` (batch_size, n) and ``labels`` (batch_size, n + 1) (or
        (batch_size, n), see ``label_style``), in order; default epoch: :attr:`epoch`."""
        rows, windows = self._windows(self.epoch if epoch is None else epoch)
        for start, n in windows:
            yield {
                "input_ids": torch.from_numpy(np.array(rows[:, start : start + n], dtype=np.int64)),
                "labels": torch.from_numpy(np.array(self._labels(rows, start, n), dtype=np.int64)),
            }

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        epoch = self.epoch
        if info is None:
            self.epoch += 1  # a plain pass moves on to the next epoch (set_epoch overrides this)
            worker, n_workers = 0, 1
        else:
            worker, n_workers = info.id, info.num_workers
        return self._samples(epoch, worker, n_workers)

    def _samples(self, epoch: int, worker: int, n_workers: int) -> Iterator[dict[str, torch.Tensor]]:
        rows, windows = self._windows(epoch)
        for start, n in windows[worker::n_workers]:
            for row in rows:
                yield {
                    "input_ids": torch.from_numpy(np.array(row[start : start + n], dtype=np.int64)),
                    "labels": torch.from_numpy(np.array(self._labels(row, start, n), dtype=np.int64)),
                }


def lm_stream_batches(
    documents: Iterable[Sequence[int] | np.ndarray | torch.Tensor],
    batch_size: int,
    bptt: int = 72,
    jitter: bool = True,
    seed: int = 0,
    epoch: int = 0,
    **kwargs: Any,
) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of language-model batches of ``documents`` (see :class:`LMStreamDataset`, which takes ``kwargs``)."""
    return LMStreamDataset(documents, batch_size, bptt, jitter, seed=seed, **kwargs).batches(epoch)


# --------------------------------------------------------------------------------------------------------------------
# Length-sorted classifier batches
# --------------------------------------------------------------------------------------------------------------------
def sorted_batches(
    lengths: Sequence[int] | np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    chunk_batches: int = 50,
) -> list[list[int]]:
    """Index batches of items of similar length, as fastai's SortedDL makes them.

    Without ``shuffle``: by falling length. With it (deterministic in ``seed``, ``epoch``): the indices are shuffled,
    the longest item is moved to the front, chunks of ``chunk_batches · batch_size`` are each sorted by falling
    length and cut into batches; the first batch (holding the longest item) stays first, the last (the only one
    that may be short) stays last, and the others are shuffled. Every index appears exactly once.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if chunk_batches < 1:
        raise ValueError(f"chunk_batches must be >= 1, got {chunk_batches}")
    lengths = np.asarray(lengths)
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be one number per item, got shape {lengths.shape}")
    n = len(lengths)
    if n == 0:
        return []
    if not shuffle:
        order = np.argsort(-lengths, kind="stable")
        return [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]
    rng = np.random.default_rng([seed, epoch])
    idxs = rng.permutation(n)
    where_longest = int(np.flatnonzero(idxs == int(np.argmax(lengths)))[0])
    idxs[0], idxs[where_longest] = idxs[where_longest], idxs[0]
    size = batch_size * chunk_batches
    chunks = [idxs[i : i + size] for i in range(0, n, size)]
    order = np.concatenate([c[np.argsort(-lengths[c], kind="stable")] for c in chunks])
    batches = [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]
    if len(batches) > 2:
        middle = [batches[1 + k] for k in rng.permutation(len(batches) - 2)]
        batches = [batches[0], *middle, batches[-1]]
    return batches


class SortedLengthSampler(Sampler[int]):
    """:func:`sorted_batches` flattened into a sampler of indices, for a DataLoader (or the Trainer) with the same
    ``batch_size``: consecutive indices form the batches (only the last batch may be short, so ``drop_last`` works).

    Each pass draws a new order from (``seed``, epoch); the Trainer calls :meth:`set_epoch` before every epoch, and
    without it each pass moves on to the next epoch by itself.
    """

    def __init__(self, lengths: Sequence[int] | np.ndarray, batch_size: int, shuffle: bool = True, seed: int = 0,
                 chunk_batches: int = 50) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size, self.shuffle, self.seed, self.chunk_batches = batch_size, shuffle, seed, chunk_batches
        self.epoch = 0
        sorted_batches(self.lengths[:0], batch_size, shuffle, seed, 0, chunk_batches)  # checks the arguments

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """The epoch's batches of indices; default epoch: :attr:`epoch`."""
        epoch = self.epoch if epoch is None else epoch
        return sorted_batches(self.lengths, self.batch_size, self.shuffle, self.seed, epoch, self.chunk_batches)

    def __iter__(self) -> Iterator[int]:
        batches = self.batches()
        self.epoch += 1
        return (i for batch in batches for i in batch)

    def __len__(self) -> int:
        return len(self.lengths)
