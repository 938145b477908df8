"""``hf-elmo convert-elmo``: an original ELMo (options.json + weights.hdf5 [+ vocabulary]) → a transformers folder.

The same arguments serve ``conversion/convert_allennlp_elmo.py`` (through ``main``), so both entry points call
``convert_allennlp_elmo`` the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import (add_command_parser, add_push_arguments, check_push_arguments, console_logging,
               standalone_main)

NAME = "convert-elmo"
HELP = "convert an original ELMo (bilm-tf / AllenNLP options.json + weights.hdf5) into a transformers folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The conversion's arguments (shared by the subcommand and the standalone script)."""
    parser.add_argument("--options", type=Path, required=True, help="the original options.json")
    parser.add_argument("--weights", type=Path, required=True, help="the original weights (HDF5)")
    parser.add_argument("--output", type=Path, required=True, help="folder to write (new or empty)")
    parser.add_argument(
        "--vocab",
        type=Path,
        help="word vocabulary, one word per line: converts to ElmoForLanguageModeling with a freshly initialised "
        "softmax over it (default: ElmoModel, no vocabulary needed)",
    )
    parser.add_argument("--token-cache", type=Path, metavar="WORDS",
                        help="save the token-embedding cache of these words (one per line, e.g. the --vocab file) "
                             "with the folder: from_pretrained loads it and those words skip the character CNN, "
                             "with the same outputs (as bilm-tf's dump_token_embeddings)")
    parser.add_argument("--token-cache-input-products", action="store_true",
                        help="cache the first layer's input products too (faster; 4 x lstm_dim floats a word and "
                             "direction: 128 KB a word at the original size)")
    add_push_arguments(parser)
    parser.add_argument("--model-name", help="title of the model card (default: ELMo (<size>))")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    return add_command_parser(subparsers, NAME, HELP, add_arguments, run)


def run(args: argparse.Namespace) -> int:
    from ..conversion.allennlp_elmo import convert_allennlp_elmo

    check_push_arguments(args)
    with console_logging():
        output = convert_allennlp_elmo(
            options=args.options,
            weights=args.weights,
            output_dir=args.output,
            vocab=args.vocab,
            push_to_hub=args.push_to_hub,
            private=args.private,
            revision=args.revision,
            model_name=args.model_name,
            token_cache=args.token_cache,
            token_cache_input_products=args.token_cache_input_products,
        )
    print(f"Wrote the converted ELMo to {output}")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Standalone entry point (the conversion script): parses ``argv`` and converts; returns the exit status."""
    return standalone_main(add_arguments, run, HELP, argv, prog)
