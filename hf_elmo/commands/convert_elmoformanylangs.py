"""``hf-elmo convert-elmoformanylangs``: an ELMoForManyLangs model folder (config.json, the architecture json,
char.dic, word.dic, token_embedder.pkl, encoder.pkl) → a transformers folder.

The same arguments serve ``conversion/convert_elmoformanylangs.py`` (through ``main``), so both entry points call
``convert_elmoformanylangs`` the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import (add_command_parser, add_push_arguments, check_push_arguments, console_logging,
               standalone_main)

NAME = "convert-elmoformanylangs"
HELP = "convert an ELMoForManyLangs model folder (one of its 44 languages' ELMo) into a transformers folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The conversion's arguments (shared by the subcommand and the standalone script)."""
    parser.add_argument("--model-dir", type=Path, required=True,
                        help="the model folder Embedder(model_dir) reads (config.json, char.dic, word.dic, *.pkl)")
    parser.add_argument("--output", type=Path, required=True, help="folder to write (new or empty)")
    parser.add_argument("--language", help="the model's language (ISO code, e.g. zh), for the model card")
    add_push_arguments(parser)
    parser.add_argument("--model-name", help="title of the model card (default: ELMoForManyLangs (<language>))")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    return add_command_parser(subparsers, NAME, HELP, add_arguments, run)


def run(args: argparse.Namespace) -> int:
    from ..conversion.elmoformanylangs import convert_elmoformanylangs

    check_push_arguments(args)
    with console_logging():
        output = convert_elmoformanylangs(
            model_dir=args.model_dir,
            output_dir=args.output,
            push_to_hub=args.push_to_hub,
            private=args.private,
            revision=args.revision,
            model_name=args.model_name,
            language=args.language,
        )
    print(f"Wrote the converted ELMoForManyLangs model to {output}")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Standalone entry point (the conversion script): parses ``argv`` and converts; returns the exit status."""
    return standalone_main(add_arguments, run, HELP, argv, prog)
