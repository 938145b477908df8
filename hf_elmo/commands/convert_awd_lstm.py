"""``hf-elmo convert-awd-lstm``: a fastai AWD-LSTM (ULMFiT language model or classifier) + its vocabulary → a
transformers folder.

The same arguments serve ``conversion/convert_fastai_awd_lstm.py`` (through ``main``), so both entry points call
``convert_fastai_awd_lstm`` the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import (add_command_parser, add_push_arguments, check_push_arguments, console_logging,
               standalone_main)

NAME = "convert-awd-lstm"
HELP = "convert a fastai AWD-LSTM (ULMFiT language model or text classifier, v1 or v2) into a transformers folder"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _labels(text: str) -> list[str]:
    return [label.strip() for label in text.split(",")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The conversion's arguments (shared by the subcommand and the standalone script)."""
    parser.add_argument("--weights", type=Path, required=True,
                        help="fastai weights: Learner.save's .pth, a state dict, or a fastai v1 file (lstm_wt103.pth)")
    parser.add_argument("--vocab", type=Path, required=True,
                        help="fastai's vocabulary: the pickled itos list (.pkl), or a JSON list (.json)")
    parser.add_argument("--spm-model", type=Path, metavar="SPM_MODEL",
                        help="a model trained with fastai's SentencePieceTokenizer: its spm.model (the tokenizer runs "
                             "fastai's rules, then SentencePiece; ids are --vocab's)")
    parser.add_argument("--output", type=Path, required=True, help="folder to write (new or empty)")
    parser.add_argument("--bptt", type=_positive_int, default=72,
                        help="classifier: chunk length the documents are read in (fastai's seq_len; default 72)")
    parser.add_argument("--max-len", type=_positive_int, default=72 * 20,
                        help="classifier: only the last MAX_LEN tokens of a document are pooled (default 1440)")
    parser.add_argument("--labels", type=_labels, metavar="NAME,NAME,...",
                        help="classifier: the names of its classes, comma-separated, in the order of the head's "
                             "outputs (config.json's id2label/label2id; default: LABEL_0, LABEL_1, ...)")
    parser.add_argument("--backwards", action="store_true",
                        help="a backward model (fastai's backwards=True, e.g. ULMFiT's wt103 backward LM): the folder's "
                             "tokenizer reverses each document, config.json says backwards")
    parser.add_argument("--base-model", metavar="REPO_ID",
                        help="classifier: the Hub id of the language model it was fine-tuned from (card metadata)")
    add_push_arguments(parser)
    parser.add_argument("--model-name", help="title of the model card")
    parser.add_argument("--license", default="apache-2.0", help="license in the card's metadata (default apache-2.0)")
    parser.add_argument("--language", default="en", help="language in the card's metadata (default en)")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    return add_command_parser(subparsers, NAME, HELP, add_arguments, run)


def run(args: argparse.Namespace) -> int:
    from ..conversion.fastai_awd_lstm import convert_fastai_awd_lstm

    check_push_arguments(args)
    if args.max_len < args.bptt:
        raise ValueError(f"--max-len ({args.max_len}) must be at least --bptt ({args.bptt})")
    with console_logging():
        output = convert_fastai_awd_lstm(
            weights=args.weights,
            vocab=args.vocab,
            output_dir=args.output,
            bptt=args.bptt,
            max_len=args.max_len,
            push_to_hub=args.push_to_hub,
            private=args.private,
            revision=args.revision,
            model_name=args.model_name,
            base_model=args.base_model,
            license=args.license,
            language=args.language,
            labels=args.labels,
            backwards=args.backwards,
            spm_model=args.spm_model,
        )
    print(f"Wrote the converted AWD-LSTM to {output}")
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Standalone entry point (the conversion script): parses ``argv`` and converts; returns the exit status."""
    return standalone_main(add_arguments, run, HELP, argv, prog)
