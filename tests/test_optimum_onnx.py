"""The ONNX exports load with optimum-onnx 0.1.0's ORTModel classes (ORTModelForCustomTasks,
ORTModelForSequenceClassification, ...) in an environment with transformers 4.57 and without hf_elmo: this test
exports small models here (the main environment) with their PyTorch outputs, then runs the ``optimum_onnx`` nox
session (noxfile.py: its own virtualenv, tests_optimum_onnx/) on them and checks its report."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from conftest import REPO

pytest.importorskip("onnxruntime")
pytest.importorskip("optimum.exporters.tasks")

from optimum_onnx_exports import write_exports  # noqa: E402

SESSION = "optimum_onnx"


def test_exports_load_with_optimum_onnx_ort_models(tmp_path):
    if importlib.util.find_spec("nox") is None:
        pytest.skip('nox is not installed (pip install -e ".[dev]"): it builds the optimum-onnx environment '
                    "(transformers 4.57) that this test loads the exports in")
    exports = tmp_path / "exports"
    manifest = write_exports(exports)
    assert manifest["cases"], "no exported case"
    junit = tmp_path / "junit.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    # the virtualenv is reused (reuse_venv): .ci/setup-tests builds it (`nox -s optimum_onnx --install-only`), or this
    # run does (about a minute)
    proc = subprocess.run(
        [sys.executable, "-m", "nox", "--noxfile", str(REPO / "noxfile.py"), "-s", SESSION, "--",
         "--exports", str(exports), f"--junitxml={junit}", "-q"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, f"nox -s {SESSION} failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-8000:]}"

    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {key: int(suite.get(key)) for key in ("tests", "failures", "errors", "skipped")}
    assert counts["failures"] == counts["errors"] == counts["skipped"] == 0, counts
    names = [case.get("name") for case in suite.iter("testcase")]
    for case in manifest["cases"]:  # every exported folder was loaded with an ORTModel class and compared
        assert any(n.startswith("test_ort_model_reproduces_pytorch[") and f"[{case}-ORTModelFor" in n
                   for n in names), (case, names)
    assert "test_environment" in names and "test_hf_elmo_was_never_imported" in names
