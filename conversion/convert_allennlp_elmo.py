#!/usr/bin/env python3
"""Converts an original ELMo (bilm-tf / AllenNLP ``options.json`` + ``weights.hdf5``) into a transformers folder.

    python conversion/convert_allennlp_elmo.py --options options.json --weights weights.hdf5 --output DIR \\
        [--vocab vocab.txt] [--push-to-hub REPO_ID] [--private] [--revision REV] [--model-name NAME]

A thin wrapper: the work is ``hf_elmo.conversion.allennlp_elmo.convert_allennlp_elmo``, and the arguments are those
of ``hf-elmo convert-elmo`` (see conversion/README.md).
"""

import sys

from hf_elmo.commands.convert import main

if __name__ == "__main__":
    sys.exit(main(prog="convert_allennlp_elmo.py"))
