"""The ``# Copied from`` copies between the two self-contained model folders equal their originals
(tests/check_copies.py), and the check catches a copy that drifted."""

from __future__ import annotations

from pathlib import Path

import pytest
from check_copies import PACKAGE, check_copies, find_copies


def test_every_copy_equals_its_original() -> None:
    copies = find_copies()
    targets = {copy.target for copy in copies}
    assert "hf_elmo.models.awd_lstm.modeling_awd_lstm.sequence_classification_loss" in targets
    assert check_copies() == []


def _package(tmp_path: Path, original: str, copy: str) -> Path:
    root = tmp_path / "hf_elmo"
    (root / "a").mkdir(parents=True)
    (root / "a" / "orig.py").write_text(original)
    (root / "b.py").write_text(copy)
    return root


ORIGINAL = "class Config:\n    pass\n\n\ndef loss(config: Config, x: int) -> int:\n    \"\"\"Why.\"\"\"\n    return x + 1\n"


def test_identical_copy_with_replacements_passes(tmp_path: Path) -> None:
    copy = ("# Copied from hf_elmo.a.orig.loss with Config->Other\n"
            "def loss(config: Other, x: int) -> int:\n    \"\"\"Why.\"\"\"\n    return x + 1\n")
    assert check_copies(_package(tmp_path, ORIGINAL, copy)) == []


@pytest.mark.parametrize("copy, expected", [
    ("# Copied from hf_elmo.a.orig.loss\ndef loss(config: Config, x: int) -> int:\n    \"\"\"Why.\"\"\"\n"
     "    return x + 2\n", "differs from hf_elmo.a.orig.loss at line 4"),
    ("# Copied from hf_elmo.a.orig.loss\ndef loss(config: Config, x: int) -> int:\n    \"\"\"Why.\"\"\"\n"
     "    return x + 1\n    return x\n", "differ in length"),
    ("# Copied from hf_elmo.a.orig.loss\n\nx = 1\n", "is not directly above a def or class"),
])
def test_drifted_copy_is_reported(tmp_path: Path, copy: str, expected: str) -> None:
    problems = check_copies(_package(tmp_path, ORIGINAL, copy))
    assert len(problems) == 1 and expected in problems[0], problems


def test_copy_of_missing_original_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LookupError, match="no definition 'gone'"):
        check_copies(_package(tmp_path, ORIGINAL, "# Copied from hf_elmo.a.orig.gone\ndef gone():\n    pass\n"))


def test_package_is_the_real_one() -> None:
    assert (PACKAGE / "models" / "elmo" / "modeling_elmo.py").is_file()
