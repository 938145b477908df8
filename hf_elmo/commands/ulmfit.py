"""``hf-elmo ulmfit``: ULMFiT's three stages (LM pretraining or a pretrained LM, LM fine-tuning, classifier
fine-tuning with gradual unfreezing) on a labelled CSV/JSONL file or a ``datasets`` name."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

NAME = "ulmfit"
HELP = "train a ULMFiT text classifier (AWD-LSTM) on a labelled CSV/JSONL file or a datasets name"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(NAME, help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    parser.add_argument("--train", required=True, help="labelled training data: .csv/.tsv/.jsonl file or datasets name")
    parser.add_argument("--valid", default=None, help="labelled validation data (same forms); reports accuracy")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument("--pretrained", help="a pretrained AWD-LSTM LM folder or Hub id (e.g. converted wt103)")
    start.add_argument("--scratch", action="store_true",
                       help="no pretrained LM: build the vocabulary and train the LM on --pretrain-data and the task")
    parser.add_argument("--pretrain-data", default=None, help="unlabelled text for stage 1 with --scratch")
    parser.add_argument("--output", type=Path, default=None, help="save the LM and classifier folders here")
    parser.add_argument("--lm-epochs", type=int, default=1)
    parser.add_argument("--lm-lr", type=float, default=1e-2)
    parser.add_argument("--classifier-epochs", type=int, default=None,
                        help="default: one per layer group (gradual unfreezing) plus one")
    parser.add_argument("--classifier-lr", type=float, default=1e-2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=70)
    parser.add_argument("--drop-mult", type=float, default=1.0)
    parser.add_argument("--emb-size", type=int, default=400, help="--scratch model size (ULMFiT: 400)")
    parser.add_argument("--hidden-size", type=int, default=1152, help="--scratch model size (ULMFiT: 1152)")
    parser.add_argument("--num-layers", type=int, default=3, help="--scratch model size (ULMFiT: 3)")
    parser.add_argument("--min-freq", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="train under bfloat16 autocast")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)
    return parser


def _label_ids(labels: list[Any], classes: list[str] | None = None) -> tuple[list[int], list[str]]:
    classes = classes or sorted({str(y) for y in labels})
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(y) for y in labels} - set(index))
    if unknown:
        raise ValueError(f"validation labels not seen in training: {unknown[:5]}")
    return [index[str(y)] for y in labels], classes


def run(args: argparse.Namespace) -> int:
    from ..data import tabular
    from ..training.ulmfit import UlmfitSettings, run_ulmfit
    from . import console_logging

    train_x, train_raw = tabular.read_labelled(args.train, args.text_column, args.label_column)
    train_y, classes = _label_ids(train_raw)
    valid_x = valid_y = None
    if args.valid:
        valid_x, valid_raw = tabular.read_labelled(args.valid, args.text_column, args.label_column,
                                                   split="validation" if not Path(args.valid).exists() else "train")
        valid_y, _ = _label_ids(valid_raw, classes)
    pretraining = tabular.read_texts(args.pretrain_data, args.text_column) if args.pretrain_data else None
    settings = UlmfitSettings(
        lm_epochs=args.lm_epochs, lm_lr=args.lm_lr, lm_batch_size=args.batch_size, bptt=args.bptt,
        classifier_epochs=args.classifier_epochs, classifier_lr=args.classifier_lr,
        classifier_batch_size=args.batch_size, drop_mult=args.drop_mult, seed=args.seed, bf16=args.bf16,
    )
    with console_logging(logging.INFO):
        result = run_ulmfit(
            train_x, train_y, valid_x, valid_y, pretrained=args.pretrained, pretraining_texts=pretraining,
            scratch_config=dict(emb_size=args.emb_size, hidden_size=args.hidden_size, num_layers=args.num_layers),
            settings=settings, output_dir=args.output, min_freq=args.min_freq,
        )
    result.classifier.config.id2label = dict(enumerate(classes))
    result.classifier.config.label2id = {c: i for i, c in enumerate(classes)}
    if args.output:
        for name, model in (("language_model", result.language_model), ("classifier", result.classifier)):
            folder = args.output / name
            model.save_pretrained(folder)
            result.tokenizer.save_pretrained(folder)
        (args.output / "metrics.json").write_text(json.dumps(result.metrics, indent=2) + "\n")
        print(f"saved the language model and the classifier under {args.output}")
    print("\n".join(f"{key}: {value:.4f}" for key, value in result.metrics.items()))
    return 0
