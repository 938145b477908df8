"""nox sessions (``pip install -e ".[dev]"`` installs nox; ``nox -l`` lists them).

``optimum_onnx``: the folders that ``hf_elmo.onnx.export_onnx`` writes load with optimum-onnx's ORTModel classes
(``ORTModelForCustomTasks``, ``ORTModelForFeatureExtraction``, ``ORTModelForSequenceClassification``,
``ORTModelForTokenClassification``) and reproduce the PyTorch outputs. optimum-onnx 0.1.0 requires transformers
< 4.58, so this runs in a virtualenv of its own (``.nox/optimum_onnx``: transformers 4.57, optimum-onnx 0.1.0, ONNX
Runtime, torch) WITHOUT hf_elmo: the exported folders' own code (remote code) is all that it has, as for a user who
only downloads them. The folders are exported by the main environment (hf_elmo, transformers 5)::

    nox -s optimum_onnx                         # exports with .venv/bin/python ($HF_ELMO_PYTHON) first, then loads
    nox -s optimum_onnx -- --exports DIR        # loads the folders in DIR (tests/optimum_onnx_exports.py wrote it)
    nox -s optimum_onnx --install-only          # only builds/updates the virtualenv (.ci/setup-tests does this)

Other arguments after ``--`` go to pytest. The main suite runs this session (tests/test_optimum_onnx.py), so CI does.
The virtualenv is kept between runs (``reuse_venv``); pip then finds everything installed and only checks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import nox

nox.needs_version = ">=2024.4.15"

REPO = Path(__file__).resolve().parent
# torch (CPU build, from the local wheel), transformers 4.57.x and optimum-onnx 0.1.0 are pinned there: anything that
# let pip choose torch would pull a CUDA build (several GB)
CONSTRAINTS = REPO / "constraints-tf457.txt"
PACKAGES = ("torch", "transformers", "optimum-onnx[onnxruntime]", "pytest")
TESTS = REPO / "tests_optimum_onnx"
EXPORTER = REPO / "tests" / "optimum_onnx_exports.py"


@nox.session(reuse_venv=True)
def optimum_onnx(session: nox.Session) -> None:
    """Loads hf_elmo's ONNX exports with optimum-onnx 0.1.0's ORTModel classes (transformers 4.57, no hf_elmo)."""
    session.install("-c", str(CONSTRAINTS), *PACKAGES)
    # one folder per run (runs may overlap in one checkout): the exports when this run writes them, a fresh copy of
    # the folders' code (HF_MODULES_CACHE), an empty Hub cache; removed afterwards
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=session.create_tmp()))
    try:
        args = list(session.posargs)
        if not any(arg == "--exports" or arg.startswith("--exports=") for arg in args):
            # the main environment (bash .ci/setup builds it) writes them
            python = os.environ.get("HF_ELMO_PYTHON", str(REPO / ".venv" / "bin" / "python"))
            session.run(python, str(EXPORTER), str(run_dir / "exports"), external=True)
            args = ["--exports", str(run_dir / "exports"), *args]
        # nothing from the Hub; PYTHONSAFEPATH: the working directory (the repository, which holds hf_elmo/) is not
        # importable
        env = {"HF_HOME": str(run_dir / "hf_home"), "HF_MODULES_CACHE": str(run_dir / "hf_modules"),
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "2",
               "TOKENIZERS_PARALLELISM": "false", "PYTHONSAFEPATH": "1", "PYTHONPATH": None}
        session.run("pytest", "-p", "no:cacheprovider", str(TESTS), *args, env=env)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
