"""``hf-elmo convert-awd-lstm --labels neg,neu,pos``: a converted classifier names its classes (id2label/label2id);
a count that does not match the head's outputs, or labels for a language model, stop with one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoModelForSequenceClassification

from awd_lstm_testing import FASTAI_FIXTURE, fixture_config, requires_fixture
from hf_elmo.cli import main

pytestmark = requires_fixture
CLASSIFIER = FASTAI_FIXTURE / "clas_state_dict.pth"


def convert(weights: Path, output: Path, *extra: str) -> int:
    cfg = fixture_config()
    return main(["convert-awd-lstm", "--weights", str(weights), "--vocab", str(FASTAI_FIXTURE / "vocab.pkl"),
                 "--output", str(output), "--bptt", str(cfg["bptt"]), "--max-len", str(cfg["max_len"]), *extra])


def test_labels_name_the_classes(tmp_path):
    assert fixture_config()["n_class"] == 3
    assert convert(CLASSIFIER, tmp_path / "out", "--labels", "neg, neu,pos") == 0
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "neu", "2": "pos"}
    assert config["label2id"] == {"neg": 0, "neu": 1, "pos": 2}
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out", trust_remote_code=True)
    assert model.config.id2label == {0: "neg", 1: "neu", 2: "pos"}
    assert "0: neg, 1: neu, 2: pos" in (tmp_path / "out" / "README.md").read_text()


@pytest.mark.parametrize("weights, labels, message", [
    (CLASSIFIER, "neg,pos", "2 labels given (neg, pos), but the classifier's head has 3 outputs"),
    (CLASSIFIER, "neg,neg,pos", "labels must be 3 distinct non-empty names"),
    (FASTAI_FIXTURE / "lm_state_dict.pth", "neg,pos", "labels name a classifier's classes"),
])
def test_bad_labels(weights, labels, message, tmp_path, capsys):
    assert convert(weights, tmp_path / "out", "--labels", labels) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()
