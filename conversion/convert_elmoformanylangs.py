#!/usr/bin/env python3
"""Converts an ELMoForManyLangs model folder (the ``elmoformanylangs`` package's format) into a transformers folder.

    python conversion/convert_elmoformanylangs.py --model-dir DIR --output OUT [--language zh] \\
        [--push-to-hub REPO_ID] [--private] [--revision REV] [--model-name NAME]

A thin wrapper: the work is ``hf_elmo.conversion.elmoformanylangs.convert_elmoformanylangs``, and the arguments are
those of ``hf-elmo convert-elmoformanylangs`` (see conversion/README.md).
"""

import sys

from hf_elmo.commands.convert_elmoformanylangs import main

if __name__ == "__main__":
    sys.exit(main(prog="convert_elmoformanylangs.py"))
