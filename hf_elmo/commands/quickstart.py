"""``hf-elmo quickstart``: the main job, end to end, on text that ships with every Python (or on ``--data``)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "quickstart"
HELP = "pretrain a small ELMo on the standard library's docstrings (or --data) and report perplexity and speed"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(NAME, help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    parser.add_argument("--data", type=Path, default=None,
                        help="a .txt (one text per line), .csv/.tsv or .jsonl file instead of the standard library's "
                             "docstrings")
    parser.add_argument("--text-column", default="text", help="column/field holding the text (default: text)")
    parser.add_argument("--output", type=Path, default=None,
                        help="keep the Hub-ready folders here (default: a temporary folder, removed at the end)")
    parser.add_argument("--elmo-steps", type=int, default=300, help="ELMo pretraining steps (default: 300)")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many texts")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)
    return parser


def _print_figures(title: str, figures: dict[str, Any]) -> None:
    print(f"\n== {title}")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"  {key:<{width}}  {value}")


def run(args: argparse.Namespace) -> int:
    from ..quickstart import corpus, elmo_stage

    start = time.perf_counter()
    texts = corpus.read_texts(args.data, args.text_column, args.limit)
    train, valid = corpus.split(texts, seed=args.seed)
    print(f"{len(texts)} texts ({'standard library docstrings' if args.data is None else args.data}): "
          f"{len(train)} to train on, {len(valid)} to validate")
    with tempfile.TemporaryDirectory() as tmp:
        output = args.output or Path(tmp)
        figures = elmo_stage.run(train, valid, output, steps=args.elmo_steps, seed=args.seed)
        if args.output is None:
            figures["folder"] += " (temporary; pass --output to keep it)"
        _print_figures("ELMo bidirectional LM", figures)
    print(f"\nquickstart finished in {time.perf_counter() - start:.0f} s")
    return 0
