"""``hf-elmo ulmfit --help``: every option says what it does and shows its default; ``--threads`` as quickstart."""

from __future__ import annotations

import argparse

import pytest

from hf_elmo.cli import build_parser


def subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


@pytest.mark.parametrize("name", ["ulmfit", "quickstart"])
def test_every_option_has_help_and_shows_its_default(name):
    parser = subparser(name)
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name} {action.option_strings}: no help"
        if action.default not in (None, False):
            assert f"default: {action.default}" in " ".join(text.split()) or "default" in action.help, (
                f"{name} {action.option_strings}: default {action.default!r} not shown")


def test_ulmfit_threads(monkeypatch):
    import torch

    from hf_elmo.commands import ulmfit

    seen = {}

    def fake_run_ulmfit(*args, **kwargs):
        seen["threads"] = torch.get_num_threads()
        raise ValueError("stop here")

    monkeypatch.setattr("hf_elmo.training.ulmfit.run_ulmfit", fake_run_ulmfit)
    args = subparser("ulmfit").parse_args(["--train", "x", "--scratch", "--threads", "1"])
    assert args.threads == 1
    monkeypatch.setattr("hf_elmo.data.tabular.read_labelled", lambda *a, **k: (["a b", "c d"], ["x", "y"]))
    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="stop here"):
        ulmfit.run(args)
    assert seen["threads"] == 1 and torch.get_num_threads() == before
