"""The optimum-onnx compatibility tests: run by the ``optimum_onnx`` nox session (noxfile.py) in an environment with
transformers 4.57 and optimum-onnx 0.1.0 and WITHOUT hf_elmo, on folders that the main environment exported
(tests/optimum_onnx_exports.py). Not part of the main suite (``pytest tests``), which runs this session through
tests/test_optimum_onnx.py.

``--exports DIR``: the folder holding manifest.json, the exported folders and their expected outputs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# Nothing here may reach the Hub: the folders are local, their code is loaded from them.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# task (config.json's "onnx" section) -> the optimum.onnxruntime classes that load such an export; a task that no
# ORTModelForXXX class stands for (ELMo's bidirectional LM, ...) is loaded with ORTModelForCustomTasks
ORT_CLASSES = {
    "feature-extraction": ("ORTModelForCustomTasks", "ORTModelForFeatureExtraction"),
    "text-classification": ("ORTModelForSequenceClassification",),
    "token-classification": ("ORTModelForTokenClassification",),
}
DEFAULT_ORT_CLASSES = ("ORTModelForCustomTasks",)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--exports", metavar="DIR", help="the exported folders and their expected outputs "
                     "(python tests/optimum_onnx_exports.py DIR in the main environment writes them)")


def exports_dir(config: pytest.Config) -> Path:
    value = config.getoption("--exports")
    if not value:
        raise pytest.UsageError("--exports DIR is required: run `nox -s optimum_onnx`, which writes the exports with "
                                "the main environment first (or `python tests/optimum_onnx_exports.py DIR` there)")
    path = Path(value)
    if not (path / "manifest.json").is_file():
        raise pytest.UsageError(f"{path / 'manifest.json'} not found: --exports must name a folder that "
                                "tests/optimum_onnx_exports.py wrote")
    return path


def load_manifest(config: pytest.Config) -> dict:
    return json.loads((exports_dir(config) / "manifest.json").read_text(encoding="utf-8"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``case``: every exported case; ``ort_class``: with it, every ORTModel class that fits the case's task."""
    if "case" not in metafunc.fixturenames:
        return
    root = exports_dir(metafunc.config)
    cases = load_manifest(metafunc.config)["cases"]
    tasks = getattr(metafunc.function, "tasks", None)  # @for_tasks(...): only the cases of these tasks
    with_class = "ort_class" in metafunc.fixturenames
    params = []
    for name, spec in cases.items():
        if tasks is not None and spec["task"] not in tasks:
            continue
        case = dict(spec, name=name, folder=root / spec["folder"], expected=root / f"{name}.expected")
        if with_class:
            params += [pytest.param(case, cls, id=f"{name}-{cls}")
                       for cls in ORT_CLASSES.get(spec["task"], DEFAULT_ORT_CLASSES)]
        else:
            params.append(pytest.param(case, id=name))
    names = ("case", "ort_class") if with_class else ("case",)
    if not params:  # e.g. no text-classification export in the manifest: say so rather than run nothing silently
        params = [pytest.param(*[None] * len(names), id="none",
                               marks=pytest.mark.skip(reason=f"no exported case of the tasks {tasks}"))]
    metafunc.parametrize(",".join(names), params)


def for_tasks(*tasks: str):
    """Decorator: the test runs on the cases exported for one of ``tasks`` only."""

    def decorator(func):
        func.tasks = tasks
        return func

    return decorator
