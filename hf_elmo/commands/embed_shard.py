"""``hf-elmo embed`` split across processes launched by ``torchrun`` or ``accelerate launch``.

Each process reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment, as both launchers set them, and
embeds the sentences whose 0-based index ``i`` has ``i % world_size == rank``. Striding rather than contiguous ranges:
every rank streams the file without knowing its length or seeking, and a file whose sentence lengths drift (sorted,
or sections of long and short lines) still gives each rank the same share of the work, so none waits long for the
others at the merge. Without those variables (or with a world of one) ``embed`` runs in this process as before.

torch.distributed is used only to exchange a few small objects (each rank's outcome and part file, then the merge's
outcome), over gloo on CPU and nccl where the device is CUDA. Every exchange is bounded by the process group's
timeout, and a rank that fails still reports its error at the exchange, so that the others stop at once with a
message naming it instead of waiting (a rank killed outright is caught by the launcher, which stops the others,
or by the timeout).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, TypeVar

import torch

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 1800.0  # torch.distributed's own default


@dataclass(frozen=True)
class Shard:
    """This process's place among ``world_size`` processes, and its timeout for waiting on the others."""

    rank: int
    world_size: int
    local_rank: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __str__(self) -> str:
        return f"rank {self.rank} of {self.world_size}"

    def take(self, items: Iterable[T]) -> Iterator[tuple[int, T]]:
        """(index, item) of the items whose index falls to this rank."""
        for i, item in enumerate(items):
            if i % self.world_size == self.rank:
                yield i, item

    def share(self, total: int) -> int:
        """How many of ``total`` items ``take`` gives this rank."""
        return len(range(self.rank, total, self.world_size))


def shard_from_env(environ: Mapping[str, str] | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Shard | None:
    """The ``Shard`` that ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` describe; None when they are unset or the world
    is one process. Values that are not a valid rank in the world are refused by name."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ and "RANK" not in environ:
        return None
    values: dict[str, int] = {}
    for name, default in (("RANK", None), ("WORLD_SIZE", None), ("LOCAL_RANK", "0")):
        text = environ.get(name, default)
        try:
            values[name] = int(text)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"environment variable {name}={text!r} is not an integer (set by torchrun or "
                             f"accelerate launch, with RANK and WORLD_SIZE both)") from None
    rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(f"environment variables RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local} do not describe "
                         f"a process of the world")
    if not timeout_s > 0:
        raise ValueError(f"the timeout must be a positive number of seconds, got {timeout_s}")
    return None if world == 1 else Shard(rank, world, local, timeout_s)


def shard_device(device: torch.device, shard: Shard | None) -> torch.device:
    """``cuda`` without an index means ``cuda:LOCAL_RANK`` in a sharded run (one GPU per process)."""
    if shard is not None and device.type == "cuda" and device.index is None:
        return torch.device("cuda", shard.local_rank)
    return device


@contextlib.contextmanager
def process_group(shard: Shard | None, device: torch.device) -> Iterator[None]:
    """The default process group of ``shard``'s world while the block runs (nothing without a shard): gloo, or nccl
    on a CUDA device, joined through the launcher's ``MASTER_ADDR``/``MASTER_PORT`` within the shard's timeout."""
    if shard is None:
        yield
        return
    import torch.distributed as dist

    if not dist.is_available():
        raise ValueError(f"{shard}: this torch build has no torch.distributed, needed to split the input")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(backend, rank=shard.rank, world_size=shard.world_size,
                                timeout=datetime.timedelta(seconds=shard.timeout_s))
    except (RuntimeError, ValueError) as e:
        raise ConnectionError(f"{shard}: could not join the other processes ({backend}): {_first_line(e)}") from None
    try:
        yield
    finally:
        dist.destroy_process_group()


def exchange(shard: Shard, payload: Any, stage: str) -> list[Any]:
    """Every rank's ``payload`` (small, picklable), in rank order. Raises TimeoutError, naming ``stage``, when the
    others do not all answer within the timeout or one of them has gone."""
    import torch.distributed as dist

    gathered: list[Any] = [None] * shard.world_size
    try:
        dist.all_gather_object(gathered, payload)
    except RuntimeError as e:
        raise TimeoutError(f"{shard}: the other processes did not all reach {stage} within {shard.timeout_s:g} s, "
                           f"or one of them stopped ({_first_line(e)})") from None
    return gathered


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
