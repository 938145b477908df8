"""``hf-elmo export``: a saved model folder or Hub repository → a folder holding its ONNX export.

    hf-elmo export MODEL OUTPUT_DIR [--task TASK] [--fp16] [--optimize] [--quantize int8] [--opset N]
                   [--external-data] [--push-to-hub REPO_ID [--private] [--revision REV]]

MODEL may also be the ``--output`` folder of ``hf-elmo ulmfit``, whose ``classifier`` folder is then exported (said
on the console). The folder (``model.onnx``, ``config.json`` with an ``onnx`` section, the tokenizer, a model card) loads with
``hf_elmo.onnx.OnnxModel.from_pretrained`` and can be pushed to the Hub as it is. Needs ``pip install "hf-elmo[onnx]"``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import add_push_arguments, check_push_arguments, console_logging, description

NAME = "export"
HELP = "export a model (saved folder or Hub repository) to ONNX, for ONNX Runtime"
# The tasks, for --help (which works without the onnx extras installed); export_onnx checks the task.
TASKS = {"ELMo": ("feature-extraction", "text-classification", "token-classification", "bidirectional-lm"),
         "AWD-LSTM": ("feature-extraction", "text-generation", "text-classification")}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(NAME, help=HELP, description=description(HELP))
    parser.add_argument("model", metavar="MODEL", help="a saved model folder, a Hub repository id, or the --output "
                        "folder of `hf-elmo ulmfit` (its classifier is exported)")
    parser.add_argument("output", metavar="OUTPUT_DIR", type=Path, help="folder to write (new or empty)")
    parser.add_argument("--task", help="what to export: " + "; ".join(f"{', '.join(t)} for {family}"
                                                               for family, t in TASKS.items())
                        + " (default: the task of the model's class, from config.json; the embeddings, "
                          "feature-extraction, for an ELMo converted with a vocabulary, whose softmax was never "
                          "trained)")
    parser.add_argument("--fp16", action="store_true", help="float16 weights and activations (for GPUs)")
    parser.add_argument("--optimize", action="store_true",
                        help="save the model with ONNX Runtime's graph optimisations applied (CPU provider)")
    parser.add_argument("--quantize", choices=("int8",), help="dynamic int8 quantisation of the weights")
    parser.add_argument("--opset", type=int, help="ONNX opset (default: 20; 18 to 23)")
    parser.add_argument("--external-data", action="store_true",
                        help="weights in a separate file beside the graph (default: only above ~2 GB)")
    add_push_arguments(parser)
    parser.add_argument("--model-name", help="title of the model card")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        from ..onnx import export_onnx
    except ImportError as e:
        raise ValueError(str(e)) from e  # reported as one line: the extras to install
    from ..model_folders import ULMFIT_LM_FOLDER, ulmfit_output_classifier

    check_push_arguments(args)
    model = args.model
    classifier = ulmfit_output_classifier(model)
    if classifier is not None:
        print(f"{model} is an `hf-elmo ulmfit --output` folder: exporting its classifier, {classifier} (give "
              f"{Path(model) / ULMFIT_LM_FOLDER} to export the language model)")
        model = str(classifier)
    with console_logging():
        path = export_onnx(
            model,
            args.output,
            task=args.task,
            fp16=args.fp16,
            optimize=args.optimize,
            quantize=args.quantize,
            opset=args.opset,
            external_data=True if args.external_data else None,
            push_to_hub=args.push_to_hub,
            private=args.private,
            revision=args.revision,
            model_name=args.model_name,
        )
    print(f"Wrote the ONNX export to {path}")
    return 0
