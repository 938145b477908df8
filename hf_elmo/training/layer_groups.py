"""Layer groups: the unit that ULMFiT's discriminative learning rates and gradual unfreezing work on.

A model exposes ``layer_groups()``: its groups from the bottom (embeddings) to the top (the head), each a list of
``nn.Module``s and/or ``nn.Parameter``s. Everything here resolves those groups to parameters with two rules:

* every parameter of the model lies in exactly one group. A parameter listed in several groups (a decoder tied to
  the embedding) belongs to the TOPMOST of them, as in fastai, whose language model puts the embedding and the tied
  decoder in its top group: it then gets the top learning rate and trains from the first stage of gradual
  unfreezing. A group can therefore end up with no parameters of its own; it still counts as a layer when the
  learning rates are spaced out.
* a parameter in no group is an error, never silently left with a default learning rate or frozen forever.

ELMo models have no ``layer_groups()``; :func:`layer_groups_of` gives them one: the character encoder, each biLSTM
layer, then everything else (scalar mixes and the task head).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Union

from torch import nn

from ..models.elmo.modeling_elmo import ElmoModel

GroupItem = Union[nn.Module, nn.Parameter]
LayerGroups = Sequence[Union[GroupItem, Iterable[GroupItem]]]


def layer_groups_of(model: nn.Module) -> list[list[GroupItem]]:
    """``model.layer_groups()`` (bottom to top), checked; for ELMo models without one, the ELMo grouping."""
    method = getattr(model, "layer_groups", None)
    if callable(method):
        return normalize_layer_groups(method())
    groups = _elmo_layer_groups(model)
    if groups is None:
        raise TypeError(
            f"{type(model).__name__} has no layer_groups() method: give it one (a list of groups from the bottom "
            "layer to the top, each a list of modules or parameters), or pass the groups explicitly (groups=...)"
        )
    return groups


def normalize_layer_groups(groups: LayerGroups) -> list[list[GroupItem]]:
    """Groups as lists of modules/parameters; a bare module or parameter counts as a one-item group."""
    if isinstance(groups, (nn.Module, nn.Parameter)) or not isinstance(groups, Iterable):
        raise TypeError(f"layer groups must be a list of groups, got {type(groups).__name__}")
    out: list[list[GroupItem]] = []
    for i, group in enumerate(groups):
        items = [group] if isinstance(group, (nn.Module, nn.Parameter)) else list(group)
        for item in items:
            if not isinstance(item, (nn.Module, nn.Parameter)):
                raise TypeError(
                    f"layer group {i} holds a {type(item).__name__}: groups hold nn.Modules and nn.Parameters"
                )
        out.append(items)
    if not out:
        raise ValueError("a model needs at least one layer group")
    return out


def grouped_parameters(model: nn.Module, groups: LayerGroups | None = None) -> list[list[tuple[str, nn.Parameter]]]:
    """The model's named parameters split by layer group (bottom to top), each parameter in exactly one group.

    ``groups`` defaults to :func:`layer_groups_of`. Shared parameters go to the topmost group that lists them (see the
    module docstring); a parameter in no group, or a group item that is not part of ``model``, is a ``ValueError``.
    """
    groups = layer_groups_of(model) if groups is None else normalize_layer_groups(groups)
    named = list(model.named_parameters())  # shared parameters once, under their first name
    name_of = {id(p): name for name, p in named}
    owner: dict[int, int] = {}
    for index, group in enumerate(groups):
        for item in group:
            for p in item.parameters() if isinstance(item, nn.Module) else (item,):
                if id(p) not in name_of:
                    raise ValueError(
                        f"layer group {index} holds a parameter of shape {tuple(p.shape)} that is not one of the "
                        f"model's parameters"
                    )
                owner[id(p)] = index  # later groups are higher: the topmost listing wins
    missing = [name for name, p in named if id(p) not in owner]
    if missing:
        shown = ", ".join(missing[:8]) + (f", ... ({len(missing)} in all)" if len(missing) > 8 else "")
        raise ValueError(
            f"parameters in no layer group: {shown}. Every parameter needs a group (and so a learning rate and an "
            "unfreezing stage): add them to the model's layer_groups() or to groups=..."
        )
    out: list[list[tuple[str, nn.Parameter]]] = [[] for _ in groups]
    for name, p in named:
        out[owner[id(p)]].append((name, p))
    return out


def _elmo_layer_groups(model: nn.Module) -> list[list[GroupItem]] | None:
    """[character encoder], [biLSTM layer 0], ..., [everything else]; None when ``model`` holds no ElmoModel."""
    elmo = model if isinstance(model, ElmoModel) else getattr(model, "elmo", None)
    if not isinstance(elmo, ElmoModel):
        return None
    lower: list[list[GroupItem]] = [[elmo.char_encoder]] + [[layer] for layer in elmo.bilm.layers]
    seen = {id(p) for group in lower for module in group for p in module.parameters()}
    top: list[GroupItem] = [p for p in model.parameters() if id(p) not in seen]
    return lower + [top]
