"""``hf-elmo quickstart``: the main job, end to end, on text that ships with every Python (or on ``--data``).

Its stages, in order (``--stages`` picks some): ``elmo`` pretrains a small ELMo (``hf_elmo.quickstart.elmo_stage``);
``ulmfit`` pretrains a small AWD-LSTM language model and runs ULMFiT's three stages on a classification task made
from the same text (``hf_elmo.quickstart.ulmfit_stage``); ``onnx`` exports that classifier to ONNX (float32 and
int8), checks ONNX Runtime against PyTorch on the validation texts and times both (``hf_elmo.quickstart.onnx_stage``;
it needs the ``ulmfit`` stage). Each stage saves Hub-ready folders (with model cards) under ``--output`` and returns
its figures, which are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from . import add_threads_argument, console_logging, description, torch_threads

NAME = "quickstart"
HELP = ("pretrain a small ELMo and a ULMFiT classifier on the standard library's docstrings (or --data) and report "
        "perplexity, accuracy and speed")
STAGES = ("elmo", "ulmfit", "onnx")
# Each stage's heading, printed before it runs (with what it does) and over its figures once it has run.
TITLES = {
    "elmo": "ELMo bidirectional LM",
    "ulmfit": "ULMFiT: AWD-LSTM language model and text classifier",
    "onnx": "ONNX Runtime: the ULMFiT classifier exported, checked against PyTorch and timed",
}


def _stages(text: str) -> list[str]:
    stages = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise argparse.ArgumentTypeError(f"stages are a comma-separated list of {', '.join(STAGES)}; got {text!r}")
    if "onnx" in stages and "ulmfit" not in stages:
        raise argparse.ArgumentTypeError("the onnx stage exports the ulmfit stage's classifier: give both")
    return stages


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(NAME, help=HELP, description=description(HELP))
    parser.add_argument("--data", type=Path, default=None,
                        help="a .txt (one text per line), .csv/.tsv or .jsonl file instead of the standard library's "
                             "docstrings")
    parser.add_argument("--text-column", default="text", help="column/field holding the text (default: text)")
    parser.add_argument("--label-column", default=None,
                        help="with --data: column/field of labels for the ULMFiT classifier (default: none, the "
                             "classifier tells original from shuffled word order)")
    parser.add_argument("--stages", type=_stages, default=list(STAGES),
                        help="comma-separated stages to run, of " + ", ".join(STAGES) + " (default: all)")
    parser.add_argument("--output", type=Path, default=None,
                        help="keep the Hub-ready folders here (default: a temporary folder, removed at the end)")
    parser.add_argument("--elmo-steps", type=int, default=300, help="ELMo pretraining steps (default: 300)")
    parser.add_argument("--ulmfit-lm-epochs", type=int, default=1,
                        help="epochs of each ULMFiT language-model stage (pretraining, fine-tuning; default: 1)")
    parser.add_argument("--ulmfit-classifier-epochs", type=int, default=10,
                        help="ULMFiT classifier epochs, gradual unfreezing included (default: 10)")
    parser.add_argument("--ulmfit-emb-size", type=int, default=128, help="AWD-LSTM embedding size (default: 128)")
    parser.add_argument("--ulmfit-hidden-size", type=int, default=384, help="AWD-LSTM hidden size (default: 384)")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many texts")
    add_threads_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed of every stage (default: 0)")
    parser.set_defaults(func=run)
    return parser


def _announce(stages: list[str], stage: str, doing: str) -> None:
    """``-> stage 2/3, <title>: <what it does>``, before the stage runs (flushed: a bar may follow for minutes)."""
    print(f"\n-> stage {stages.index(stage) + 1}/{len(stages)}, {TITLES[stage]}: {doing}", flush=True)


def _print_figures(title: str, figures: dict[str, Any]) -> None:
    print(f"\n== {title}")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"  {key:<{width}}  {value}")


def _ulmfit_task(args: argparse.Namespace, texts: list[str], labels: list[str] | None):
    from ..quickstart import ulmfit_stage

    if args.data is None:
        return ulmfit_stage.stdlib_task(texts, labels, seed=args.seed)
    if labels is not None:
        return ulmfit_stage.labelled_task(f"the {args.label_column!r} label of a text", texts, labels, args.seed)
    return ulmfit_stage.shuffle_task(texts, seed=args.seed)


def run(args: argparse.Namespace) -> int:
    from ..conversion.common import check_output_dir, staged_output
    from ..quickstart import corpus, elmo_stage, ulmfit_stage

    if args.label_column and args.data is None:
        raise ValueError("--label-column applies with --data (the standard library's task is the module)")
    if args.output:  # before anything runs: a taken --output would otherwise fail only after the training
        check_output_dir(args.output, what="the quickstart's folders")
    start = time.perf_counter()
    texts, labels = corpus.read_labelled_texts(args.data, args.text_column, args.label_column, args.limit)
    train, valid = corpus.split(texts, seed=args.seed)
    data = corpus.describe(args.data, len(texts))
    print(f"{data}: {len(train)} to train on, {len(valid)} to validate")
    kept = "" if args.output else " (temporary; pass --output to keep them)"
    stages = [stage for stage in STAGES if stage in args.stages]
    with contextlib.ExitStack() as stack:
        # with --output, every folder is written into a hidden sibling of it, renamed to it once all stages are
        # done: a failure or an interruption leaves nothing at --output (without it, into a temporary folder)
        if args.output:
            output = stack.enter_context(staged_output(args.output, what="the quickstart's folders"))
        else:
            output = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        shown = args.output or output
        stack.enter_context(torch_threads(args.threads))
        stack.enter_context(console_logging())
        if "elmo" in stages:
            _announce(stages, "elmo", f"pretraining a small ELMo for {args.elmo_steps} steps on {len(train)} texts")
            figures = elmo_stage.run(train, valid, output, steps=args.elmo_steps, seed=args.seed, data=data,
                                     shown_as=shown)
            figures["folder"] += kept
            _print_figures(TITLES["elmo"], figures)
        if "ulmfit" in stages:
            _announce(stages, "ulmfit", "a small AWD-LSTM: LM pretraining, LM fine-tuning on the task's texts, then "
                                        f"the classifier ({args.ulmfit_classifier_epochs} epochs, gradual unfreezing)")
            task = _ulmfit_task(args, texts, labels)
            ulmfit = ulmfit_stage.run(
                task, train, valid, output, data=data, lm_epochs=args.ulmfit_lm_epochs,
                classifier_epochs=args.ulmfit_classifier_epochs, emb_size=args.ulmfit_emb_size,
                hidden_size=args.ulmfit_hidden_size, seed=args.seed, shown_as=shown,
            )
            ulmfit.figures["folders"] += kept
            _print_figures(TITLES["ulmfit"], ulmfit.figures)
        if "onnx" in stages:
            from ..quickstart import onnx_stage

            _announce(stages, "onnx", "exporting the classifier (float32 and int8), checking ONNX Runtime against "
                                      "PyTorch on the validation texts and timing both")
            figures = onnx_stage.run(ulmfit.classifier_folder, ulmfit.valid_texts, output / "ulmfit",
                                     shown_as=shown / "ulmfit")
            figures["folders"] += kept
            _print_figures(TITLES["onnx"], figures)
    print(f"\nquickstart finished in {time.perf_counter() - start:.0f} s")
    return 0
