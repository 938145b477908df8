"""``hf-elmo ulmfit``: ULMFiT's three stages (LM pretraining or a pretrained LM, LM fine-tuning, classifier
fine-tuning with gradual unfreezing) on a labelled CSV/JSONL file or a ``datasets`` name.

With ``--output DIR`` the fine-tuned language model and the classifier are saved as Hub-ready folders
(``DIR/language_model``, ``DIR/classifier``: safetensors weights, the model's code, the tokenizer and a model card
with the training's figures); ``--push-to-hub REPO_ID`` uploads the classifier folder in one commit (and
``--push-lm-to-hub REPO_ID`` the language model's), from a temporary folder when no ``--output`` is given.
``--bidirectional`` runs the whole recipe forwards and backwards and saves ``DIR/forward/...``, ``DIR/backward/...``
and ``DIR/ensemble`` (the two classifiers' averaged probabilities, which ``--push-to-hub`` then uploads).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

NAME = "ulmfit"
HELP = "train a ULMFiT text classifier (AWD-LSTM) on a labelled CSV/JSONL file or a datasets name"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from . import DefaultsHelpFormatter, add_threads_argument, description

    parser = subparsers.add_parser(NAME, help=HELP, description=description(HELP),
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
    parser.add_argument("--bidirectional", action="store_true",
                        help="train forward and backward models (the whole recipe in each direction) and their "
                             "ensemble, which averages the two classifiers' probabilities as the ULMFiT paper "
                             "reports; --output then holds forward/, backward/ and ensemble/")
    parser.add_argument("--pretrained-backward", default=None,
                        help="with --bidirectional --pretrained: the backward pretrained LM (e.g. converted "
                             "wt103 backward)")
    parser.add_argument("--output", type=Path, default=None,
                        help="save the LM and classifier folders (with model cards) and metrics.json here (default: "
                             "not saved, only the metrics are printed)")
    parser.add_argument("--push-to-hub", metavar="REPO_ID",
                        help="upload the classifier folder (with --bidirectional: the ensemble's) to this Hub "
                             "repository")
    parser.add_argument("--push-lm-to-hub", metavar="REPO_ID",
                        help="upload the fine-tuned language model's folder to this Hub repository (it then is the "
                             "classifier's base_model)")
    parser.add_argument("--private", action="store_true", help="create the Hub repositories as private")
    parser.add_argument("--revision", metavar="REV", help="Hub branch to push to (created when missing)")
    parser.add_argument("--language", default="en", help="language in the cards' metadata")
    parser.add_argument("--license", default="apache-2.0", help="license in the cards' metadata")
    add_recipe_arguments(parser)
    parser.add_argument("--emb-size", type=int, default=400, help="--scratch model size: embedding (ULMFiT's)")
    parser.add_argument("--hidden-size", type=int, default=1152,
                        help="--scratch model size: LSTM hidden size (ULMFiT's)")
    parser.add_argument("--num-layers", type=int, default=3, help="--scratch model size: LSTM layers (ULMFiT's)")
    parser.add_argument("--tokenizer", choices=("word", "sentencepiece"), default="word",
                        help="--scratch tokenizer: fastai's rules, then spaCy's English word splitting (word) or a "
                             "SentencePiece model trained on the texts as fastai's SentencePieceTokenizer trains one")
    parser.add_argument("--spm-vocab-size", type=int, default=None,
                        help="--tokenizer sentencepiece: the SentencePiece model's size (default: fastai's rule, a "
                             "quarter of the texts' distinct words, at most 30,000)")
    parser.add_argument("--bf16", action="store_true", help="train under bfloat16 autocast")
    add_threads_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed of every stage")
    parser.set_defaults(func=run)
    return parser


# the three stages, by their UlmfitSettings field, and the prefix of their options
STAGE_OPTIONS = {"pretraining": "pretrain", "lm_finetuning": "lm", "classifier": "classifier"}
STAGE_TITLES = {"pretraining": "stage 1 (LM pretraining, with --pretrain-data)",
                "lm_finetuning": "stage 2 (LM fine-tuning)", "classifier": "stage 3 (classifier)"}


def _factor(text: str) -> float | None:
    """``--*-lr-factor``: a number, or ``none`` for one rate for every layer group."""
    return None if text.lower() == "none" else float(text)


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The recipe's knobs (:class:`~hf_elmo.training.ulmfit_settings.UlmfitSettings`): what every stage shares,
    then each stage's own, which default to the shared ones."""
    from ..training.ulmfit_settings import SCHEDULES, StageSettings, UlmfitSettings

    base, run = StageSettings(), UlmfitSettings()
    shared = parser.add_argument_group("every stage (each stage's own option below overrides)")
    shared.add_argument("--batch-size", type=int, default=base.batch_size, help="rows per batch")
    shared.add_argument("--weight-decay", type=float, default=base.weight_decay,
                        help="AdamW's decoupled weight decay (fastai's wd; not on biases and normalisation weights)")
    shared.add_argument("--adam-betas", type=float, nargs=2, default=list(base.betas), metavar=("B1", "B2"),
                        help="AdamW's betas (the ULMFiT paper's; fastai's moms[0]/sqr_mom)")
    shared.add_argument("--adam-eps", type=float, default=base.eps, help="AdamW's eps (fastai's)")
    shared.add_argument("--max-grad-norm", type=float, default=base.max_grad_norm,
                        help="clip gradients to this global norm (0: no clipping)")
    shared.add_argument("--schedule", choices=SCHEDULES, default=base.schedule,
                        help="stlr: the paper's slanted triangular rates; one_cycle: fastai's fit_one_cycle, "
                             "restarted at each unfreezing")
    shared.add_argument("--cut-frac", type=float, default=base.cut_frac, help="STLR: fraction of steps warming up")
    shared.add_argument("--ratio", type=float, default=base.ratio, help="STLR: peak rate over the lowest")
    shared.add_argument("--pct-start", type=float, default=base.pct_start, help="one-cycle: fraction warming up")
    shared.add_argument("--div", type=float, default=base.div, help="one-cycle: peak rate over the starting rate")
    shared.add_argument("--div-final", type=float, default=base.div_final,
                        help="one-cycle: peak rate over the final rate")
    shared.add_argument("--moms", type=float, nargs=3, default=list(base.moms), metavar=("START", "MID", "END"),
                        help="one-cycle: Adam's beta1 cycled through these")
    shared.add_argument("--bptt", type=int, default=None,
                        help="LM window and classifier chunk length in tokens (default: the model's config, 72 for "
                             "a new model)")
    shared.add_argument("--bptt-jitter", action=argparse.BooleanOptionalAction, default=run.bptt_jitter,
                        help="fastai's jittered LM window lengths around bptt; --no-bptt-jitter: fixed windows")
    shared.add_argument("--backwards", action="store_true",
                        help="train backward models (fastai's backwards=True): every document read reversed; "
                             "--pretrained must be a backward LM")
    shared.add_argument("--drop-mult", type=float, default=run.drop_mult, help="multiplier of every AWD-LSTM dropout")
    shared.add_argument("--min-freq", type=int, default=run.min_freq,
                        help="tokens seen fewer times in the texts are left out of the vocabulary (xxunk)")
    shared.add_argument("--max-vocab", type=int, default=run.max_vocab, help="the vocabulary's largest size")
    shared.add_argument("--replace-space", action="store_true",
                        help="fastai's replace_space post-rule (spaces inside a token become ▁), as fastai's corpus "
                             "path applies it")
    shared.add_argument("--lm-valid", default=None,
                        help="held-out unlabelled texts (.txt/.csv/.jsonl or datasets name): the LM's validation "
                             "perplexity after every LM epoch (default: none)")
    for stage, prefix in STAGE_OPTIONS.items():
        defaults = UlmfitSettings().stage(stage)
        group = parser.add_argument_group(STAGE_TITLES[stage])
        epochs_help = ("epochs (default: one per layer group, unfreezing one more each, plus one)"
                       if stage == "classifier" else "epochs")
        group.add_argument(f"--{prefix}-epochs", type=int, default=defaults.epochs, help=epochs_help)
        group.add_argument(f"--{prefix}-lr", type=float, default=defaults.lr, help="peak lr of the top layer group")
        factor = "none" if defaults.lr_factor is None else f"{defaults.lr_factor:g}"
        group.add_argument(f"--{prefix}-lr-factor", type=_factor, default=factor,
                           help="discriminative rates: each layer group below gets lr / factor; none: one rate")
        for option in ("batch-size", "weight-decay", "schedule"):
            group.add_argument(f"--{prefix}-{option}", default=None,
                               type=str if option == "schedule" else float if option == "weight-decay" else int,
                               choices=SCHEDULES if option == "schedule" else None,
                               help=f"this stage's --{option} (default: --{option})")
        group.add_argument(f"--{prefix}-phase-lrs", type=float, nargs="+", default=None, metavar="LR",
                           help="peak lr of each phase (runs of epochs training the same layer groups), as one "
                                f"fit_one_cycle per phase (default: --{prefix}-lr for every phase)")
        if stage == "classifier":
            group.add_argument("--classifier-epochs-per-unfreeze", type=int, default=defaults.epochs_per_unfreeze,
                               help="epochs before the next layer group unfreezes")
            group.add_argument("--classifier-unfreeze-groups", type=int, nargs="+", default=None, metavar="K",
                               help="top layer groups each unfreezing phase trains, as freeze_to(-K) calls (-1: all; "
                                    "fastai's tutorial: 1 2 3 -1; default: one more per phase)")
        else:
            group.add_argument(f"--{prefix}-frozen-epochs", type=int, default=defaults.frozen_epochs,
                               help="first epochs training only the top layer group (embeddings and decoder), as "
                                    "fastai's fine_tune(freeze_epochs=...)")


def recipe_settings(args: argparse.Namespace) -> Any:
    """The :class:`~hf_elmo.training.ulmfit_settings.UlmfitSettings` that the options ask for."""
    from ..training.ulmfit_settings import StageSettings, UlmfitSettings

    stages = {}
    for stage, prefix in STAGE_OPTIONS.items():
        option = prefix.replace("-", "_")

        def own(name: str, shared: Any) -> Any:
            value = getattr(args, f"{option}_{name}")
            return shared if value is None else value

        stages[stage] = StageSettings(
            epochs=getattr(args, f"{option}_epochs"), lr=getattr(args, f"{option}_lr"),
            lr_factor=getattr(args, f"{option}_lr_factor"),  # argparse runs _factor on the string default too
            batch_size=own("batch_size", args.batch_size), weight_decay=own("weight_decay", args.weight_decay),
            betas=tuple(args.adam_betas), eps=args.adam_eps, schedule=own("schedule", args.schedule),
            cut_frac=args.cut_frac, ratio=args.ratio, pct_start=args.pct_start, div=args.div,
            div_final=args.div_final, moms=tuple(args.moms), max_grad_norm=args.max_grad_norm or None,
            frozen_epochs=getattr(args, f"{option}_frozen_epochs", 0),
            phase_lrs=getattr(args, f"{option}_phase_lrs"),
            epochs_per_unfreeze=args.classifier_epochs_per_unfreeze if stage == "classifier" else 1,
            unfreeze_groups=args.classifier_unfreeze_groups if stage == "classifier" else None,
        )
    return UlmfitSettings(**stages, bptt=args.bptt, bptt_jitter=args.bptt_jitter, min_freq=args.min_freq,
                          max_vocab=args.max_vocab, replace_space=args.replace_space, backwards=args.backwards,
                          drop_mult=args.drop_mult,
                          seed=args.seed, bf16=args.bf16)


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
    from ..conversion.common import check_output_dir, staged_output
    from ..data import tabular
    from ..model_folders import check_model_folder
    from ..training.ulmfit import run_ulmfit, save_ulmfit_folders
    from ..training.ulmfit_bidirectional import (check_direction_pair, run_bidirectional_ulmfit,
                                                 save_bidirectional_folders)
    from . import check_push_arguments, console_logging, torch_threads

    check_push_arguments(args, pushes=("push_to_hub", "push_lm_to_hub"))
    pushes = [repo for repo in (args.push_to_hub, args.push_lm_to_hub) if repo]
    if args.push_to_hub and args.push_to_hub == args.push_lm_to_hub:
        raise ValueError("--push-to-hub and --push-lm-to-hub name the same repository: give each model its own")
    if args.bidirectional:
        if args.backwards:
            raise ValueError("--bidirectional trains both directions: --backwards does not apply")
        if args.push_lm_to_hub:
            raise ValueError("--push-lm-to-hub names one language model, --bidirectional trains two: push their "
                             "folders from --output")
    elif args.pretrained_backward:
        raise ValueError("--pretrained-backward applies with --bidirectional")
    for option in ("pretrained", "pretrained_backward"):  # before the data is read: a folder of another type
        if getattr(args, option):                          # would train a random model
            check_model_folder(getattr(args, option), "awd_lstm", role="--" + option.replace("_", "-"))
    if args.bidirectional:
        check_direction_pair(args.pretrained, args.pretrained_backward)
    if args.output:  # before anything runs: a taken --output would otherwise fail only after the training
        check_output_dir(args.output, what="the ULMFiT models")
    if args.spm_vocab_size is not None and args.tokenizer != "sentencepiece":
        raise ValueError("--spm-vocab-size is the SentencePiece model's size: give --tokenizer sentencepiece too")
    if args.tokenizer == "sentencepiece" and args.pretrained:
        raise ValueError("--tokenizer builds the tokenizer of an LM trained with --scratch: a --pretrained LM brings "
                         "its own (a SentencePiece one when it was trained so)")
    tokenizer_options = ({"sentencepiece": True, "vocab_size": args.spm_vocab_size}
                         if args.tokenizer == "sentencepiece" else None)
    train_x, train_raw = tabular.read_labelled(args.train, args.text_column, args.label_column)
    train_y, classes = _label_ids(train_raw)
    valid_x = valid_y = None
    if args.valid:
        valid_x, valid_raw = tabular.read_labelled(args.valid, args.text_column, args.label_column,
                                                   split="validation" if not Path(args.valid).exists() else "train")
        valid_y, _ = _label_ids(valid_raw, classes)
    settings = recipe_settings(args)  # before the data is read: a setting that cannot be meant stops here
    pretraining = tabular.read_texts(args.pretrain_data, args.text_column) if args.pretrain_data else None
    lm_valid = tabular.read_texts(args.lm_valid, args.text_column) if args.lm_valid else None
    folders: dict[str, Path] = {}
    with contextlib.ExitStack() as stack:
        # everything is written into a hidden sibling of --output, renamed to it once complete: a failure or an
        # interruption leaves nothing at --output (without --output, into a temporary folder)
        if args.output:
            work = stack.enter_context(staged_output(args.output, what="the ULMFiT models"))
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        common = dict(pretraining_texts=pretraining, settings=settings, output_dir=work, lm_eval_texts=lm_valid,
                      tokenizer_options=tokenizer_options,
                      scratch_config=dict(emb_size=args.emb_size, hidden_size=args.hidden_size,
                                          num_layers=args.num_layers))
        with console_logging(logging.INFO), torch_threads(args.threads):
            if args.bidirectional:
                result = run_bidirectional_ulmfit(train_x, train_y, valid_x, valid_y, pretrained=args.pretrained,
                                                  pretrained_backward=args.pretrained_backward, **common)
            else:
                result = run_ulmfit(train_x, train_y, valid_x, valid_y, pretrained=args.pretrained, **common)
        if args.output or pushes:
            data, datasets = _describe(args.train, len(train_x))
            cards = dict(data=data, class_names=classes, revision=args.revision, datasets=datasets,
                         language=args.language, license=args.license, example_texts=(valid_x or train_x)[:2],
                         shown_as=args.output)
            if args.bidirectional:
                folders = save_bidirectional_folders(result, work, repo_id=args.push_to_hub, **cards)
            else:
                folders = save_ulmfit_folders(result, work, lm_repo_id=args.push_lm_to_hub,
                                              classifier_repo_id=args.push_to_hub, **cards)
            (work / "metrics.json").write_text(json.dumps(result.report(), indent=2) + "\n")
        if not args.output:  # pushed from the temporary folder, before it goes
            _push(args, folders)
    if args.output:
        print(f"saved the language model{'s' if args.bidirectional else ''} and the classifier"
              f"{'s (and their ensemble)' if args.bidirectional else ''} under {args.output}")
        _push(args, {name: args.output / folder.relative_to(work) for name, folder in folders.items()})
    print(result.summary())
    print("\n".join(f"{key}: {value:.4f}" for key, value in result.metrics.items()))
    return 0


def _push(args: argparse.Namespace, folders: dict[str, Path]) -> None:
    """Uploads the folders whose repository was given: ``--push-lm-to-hub`` the language model's and
    ``--push-to-hub`` the classifier's (with ``--bidirectional``, the ensemble's)."""
    from ..hub import push_folder
    from ..model_folders import ULMFIT_CLASSIFIER_FOLDER, ULMFIT_LM_FOLDER
    from ..training.ulmfit_bidirectional import ENSEMBLE_FOLDER

    if args.bidirectional:
        pushes = [(ENSEMBLE_FOLDER, args.push_to_hub, "forward + backward ensemble")]
    else:
        pushes = [(ULMFIT_LM_FOLDER, args.push_lm_to_hub, "fine-tuned language model"),
                  (ULMFIT_CLASSIFIER_FOLDER, args.push_to_hub, "classifier")]
    for name, repo_id, what in pushes:
        if repo_id:
            url = push_folder(folders[name], repo_id, private=args.private, revision=args.revision,
                              commit_message=f"Add the ULMFiT {what} trained with hf-elmo")
            print(f"Pushed the {what} to {url}")
