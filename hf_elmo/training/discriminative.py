"""Discriminative fine-tuning (ULMFiT): each layer group gets its own learning rate, the top group ``lr`` and each
group below it ``factor`` times less (ULMFiT: 2.6), because lower layers hold more general features that should
move less.

The param groups are built for ALL parameters, trainable or not: gradual unfreezing flips ``requires_grad`` during
training, and a frozen parameter simply gets no gradient, so the optimizer leaves it alone (AdamW skips parameters
whose ``.grad`` is None, weight decay included).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .layer_groups import LayerGroups, grouped_parameters

# Betas the ULMFiT paper used with Adam (β1 = 0.7 rather than 0.9); torch's default is (0.9, 0.999).
ULMFIT_BETAS = (0.7, 0.99)

# Parameters that get no weight decay when weight_decay > 0, as in transformers' Trainer: biases and normalisation
# weights (decaying a LayerNorm/BatchNorm scale towards 0 only hurts).
_NO_DECAY_NAME = re.compile(r"bias|layernorm|rmsnorm|batchnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.)")
_NORM_TYPES: tuple[type[nn.Module], ...] = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase) + (
    (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()
)


def no_decay_parameter_ids(model: nn.Module) -> set[int]:
    """ids of the parameters that should not be weight-decayed: those of normalisation layers and those whose name
    says bias/norm (a parameter shared under several names is exempt if any of them is)."""
    exempt: set[int] = set()
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, _NORM_TYPES)
        for name, p in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if is_norm or _NO_DECAY_NAME.search(full.lower()):
                exempt.add(id(p))
    return exempt


def discriminative_lrs(lr: float | Sequence[float], n_groups: int, factor: float = 2.6) -> list[float]:
    """Per-group learning rates, bottom to top: ``lr / factor**(n_groups - 1 - l)`` for group ``l`` (the top group
    gets ``lr``), or ``lr`` itself when it is a sequence of ``n_groups`` rates."""
    if isinstance(lr, Sequence) and not isinstance(lr, str):
        lrs = [float(x) for x in lr]
        if len(lrs) != n_groups:
            raise ValueError(f"got {len(lrs)} learning rates for {n_groups} layer groups")
    else:
        if not factor > 0:
            raise ValueError(f"factor must be > 0, got {factor}")
        lrs = [float(lr) / factor ** (n_groups - 1 - level) for level in range(n_groups)]
    if not all(x > 0 for x in lrs):
        raise ValueError(f"learning rates must be > 0, got {lrs}")
    return lrs


def discriminative_param_groups(
    model: nn.Module,
    lr: float | Sequence[float],
    factor: float = 2.6,
    weight_decay: float = 0.0,
    groups: LayerGroups | None = None,
) -> list[dict[str, Any]]:
    """Optimizer param groups for discriminative fine-tuning.

    Args:
        model: the model; its layer groups come from ``model.layer_groups()`` (or the ELMo fallback) unless
            ``groups`` is given.
        lr: the top group's learning rate; group ``l`` of ``L`` gets ``lr / factor**(L - 1 - l)``. A sequence of
            ``L`` rates sets them directly (bottom to top).
        factor: the ratio between consecutive groups' rates (ULMFiT: 2.6).
        weight_decay: when > 0, each layer group is split in two param groups, one decayed and one (biases and
            normalisation weights) not, as transformers' Trainer does.
        groups: explicit layer groups, bottom to top (lists of modules/parameters).

    Returns:
        A list of dicts for any torch optimizer, bottom group first. Each has ``params``, ``lr``, ``weight_decay`` and
        ``layer_group`` (the group's index, kept by torch in ``optimizer.param_groups``). Param groups that would be
        empty (a layer group whose only parameter is tied to a higher group) are left out. Every parameter of the
        model is in exactly one param group, frozen ones included.
    """
    named = grouped_parameters(model, groups)
    lrs = discriminative_lrs(lr, len(named), factor)
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    exempt = no_decay_parameter_ids(model) if weight_decay > 0 else set()
    param_groups: list[dict[str, Any]] = []
    for level, (group, group_lr) in enumerate(zip(named, lrs)):
        decayed = [p for _, p in group if id(p) not in exempt]
        plain = [p for _, p in group if id(p) in exempt]
        for params, wd in ((decayed, weight_decay), (plain, 0.0)):
            if params:
                param_groups.append({"params": params, "lr": group_lr, "weight_decay": wd, "layer_group": level})
    return param_groups


def make_optimizer(
    model: nn.Module,
    lr: float | Sequence[float],
    factor: float = 2.6,
    weight_decay: float = 0.0,
    groups: LayerGroups | None = None,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    **adamw_kwargs: Any,
) -> torch.optim.AdamW:
    """AdamW over :func:`discriminative_param_groups`, to pass as ``Trainer(optimizers=(optimizer, scheduler))``.

    ``betas=ULMFIT_BETAS`` gives the paper's (0.7, 0.99). torch picks the implementation (foreach on accelerators);
    ``foreach=``/``fused=`` and other AdamW arguments go through ``adamw_kwargs``. It may be built before the
    ``Trainer``: the Trainer moves the parameters to its device in place, so the optimizer keeps pointing at them.
    """
    param_groups = discriminative_param_groups(model, lr, factor, weight_decay, groups)
    top_lr = max(g["lr"] for g in param_groups)
    return torch.optim.AdamW(param_groups, lr=top_lr, betas=betas, eps=eps, weight_decay=weight_decay,
                             **adamw_kwargs)
