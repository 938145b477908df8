"""Loaders given the wrong folder stop before doing any work, with one line naming the folder, the ``model_type``
found and the one needed (``hf_elmo.model_folders.check_model_folder``, shared by every loader); ``hf-elmo export``
exports a converted ELMo's embeddings, not the softmax the published weights never had, and takes the classifier of
an ``hf-elmo ulmfit --output`` folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from awd_lstm_testing import tiny_model as tiny_awd_model
from conftest import ELMO_FIXTURE, SKIP_REASON, tiny_model
from hf_elmo import AWDLSTMForLanguageModeling, AWDLSTMForSequenceClassification, AWDLSTMTokenizer, ElmoTokenizer
from hf_elmo.cli import main
from hf_elmo.model_folders import ModelFolderError, check_model_folder, lm_head_untrained, ulmfit_output_classifier

def awd_tokenizer(vocab_size: int) -> AWDLSTMTokenizer:
    """fastai's special tokens, then made-up words: ``vocab_size`` entries."""
    itos = [t for t in AWDLSTMTokenizer.build_vocab(["a"], min_freq=1) if t != "a"][:vocab_size]
    return AWDLSTMTokenizer(itos=itos + [f"word{i}" for i in range(vocab_size - len(itos))])


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Saved tiny folders: an ELMo, an AWD-LSTM LM, and an ``hf-elmo ulmfit --output`` layout."""
    root = tmp_path_factory.mktemp("folders")
    made = {"elmo": root / "elmo", "awd": root / "awd-lm", "ulmfit": root / "ulmfit-output"}
    tiny_model().save_pretrained(made["elmo"])
    ElmoTokenizer().save_pretrained(made["elmo"])
    lm = tiny_awd_model(AWDLSTMForLanguageModeling)
    lm.save_pretrained(made["awd"])
    awd_tokenizer(lm.config.vocab_size).save_pretrained(made["awd"])
    for name, cls in (("language_model", AWDLSTMForLanguageModeling), ("classifier", AWDLSTMForSequenceClassification)):
        model = tiny_awd_model(cls, num_labels=2)
        model.save_pretrained(made["ulmfit"] / name)
        awd_tokenizer(model.config.vocab_size).save_pretrained(made["ulmfit"] / name)
    (made["ulmfit"] / "metrics.json").write_text("{}\n")
    return made


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(args)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line(err: str, *parts: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for part in parts:
        assert part in lines[0], (part, lines[0])


# --------------------------------------------------------------------------------------------------------------------
# The wrong model type, or no weights
# --------------------------------------------------------------------------------------------------------------------
def test_ulmfit_given_an_elmo_folder_stops_before_reading_the_data(folders, tmp_path, capsys):
    # the training file does not exist: the folder is checked first, before any data is read or anything trained
    status, out, err = run_cli(["ulmfit", "--train", str(tmp_path / "absent.csv"), "--pretrained",
                                str(folders["elmo"])], capsys)
    assert status == 1
    assert_one_line(err, "hf-elmo ulmfit: error:", str(folders["elmo"]), "'elmo'", "'awd_lstm'", "--pretrained")
    assert "MISSING" not in out + err


def test_run_ulmfit_checks_the_pretrained_folder_first(folders):
    from hf_elmo.training.ulmfit import run_ulmfit

    with pytest.raises(ModelFolderError, match="type 'elmo' .*needs 'awd_lstm'"):
        run_ulmfit(["a text"], [0], pretrained=folders["elmo"])


def test_embed_given_an_awd_lstm_folder(folders, tmp_path, capsys):
    sentences = tmp_path / "in.txt"
    sentences.write_text("The cat sat.\n", encoding="utf-8")
    status, _, err = run_cli(["embed", str(folders["awd"]), str(sentences), str(tmp_path / "out.hdf5")], capsys)
    assert status == 1
    assert_one_line(err, "hf-elmo embed: error:", str(folders["awd"]), "'awd_lstm' (AWD-LSTM)", "'elmo' (ELMo)")
    assert not (tmp_path / "out.hdf5").exists()


def test_a_folder_without_weights(folders, tmp_path, capsys):
    bare = tmp_path / "no-weights"
    bare.mkdir()
    (bare / "config.json").write_text((folders["elmo"] / "config.json").read_text())
    sentences = tmp_path / "in.txt"
    sentences.write_text("The cat sat.\n", encoding="utf-8")
    status, _, err = run_cli(["embed", str(bare), str(sentences), str(tmp_path / "out.hdf5")], capsys)
    assert status == 1
    assert_one_line(err, str(bare), "no weights", "model.safetensors")


def test_a_folder_without_config(tmp_path):
    with pytest.raises(ModelFolderError, match="holds no config.json"):
        check_model_folder(tmp_path, "elmo")


def test_export_of_the_wrong_family_for_the_task(folders, tmp_path, capsys):
    pytest.importorskip("optimum")
    status, _, err = run_cli(["export", str(folders["elmo"]), str(tmp_path / "onnx"), "--task", "text-generation"],
                             capsys)
    assert status == 1
    assert_one_line(err, "hf-elmo export: error:", str(folders["elmo"]), "'elmo'", "'awd_lstm'", "text-generation")
    assert not (tmp_path / "onnx").exists()


def test_export_of_a_folder_of_another_model_type(tmp_path, capsys):
    pytest.importorskip("optimum")
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    status, _, err = run_cli(["export", str(bert), str(tmp_path / "onnx")], capsys)
    assert status == 1
    assert_one_line(err, str(bert), "'bert'", "'awd_lstm' (AWD-LSTM)", "'elmo' (ELMo)")


# --------------------------------------------------------------------------------------------------------------------
# hf-elmo export: an ulmfit --output folder, a converted ELMo's untrained softmax
# --------------------------------------------------------------------------------------------------------------------
def test_export_takes_the_classifier_of_an_ulmfit_output_folder(folders, tmp_path, capsys):
    pytest.importorskip("optimum")
    assert ulmfit_output_classifier(folders["ulmfit"]) == folders["ulmfit"] / "classifier"
    assert ulmfit_output_classifier(folders["awd"]) is None
    status, out, err = run_cli(["export", str(folders["ulmfit"]), str(tmp_path / "onnx")], capsys)
    assert status == 0, err
    assert f"exporting its classifier, {folders['ulmfit'] / 'classifier'}" in out
    onnx = json.loads((tmp_path / "onnx" / "config.json").read_text())["onnx"]
    assert onnx["task"] == "text-classification"


@pytest.fixture(scope="module")
def converted_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (ELMO_FIXTURE / "lm_weights.hdf5").is_file():
        pytest.skip(SKIP_REASON)
    from hf_elmo.conversion.allennlp_elmo import convert_allennlp_elmo

    out = tmp_path_factory.mktemp("converted") / "elmo-lm"
    return convert_allennlp_elmo(ELMO_FIXTURE / "options.json", ELMO_FIXTURE / "lm_weights.hdf5", out,
                                 vocab=ELMO_FIXTURE / "vocab_test.txt")


def test_converted_lm_says_its_softmax_was_never_trained(converted_lm, folders):
    config = json.loads((converted_lm / "config.json").read_text())
    assert config["lm_head_trained"] is False and lm_head_untrained(config)
    assert '"lm_head_trained": false' in (converted_lm / "README.md").read_text()
    assert not lm_head_untrained(json.loads((folders["elmo"] / "config.json").read_text()), folders["elmo"])


def test_export_of_a_converted_lm_defaults_to_its_embeddings(converted_lm, tmp_path, capsys):
    pytest.importorskip("optimum")
    status, out, err = run_cli(["export", str(converted_lm), str(tmp_path / "onnx")], capsys)
    assert status == 0, err
    assert "never trained" in out and "NEVER TRAINED" not in out
    onnx = json.loads((tmp_path / "onnx" / "config.json").read_text())["onnx"]
    assert onnx["task"] == "feature-extraction" and onnx["model_class"] == "ElmoModel"


def test_lm_export_of_an_untrained_softmax_warns_loudly(converted_lm, caplog):
    pytest.importorskip("optimum")
    from hf_elmo.onnx.export import _resolve_model, _warn_if_untrained_head

    model, task, source = _resolve_model(str(converted_lm), "bidirectional-lm")
    assert type(model).__name__ == "ElmoForLanguageModeling"
    with caplog.at_level("WARNING", logger="hf_elmo"):
        _warn_if_untrained_head(model, task, source)
    assert "NEVER TRAINED" in caplog.text and "random" in caplog.text
    caplog.clear()
    model.config.lm_head_trained = True  # what whoever trains the softmax sets before save_pretrained
    with caplog.at_level("WARNING", logger="hf_elmo"):
        _warn_if_untrained_head(model, task, source)
    assert not caplog.text
