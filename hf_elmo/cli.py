"""The ``hf-elmo`` command line.

This module only wires subcommands: each lives in its own module under ``hf_elmo.commands`` and exposes
``add_parser(subparsers)``, which registers it and sets ``func``; adding a command is adding its module to
``COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys

from .commands import (convert, convert_awd_lstm, convert_elmoformanylangs, embed, export, quickstart, run_guarded,
                       ulmfit)

COMMANDS = (embed, convert, convert_awd_lstm, convert_elmoformanylangs, ulmfit, quickstart, export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-elmo", description="ELMo and ULMFiT/AWD-LSTM as Hugging Face transformers models."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs ``hf-elmo``; returns the exit status (0, 1 for an error the user can fix, 2 for bad usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_guarded(args.func, args, f"{parser.prog} {args.command}")


if __name__ == "__main__":
    sys.exit(main())
