"""Learning-rate schedules of ULMFiT, as torch ``LambdaLR``s that ``Trainer(optimizers=(optimizer, scheduler))``
accepts.

Both scale every param group's own base rate by the same factor, so the ratios that discriminative fine-tuning set
between layer groups hold at every step. Step ``t`` is the number of optimizer steps already taken (the Trainer
steps the scheduler after each optimizer step), so training step ``t`` runs at ``base_lr · factor(t)``, t = 0..T−1.

* :class:`SlantedTriangular`: the paper's slanted triangular learning rate (Howard & Ruder 2018, eq. 3).
* :class:`OneCycle`: fastai's ``fit_one_cycle``, which fastai's ULMFiT recipes train with: a cosine warm-up from
  ``lr/div`` to ``lr`` over ``pct_start`` of the steps, then cosine annealing to ``lr/div_final``, with the
  momentum (Adam's β1) optionally cycled the other way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.optim.lr_scheduler import LambdaLR


@dataclass(frozen=True)
class SlantedTriangular:
    """The slanted triangular learning rate as a multiplier of the peak rate η_max.

    With T = ``num_training_steps``, cut = ⌊T·cut_frac⌋::

        p = t / cut                                  if t < cut
            1 − (t − cut) / (cut · (1/cut_frac − 1))  otherwise
        η_t / η_max = (1 + p · (ratio − 1)) / ratio

    so the rate climbs linearly from η_max/ratio to η_max over the first ``cut`` steps, then falls linearly back
    to η_max/ratio at t = cut/cut_frac (= T when T·cut_frac is a whole number).

    Two cases the paper leaves open, and how they are defined here:

    * T·cut_frac not a whole number: the formula's decay reaches η_max/ratio at t = cut/cut_frac < T and would go
      on below it (negative rates for long enough). ``p`` is clamped at 0, so the rate stays at η_max/ratio, the
      schedule's own minimum, for those last steps; everywhere else the formula is exact. Steps past T are clamped
      the same way.
    * T < 1/cut_frac, so cut = 0 (no warm-up step fits): the rate starts at η_max and falls linearly to η_max/ratio
      at t = T, i.e. p = 1 − t/T; the decay phase simply takes all T steps.
    """

    num_training_steps: int
    cut_frac: float = 0.1
    ratio: float = 32.0

    def __post_init__(self) -> None:
        if int(self.num_training_steps) != self.num_training_steps or self.num_training_steps < 1:
            raise ValueError(f"num_training_steps must be a positive integer, got {self.num_training_steps}")
        if not 0 < self.cut_frac < 1:
            raise ValueError(f"cut_frac must lie in (0, 1), got {self.cut_frac}")
        if not self.ratio >= 1:
            raise ValueError(f"ratio must be >= 1 (the peak rate over the lowest), got {self.ratio}")

    @property
    def cut(self) -> int:
        """The step at which the rate peaks, ⌊T·cut_frac⌋ (a tiny tolerance keeps e.g. 10 × 0.3 at 3)."""
        return math.floor(self.num_training_steps * self.cut_frac + 1e-9)

    def __call__(self, step: int) -> float:
        t, cut = step, self.cut
        if cut == 0:
            p = 1.0 - t / self.num_training_steps
        elif t < cut:
            p = t / cut
        else:
            p = 1.0 - (t - cut) / (cut * (1.0 / self.cut_frac - 1.0))
        p = max(p, 0.0)
        return (1.0 + p * (self.ratio - 1.0)) / self.ratio


def slanted_triangular_schedule(
    optimizer: torch.optim.Optimizer,
    num_training_steps: int,
    cut_frac: float = 0.1,
    ratio: float = 32.0,
    last_epoch: int = -1,
) -> LambdaLR:
    """ULMFiT's slanted triangular schedule over ``num_training_steps`` optimizer steps (see
    :class:`SlantedTriangular`); each param group's current ``lr`` is its η_max."""
    return LambdaLR(optimizer, SlantedTriangular(num_training_steps, cut_frac, ratio), last_epoch=last_epoch)


def _cos_between(start: float, end: float, pos: float) -> float:
    """fastai's SchedCos: from ``start`` at pos 0 to ``end`` at pos 1 along half a cosine."""
    return start + (1.0 - math.cos(math.pi * pos)) * (end - start) / 2.0


@dataclass(frozen=True)
class OneCycle:
    """fastai's one-cycle policy as multipliers of the peak rate: at position pos = t/T of training, a cosine from
    1/div to 1 over [0, pct_start), then a cosine from 1 to 1/div_final over [pct_start, 1]; :meth:`momentum`
    goes from moms[0] to moms[1] and back to moms[2] over the same two phases. The defaults are fastai's."""

    num_training_steps: int
    pct_start: float = 0.25
    div: float = 25.0
    div_final: float = 1e5

    def __post_init__(self) -> None:
        if int(self.num_training_steps) != self.num_training_steps or self.num_training_steps < 1:
            raise ValueError(f"num_training_steps must be a positive integer, got {self.num_training_steps}")
        if not 0 <= self.pct_start < 1:
            raise ValueError(f"pct_start must lie in [0, 1), got {self.pct_start}")
        if not (self.div > 0 and self.div_final > 0):
            raise ValueError(f"div and div_final must be > 0, got {self.div}, {self.div_final}")

    def _phase(self, step: int) -> tuple[bool, float]:
        """(in the warm-up?, position within the phase)."""
        pos = min(max(step / self.num_training_steps, 0.0), 1.0)
        if pos < self.pct_start:
            return True, pos / self.pct_start
        return False, (pos - self.pct_start) / (1.0 - self.pct_start)

    def __call__(self, step: int) -> float:
        warm, pos = self._phase(step)
        return _cos_between(1.0 / self.div, 1.0, pos) if warm else _cos_between(1.0, 1.0 / self.div_final, pos)

    def momentum(self, step: int, moms: tuple[float, float, float] = (0.95, 0.85, 0.95)) -> float:
        warm, pos = self._phase(step)
        return _cos_between(moms[0], moms[1], pos) if warm else _cos_between(moms[1], moms[2], pos)


@dataclass(frozen=True)
class RestartedCycles:
    """One :class:`OneCycle` after another: steps ``[0, n1)`` follow the first cycle, ``[n1, n1 + n2)`` the second
    from its start, ..., as fastai's ULMFiT recipes call ``fit_one_cycle`` once per stage of gradual unfreezing.
    Steps past the last cycle stay at its end."""

    cycles: tuple[OneCycle, ...]
    peaks: tuple[float, ...] | None = None  # each cycle's peak as a multiple of the base rate (default: all 1)

    def __post_init__(self) -> None:
        if not self.cycles:
            raise ValueError("RestartedCycles needs at least one cycle")
        if self.peaks is not None and (len(self.peaks) != len(self.cycles) or not all(p > 0 for p in self.peaks)):
            raise ValueError(f"peaks must be {len(self.cycles)} numbers > 0, one per cycle, got {self.peaks}")

    @property
    def num_training_steps(self) -> int:
        return sum(c.num_training_steps for c in self.cycles)

    def _locate(self, step: int) -> tuple[int, int]:
        """(which cycle, the step within it)."""
        for k, cycle in enumerate(self.cycles[:-1]):
            if step < cycle.num_training_steps:
                return k, step
            step -= cycle.num_training_steps
        return len(self.cycles) - 1, step

    def __call__(self, step: int) -> float:
        k, local = self._locate(step)
        return self.cycles[k](local) * (1.0 if self.peaks is None else self.peaks[k])

    def momentum(self, step: int, moms: tuple[float, float, float] = (0.95, 0.85, 0.95)) -> float:
        k, local = self._locate(step)
        return self.cycles[k].momentum(local, moms)


@dataclass(frozen=True)
class PhaseScaled:
    """A multiplier ``schedule`` scaled by ``scales[k]`` during phase ``k`` (phases of ``lengths`` steps, the last
    one open-ended): e.g. a stage's frozen first epochs at their own peak rate (fastai's ``fine_tune`` trains its
    frozen epoch at a different rate from the unfrozen ones)."""

    schedule: Callable[[int], float]
    lengths: tuple[int, ...]
    scales: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.lengths) != len(self.scales) or not all(s > 0 for s in self.scales):
            raise ValueError(f"one scale > 0 per phase: {len(self.lengths)} phases, scales {self.scales}")

    def __call__(self, step: int) -> float:
        start = 0
        for length, scale in zip(self.lengths[:-1], self.scales[:-1]):
            if step < start + length:
                return self.schedule(step) * scale
            start += length
        return self.schedule(step) * self.scales[-1]


class OneCycleSchedule(LambdaLR):
    """:class:`OneCycle` as a ``LambdaLR`` (each group's current ``lr`` is its peak) that also sets the momentum
    (β1 of Adam-style optimizers, ``momentum`` of SGD) on every step when ``moms`` is given. ``num_training_steps``
    a sequence of lengths: one cycle after another (:class:`RestartedCycles`)."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        num_training_steps: int | Sequence[int],
        pct_start: float = 0.25,
        div: float = 25.0,
        div_final: float = 1e5,
        moms: tuple[float, float, float] | None = (0.95, 0.85, 0.95),
        last_epoch: int = -1,
        peaks: Sequence[float] | None = None,
    ) -> None:
        if isinstance(num_training_steps, Sequence):
            self.cycle = RestartedCycles(tuple(OneCycle(n, pct_start, div, div_final) for n in num_training_steps),
                                         None if peaks is None else tuple(peaks))
        else:
            self.cycle = OneCycle(num_training_steps, pct_start, div, div_final)
        self.moms = tuple(moms) if moms is not None else None
        if self.moms is not None:
            if len(self.moms) != 3:
                raise ValueError(f"moms must be (start, middle, end), got {moms}")
            for group in optimizer.param_groups:
                if "betas" not in group and "momentum" not in group:
                    raise ValueError(
                        f"{type(optimizer).__name__} has no momentum to cycle (no 'betas' or 'momentum' in its "
                        "param groups): pass moms=None"
                    )
        # set before LambdaLR.__init__, whose first step() already applies step 0
        super().__init__(optimizer, self.cycle, last_epoch=last_epoch)

    def state_dict(self) -> dict:
        # plain values only, so that the Trainer's torch.load(weights_only=True) can resume from a checkpoint (the
        # cycle's settings are saved with the lambda, by LambdaLR)
        state = super().state_dict()
        state.pop("cycle", None)
        return state

    def step(self, epoch: int | None = None) -> None:  # noqa: D102 (LambdaLR's, plus the momentum)
        if epoch is None:
            super().step()
        else:
            super().step(epoch)
        if self.moms is None:
            return
        mom = self.cycle.momentum(self.last_epoch, self.moms)
        for group in self.optimizer.param_groups:
            if "betas" in group:
                group["betas"] = (mom, *tuple(group["betas"])[1:])
            else:
                group["momentum"] = mom


def one_cycle_schedule(
    optimizer: torch.optim.Optimizer,
    num_training_steps: int | Sequence[int],
    pct_start: float = 0.25,
    div: float = 25.0,
    div_final: float = 1e5,
    moms: tuple[float, float, float] | None = (0.95, 0.85, 0.95),
    last_epoch: int = -1,
    peaks: Sequence[float] | None = None,
) -> OneCycleSchedule:
    """fastai's ``fit_one_cycle`` schedule over ``num_training_steps`` optimizer steps (see :class:`OneCycle`), or
    one cycle after another over a sequence of lengths (:class:`RestartedCycles`, each peaking at ``peaks[k]`` times
    the base rate when given)."""
    return OneCycleSchedule(optimizer, num_training_steps, pct_start, div, div_final, moms, last_epoch, peaks)
