"""The ULMFiT recipe's settings: what a fastai user sets per ``fit`` call, per stage, and what the whole run shares.

Each of the three stages (general-domain LM pretraining, target-task LM fine-tuning, classifier fine-tuning) has its
own :class:`StageSettings`: epochs, peak learning rate, discriminative factor (or one rate for every layer group),
batch size, the optimiser's weight decay, betas and eps, the schedule (the paper's slanted triangular rates or fastai's
one-cycle), gradient clipping, and frozen first epochs. :class:`UlmfitSettings` holds the three and what the run
shares (bptt and its jitter, the vocabulary, dropouts, seed, precision). Both are recorded in ``metrics.json`` and in
the model cards (``to_dict``), so that a run can be repeated from its record.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

SCHEDULES = ("stlr", "one_cycle")
STAGE_NAMES = ("pretraining", "lm_finetuning", "classifier")

# fastai's Adam/AdamW defaults that the recipe follows (fastai.optimizer.Adam: eps 1e-5; Learner: wd 0.01, applied
# as decoupled weight decay, not to biases and normalisation weights), with the ULMFiT paper's betas (0.7, 0.99)
FASTAI_WEIGHT_DECAY = 0.01
FASTAI_ADAM_EPS = 1e-5
ULMFIT_ADAM_BETAS = (0.7, 0.99)
FASTAI_ONE_CYCLE_MOMS = (0.95, 0.85, 0.95)


def _check(condition: bool, name: str, value: Any, needs: str) -> None:
    if not condition:
        raise ValueError(f"{name} {value!r}: {needs}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class StageSettings:
    """How one stage trains.

    Args:
        epochs: epochs of the stage. For the classifier, None means one per layer group (gradual unfreezing: one
            more group from the top each epoch) and one more with every group unfrozen.
        lr: the peak learning rate of the top layer group.
        lr_factor: discriminative fine-tuning: layer group ``l`` of ``L`` gets ``lr / lr_factor**(L - 1 - l)``
            (fastai's ``slice(lr / 2.6**4, lr)`` for 5 groups is ``lr_factor=2.6``). None: one rate for every group,
            as in training from scratch.
        batch_size: rows per batch (LM stream rows, or classifier texts).
        weight_decay: AdamW's decoupled weight decay (fastai's ``wd``; biases and normalisation weights are exempt,
            fastai's ``wd_bn_bias=False``).
        betas, eps: AdamW's (fastai's ``moms``/``sqr_mom`` and ``eps``). With ``schedule="one_cycle"`` β1 follows
            ``moms`` instead.
        schedule: ``"stlr"``: the paper's slanted triangular rates over the whole stage (``cut_frac``, ``ratio``);
            ``"one_cycle"``: fastai's ``fit_one_cycle`` (``pct_start``, ``div``, ``div_final``, ``moms``),
            restarted at every unfreezing step, as fastai's recipes call it once per stage of unfreezing.
        max_grad_norm: gradients clipped to this global norm (the Trainer's ``max_grad_norm``); None: no clipping.
        frozen_epochs: epochs at the start in which only the top layer group trains (fastai's
            ``fine_tune(freeze_epochs=...)``: the embeddings and the tied decoder of an LM first). Not for the
            classifier, which unfreezes gradually.
        epochs_per_unfreeze: the classifier's gradual unfreezing: epochs before the next layer group unfreezes.
        unfreeze_groups: the classifier's gradual unfreezing as a fastai script's ``freeze_to(-k)`` calls give it:
            how many top groups each phase trains (fastai's ULMFiT tutorial: ``(1, 2, 3, -1)``, -1 for all; the
            last phase lasts to the end); None: one more group per phase (the paper).
        phase_lrs: the peak rate of each phase, a phase being a run of epochs that train the same layer groups
            (the frozen epochs, then the rest; the classifier's unfreezing steps), as a fastai script calls
            ``fit_one_cycle`` once per phase with its own rate (the tutorial: ``2e-2, 1e-2, 5e-3, 1e-3``); within a
            phase the groups below the top get ``/ lr_factor`` per group as usual. None: ``lr`` for every phase.
    """

    epochs: int | None = 1
    lr: float = 1e-2
    lr_factor: float | None = 2.6
    batch_size: int = 32
    weight_decay: float = FASTAI_WEIGHT_DECAY
    betas: tuple[float, float] = ULMFIT_ADAM_BETAS
    eps: float = FASTAI_ADAM_EPS
    schedule: str = "stlr"
    cut_frac: float = 0.1
    ratio: float = 32.0
    pct_start: float = 0.25
    div: float = 25.0
    div_final: float = 1e5
    moms: tuple[float, float, float] = FASTAI_ONE_CYCLE_MOMS
    max_grad_norm: float | None = 1.0
    frozen_epochs: int = 0
    epochs_per_unfreeze: int = 1
    unfreeze_groups: tuple[int, ...] | None = None
    phase_lrs: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        self.moms = tuple(self.moms)
        for name in ("unfreeze_groups", "phase_lrs"):
            if getattr(self, name) is not None:
                setattr(self, name, tuple(getattr(self, name)))

    def check(self, stage: str) -> None:
        """Refuses a value that could not be meant, naming the stage and the setting."""
        def name(key: str) -> str:
            return f"{stage}.{key}"

        _check(self.epochs is None or (_is_int(self.epochs) and self.epochs >= 1), name("epochs"), self.epochs,
               "needs a positive integer" + (" (or None: one per layer group, plus one)" if stage == "classifier"
                                            else ""))
        _check(self.epochs is not None or stage == "classifier", name("epochs"), self.epochs,
               "needs a positive integer")
        _check(_is_number(self.lr) and self.lr > 0, name("lr"), self.lr, "needs a number > 0")
        _check(self.lr_factor is None or (_is_number(self.lr_factor) and self.lr_factor >= 1), name("lr_factor"),
               self.lr_factor, "needs a number >= 1 (the ratio between consecutive groups' rates), or None")
        _check(_is_int(self.batch_size) and self.batch_size >= 1, name("batch_size"), self.batch_size,
               "needs a positive integer")
        _check(_is_number(self.weight_decay) and self.weight_decay >= 0, name("weight_decay"), self.weight_decay,
               "needs a number >= 0")
        _check(len(self.betas) == 2 and all(_is_number(b) and 0 <= b < 1 for b in self.betas), name("betas"),
               self.betas, "needs two numbers in [0, 1)")
        _check(_is_number(self.eps) and self.eps > 0, name("eps"), self.eps, "needs a number > 0")
        _check(self.schedule in SCHEDULES, name("schedule"), self.schedule, f"needs one of {', '.join(SCHEDULES)}")
        _check(_is_number(self.cut_frac) and 0 < self.cut_frac < 1, name("cut_frac"), self.cut_frac,
               "needs a number in (0, 1)")
        _check(_is_number(self.ratio) and self.ratio >= 1, name("ratio"), self.ratio, "needs a number >= 1")
        _check(_is_number(self.pct_start) and 0 <= self.pct_start < 1, name("pct_start"), self.pct_start,
               "needs a number in [0, 1)")
        _check(_is_number(self.div) and self.div > 0 and _is_number(self.div_final) and self.div_final > 0,
               name("div"), (self.div, self.div_final), "div and div_final need numbers > 0")
        _check(len(self.moms) == 3 and all(_is_number(m) and 0 <= m < 1 for m in self.moms), name("moms"),
               self.moms, "needs three numbers in [0, 1)")
        _check(self.max_grad_norm is None or (_is_number(self.max_grad_norm) and self.max_grad_norm > 0),
               name("max_grad_norm"), self.max_grad_norm, "needs a number > 0, or None (no clipping)")
        _check(_is_int(self.frozen_epochs) and self.frozen_epochs >= 0, name("frozen_epochs"), self.frozen_epochs,
               "needs an integer >= 0")
        _check(self.frozen_epochs == 0 or stage != "classifier", name("frozen_epochs"), self.frozen_epochs,
               "the classifier unfreezes gradually (epochs_per_unfreeze) instead")
        _check(self.epochs is None or self.frozen_epochs < self.epochs, name("frozen_epochs"), self.frozen_epochs,
               f"leaves no unfrozen epoch of {self.epochs}")
        _check(self.phase_lrs is None or (len(self.phase_lrs) >= 1 and all(
            _is_number(x) and x > 0 for x in self.phase_lrs)), name("phase_lrs"), self.phase_lrs,
               "needs numbers > 0, one per phase, or None (lr for every phase)")
        _check(self.unfreeze_groups is None or (len(self.unfreeze_groups) >= 1 and all(
            _is_int(k) and (k >= 1 or k == -1) for k in self.unfreeze_groups)), name("unfreeze_groups"),
               self.unfreeze_groups, "needs counts of top layer groups >= 1 (or -1: all), or None")
        _check(self.unfreeze_groups is None or stage == "classifier", name("unfreeze_groups"),
               self.unfreeze_groups, "only the classifier unfreezes gradually (the LM stages: frozen_epochs)")
        _check(_is_int(self.epochs_per_unfreeze) and self.epochs_per_unfreeze >= 1, name("epochs_per_unfreeze"),
               self.epochs_per_unfreeze, "needs a positive integer")

    def describe(self) -> str:
        """The stage's optimisation in one phrase, for the model cards."""
        rates = (f"lr {self.lr:g} for every layer group" if self.lr_factor is None else
                 f"lr {self.lr:g} for the top layer group and ÷{self.lr_factor:g} per group below")
        if self.schedule == "stlr":
            schedule = f"slanted triangular (cut_frac {self.cut_frac:g}, ratio {self.ratio:g})"
        else:
            schedule = (f"one-cycle (pct_start {self.pct_start:g}, div {self.div:g}, div_final {self.div_final:g}, "
                        f"moms {', '.join(f'{m:g}' for m in self.moms)}; restarted at each unfreezing)")
        clip = f"gradients clipped to norm {self.max_grad_norm:g}" if self.max_grad_norm else "no gradient clipping"
        frozen = ""
        if self.frozen_epochs:
            frozen = f"; the first {self.frozen_epochs} epoch(s) train only the top layer group"
        if self.phase_lrs is not None:
            rates += f" (peak lr of each phase: {', '.join(f'{x:g}' for x in self.phase_lrs)})"
        return (f"AdamW (β = {self.betas[0]:g}, {self.betas[1]:g}, eps {self.eps:g}, weight decay "
                f"{self.weight_decay:g}), {rates}, {schedule}; {clip}{frozen}")


def _stage_default(**overrides: Any) -> Any:
    return field(default_factory=lambda: StageSettings(**overrides))


@dataclass
class UlmfitSettings:
    """The recipe's settings. The defaults are the paper's recipe at a size that runs on a CPU: stage 1 a plain
    single rate (training from scratch), stages 2 and 3 discriminative rates (factor 2.6) with slanted triangular
    schedules (cut_frac 0.1, ratio 32), the classifier unfreezing one layer group per epoch; the optimiser is
    fastai's AdamW (weight decay 0.01, eps 1e-5) with the paper's betas (0.7, 0.99), gradients clipped at norm 1.

    Args:
        pretraining, lm_finetuning, classifier: each stage's :class:`StageSettings`.
        bptt: the LM's window length and the classifier's chunk length; written into the models' configs (their
            ``bptt``), so the saved folders say what was used. None: the model's own (72 for a new model, fastai's
            default; a pretrained LM's config otherwise).
        bptt_jitter: draw the LM stream's window lengths with the AWD-LSTM/fastai rule; False: fixed ``bptt``
            windows (fastai's classic ``LMDataLoader`` without ``seq_len`` jitter).
        min_freq, max_vocab: the vocabulary (fastai's defaults: 3 and 60,000).
        replace_space: fastai's post-rule ``replace_space`` (spaces inside a token → ``▁``), on in fastai's corpus
            path; changes how indented text is spelled in the vocabulary.
        drop_mult: multiplier of every AWD-LSTM dropout.
        backwards: train backward models (fastai's ``backwards=True``, the ULMFiT paper's second direction): every
            document is read reversed (the tokenizer's ``backwards``, the configs' ``backwards``); a pretrained LM
            must be a backward one.
        seed: seed of every stage.
        bf16: train under bfloat16 autocast (the Trainer's ``bf16``).
        extra_training_args: more ``TrainingArguments`` for every stage.
    """

    pretraining: StageSettings = _stage_default(lr_factor=None)
    lm_finetuning: StageSettings = _stage_default()
    classifier: StageSettings = _stage_default(epochs=None)
    bptt: int | None = None
    bptt_jitter: bool = True
    min_freq: int = 3
    max_vocab: int = 60000
    replace_space: bool = False
    drop_mult: float = 1.0
    backwards: bool = False
    seed: int = 0
    bf16: bool = False
    extra_training_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for stage in STAGE_NAMES:
            value = getattr(self, stage)
            if isinstance(value, dict):  # e.g. read back from metrics.json
                setattr(self, stage, StageSettings(**value))
            elif not isinstance(value, StageSettings):
                raise TypeError(f"UlmfitSettings.{stage} must be a StageSettings, got {type(value).__name__}")
        self.check()

    def check(self) -> None:
        for stage in STAGE_NAMES:
            getattr(self, stage).check(stage)
        _check(self.bptt is None or (_is_int(self.bptt) and self.bptt >= 2), "bptt", self.bptt,
               "needs an integer >= 2, or None (the model's own)")
        for name in ("bptt_jitter", "replace_space", "backwards", "bf16"):
            _check(isinstance(getattr(self, name), bool), name, getattr(self, name), "needs True or False")
        _check(_is_int(self.min_freq) and self.min_freq >= 1, "min_freq", self.min_freq, "needs a positive integer")
        _check(_is_int(self.max_vocab) and self.max_vocab >= 10, "max_vocab", self.max_vocab,
               "needs an integer >= 10 (fastai's special tokens take 9)")
        _check(_is_number(self.drop_mult) and self.drop_mult >= 0, "drop_mult", self.drop_mult, "needs a number >= 0")
        _check(_is_int(self.seed), "seed", self.seed, "needs an integer")
        reserved = {"learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm",
                    "num_train_epochs", "per_device_train_batch_size", "lr_scheduler_type", "warmup_steps",
                    "warmup_ratio"} & set(self.extra_training_args)
        _check(not reserved, "extra_training_args", sorted(reserved),
               "are set per stage in StageSettings (the recipe builds the optimiser and schedule itself)")

    def stage(self, name: str) -> StageSettings:
        if name not in STAGE_NAMES:
            raise KeyError(f"no ULMFiT stage {name!r}: the stages are {', '.join(STAGE_NAMES)}")
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON), as recorded in metrics.json and the model cards."""
        return asdict(self)

    def with_stages(self, **changes: dict[str, Any]) -> "UlmfitSettings":
        """A copy with some fields of some stages changed: ``with_stages(classifier={"lr": 2e-2})``."""
        stages = {name: replace(self.stage(name), **fields_) for name, fields_ in changes.items()}
        return replace(self, **stages)

