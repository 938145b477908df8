#!/usr/bin/env python3
"""Converts a fastai AWD-LSTM (ULMFiT language model or text classifier, fastai v1 or v2) into a transformers folder.

    python conversion/convert_fastai_awd_lstm.py --weights FILE.pth --vocab itos.pkl --output DIR \\
        [--spm-model spm.model] [--bptt N] [--max-len N] [--labels NAME,NAME,...] [--base-model REPO_ID] [--push-to-hub REPO_ID] [--private] [--revision REV] \\
        [--model-name NAME] [--license ID] [--language CODE]

A thin wrapper: the work is ``hf_elmo.conversion.fastai_awd_lstm.convert_fastai_awd_lstm``, and the arguments are
those of ``hf-elmo convert-awd-lstm`` (see conversion/README.md).
"""

import sys

from hf_elmo.commands.convert_awd_lstm import main

if __name__ == "__main__":
    sys.exit(main(prog="convert_fastai_awd_lstm.py"))
