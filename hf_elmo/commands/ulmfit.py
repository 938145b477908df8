"""``hf-elmo ulmfit``: ULMFiT's three stages (LM pretraining or a pretrained LM, LM fine-tuning, classifier
fine-tuning with gradual unfreezing) on a labelled CSV/JSONL file or a ``datasets`` name.

With ``--output DIR`` the fine-tuned language model and the classifier are saved as Hub-ready folders
(``DIR/language_model``, ``DIR/classifier``: safetensors weights, the model's code, the tokenizer and a model card
with the training's figures); ``--push-to-hub REPO_ID`` uploads the classifier folder in one commit (and
``--push-lm-to-hub REPO_ID`` the language model's), from a temporary folder when no ``--output`` is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

NAME = "ulmfit"
HELP = "train a ULMFiT text classifier (AWD-LSTM) on a labelled CSV/JSONL file or a datasets name"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from . import DefaultsHelpFormatter, add_threads_argument

    parser = subparsers.add_parser(NAME, help=HELP, description=HELP[0].upper() + HELP[1:] + ".",
                                   formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--train", required=True, help="labelled training data: .csv/.tsv/.jsonl file or datasets name")
    parser.add_argument("--valid", default=None,
                        help="labelled validation data (same forms); reports accuracy (default: none)")
    parser.add_argument("--text-column", default="text", help="column/field holding the text")
    parser.add_argument("--label-column", default="label", help="column/field holding the label")
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument("--pretrained", help="a pretrained AWD-LSTM LM folder or Hub id (e.g. converted wt103)")
    start.add_argument("--scratch", action="store_true",
                       help="no pretrained LM: build the vocabulary and train the LM on --pretrain-data and the task")
    parser.add_argument("--pretrain-data", default=None,
                        help="unlabelled text for stage 1 with --scratch (default: none, stage 1 is skipped)")
    parser.add_argument("--output", type=Path, default=None,
                        help="save the LM and classifier folders (with model cards) and metrics.json here (default: "
                             "not saved, only the metrics are printed)")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="upload the classifier folder to this Hub repository")
    parser.add_argument("--push-lm-to-hub", metavar="REPO_ID",
                        help="upload the fine-tuned language model's folder to this Hub repository (it then is the "
                             "classifier's base_model)")
    parser.add_argument("--private", action="store_true", help="create the Hub repositories as private")
    parser.add_argument("--revision", metavar="REV", help="Hub branch to push to (created when missing)")
    parser.add_argument("--language", default="en", help="language in the cards' metadata")
    parser.add_argument("--license", default="apache-2.0", help="license in the cards' metadata")
    parser.add_argument("--lm-epochs", type=int, default=1, help="epochs of each LM stage (pretraining, fine-tuning)")
    parser.add_argument("--lm-lr", type=float, default=1e-2,
                        help="peak learning rate of the LM stages (top layer group; lower groups get lr / 2.6^depth)")
    parser.add_argument("--classifier-epochs", type=int, default=None,
                        help="classifier epochs (default: one per layer group, gradual unfreezing, plus one)")
    parser.add_argument("--classifier-lr", type=float, default=1e-2,
                        help="peak learning rate of the classifier stage (top layer group)")
    parser.add_argument("--batch-size", type=int, default=32, help="rows per batch, LM streams and classifier")
    parser.add_argument("--bptt", type=int, default=70, help="LM window length in tokens (backprop through time)")
    parser.add_argument("--drop-mult", type=float, default=1.0, help="multiplier of every AWD-LSTM dropout")
    parser.add_argument("--emb-size", type=int, default=400, help="--scratch model size: embedding (ULMFiT's)")
    parser.add_argument("--hidden-size", type=int, default=1152,
                        help="--scratch model size: LSTM hidden size (ULMFiT's)")
    parser.add_argument("--num-layers", type=int, default=3, help="--scratch model size: LSTM layers (ULMFiT's)")
    parser.add_argument("--min-freq", type=int, default=3,
                        help="tokens seen fewer times in the texts are left out of the vocabulary (xxunk)")
    parser.add_argument("--bf16", action="store_true", help="train under bfloat16 autocast")
    add_threads_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed of every stage")
    parser.set_defaults(func=run)
    return parser


def _label_ids(labels: list[Any], classes: list[str] | None = None) -> tuple[list[int], list[str]]:
    classes = classes or sorted({str(y) for y in labels})
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(y) for y in labels} - set(index))
    if unknown:
        raise ValueError(f"validation labels not seen in training: {unknown[:5]}")
    return [index[str(y)] for y in labels], classes


def _describe(source: str, texts: int) -> tuple[str, list[str] | None]:
    """The cards' phrase for the training data, and its Hub dataset id when it was one (not a local file)."""
    if Path(source).exists():
        return f"{texts:,} labelled texts of `{Path(source).name}`", None
    return f"{texts:,} labelled texts of the [{source}](https://huggingface.co/datasets/{source}) dataset", [source]


def run(args: argparse.Namespace) -> int:
    from ..data import tabular
    from ..hub import push_folder
    from ..model_folders import check_model_folder
    from ..training.ulmfit import UlmfitSettings, run_ulmfit, save_ulmfit_folders
    from . import check_push_arguments, console_logging, torch_threads

    check_push_arguments(args, pushes=("push_to_hub", "push_lm_to_hub"))
    pushes = [repo for repo in (args.push_to_hub, args.push_lm_to_hub) if repo]
    if args.push_to_hub and args.push_to_hub == args.push_lm_to_hub:
        raise ValueError("--push-to-hub and --push-lm-to-hub name the same repository: give each model its own")
    if args.pretrained:  # before the data is read: a folder of another type would train a random model
        check_model_folder(args.pretrained, "awd_lstm", role="--pretrained")
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
    with console_logging(logging.INFO), torch_threads(args.threads):
        result = run_ulmfit(
            train_x, train_y, valid_x, valid_y, pretrained=args.pretrained, pretraining_texts=pretraining,
            scratch_config=dict(emb_size=args.emb_size, hidden_size=args.hidden_size, num_layers=args.num_layers),
            settings=settings, output_dir=args.output, min_freq=args.min_freq,
        )
    if args.output or pushes:
        data, datasets = _describe(args.train, len(train_x))
        with tempfile.TemporaryDirectory() as tmp:
            output = args.output or Path(tmp)
            folders = save_ulmfit_folders(
                result, output, data=data, class_names=classes, lm_repo_id=args.push_lm_to_hub,
                classifier_repo_id=args.push_to_hub, revision=args.revision, datasets=datasets,
                language=args.language, license=args.license, example_texts=(valid_x or train_x)[:2],
            )
            (output / "metrics.json").write_text(json.dumps(result.metrics, indent=2) + "\n")
            if args.output:
                print(f"saved the language model and the classifier under {args.output}")
            for folder, repo_id in ((folders["language_model"], args.push_lm_to_hub),
                                    (folders["classifier"], args.push_to_hub)):
                if repo_id:
                    what = "classifier" if folder.name == "classifier" else "fine-tuned language model"
                    url = push_folder(folder, repo_id, private=args.private, revision=args.revision,
                                      commit_message=f"Add the ULMFiT {what} trained with hf-elmo")
                    print(f"Pushed the {what} to {url}")
    print("\n".join(f"{key}: {value:.4f}" for key, value in result.metrics.items()))
    return 0
