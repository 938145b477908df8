"""`hf-elmo ulmfit --bidirectional`: the recipe in both directions and the paper's ensemble, saved as folders.

One tiny run (scratch models, a two-topic task) is shared by the tests: its backward classifier must be the one a
plain `--backwards` run trains, its ensemble folder must load through the Auto classes and average the two saved
classifiers' probabilities, and its figures must be what the saved ensemble measures.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import run_card_snippet
from hf_elmo.cli import main

SIZES = ["--scratch", "--emb-size", "16", "--hidden-size", "24", "--num-layers", "2", "--min-freq", "1",
         "--bptt", "10", "--batch-size", "16", "--lm-epochs", "2", "--classifier-epochs", "3", "--lm-lr", "3e-2",
         "--classifier-lr", "2e-2", "--threads", "1"]


def write_task(folder: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    path = folder / f"task-{seed}.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(n):
            topic = ("red", "blue")[i % 2]
            words = [topic, f"{topic}ish", "a", "the", "of", "and"]
            writer.writerow([" ".join(rng.choice(words) for _ in range(rng.randint(4, 10))), topic])
    return path


def run_cli(args: list[str]) -> tuple[int, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(args)
    return status, printed.getvalue()


@pytest.fixture(scope="module")
def bidirectional(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bidirectional")
    data = ["--train", str(write_task(tmp, 96, 0)), "--valid", str(write_task(tmp, 40, 1))]
    status, printed = run_cli(["ulmfit", *data, *SIZES, "--bidirectional", "--output", str(tmp / "out")])
    assert status == 0, printed
    return SimpleNamespace(out=tmp / "out", tmp=tmp, data=data, printed=printed)


def test_the_folders_of_both_directions_and_the_ensemble(bidirectional):
    out = bidirectional.out
    assert sorted(p.name for p in out.iterdir() if p.name != "checkpoints") == [
        "backward", "ensemble", "forward", "metrics.json"]
    for direction in ("forward", "backward"):
        for kind in ("language_model", "classifier"):
            config = json.loads((out / direction / kind / "config.json").read_text())
            assert config["backwards"] is (direction == "backward"), (direction, kind)
            assert (out / direction / kind / "README.md").is_file()
    ensemble = json.loads((out / "ensemble" / "config.json").read_text())
    assert ensemble["model_type"] == "awd_lstm_ensemble" and ensemble["backwards"] is False
    assert ensemble["id2label"] == {"0": "blue", "1": "red"}
    assert json.loads((out / "ensemble" / "tokenizer_config.json").read_text()).get("backwards", False) is False


def test_the_backward_classifier_is_a_plain_backwards_run(bidirectional):
    """Each direction is the whole recipe with the same settings: the backward member equals `--backwards`."""
    from hf_elmo import AWDLSTMForSequenceClassification

    status, _ = run_cli(["ulmfit", *bidirectional.data, *SIZES, "--backwards", "--output",
                         str(bidirectional.tmp / "plain-backward")])
    assert status == 0
    plain = AWDLSTMForSequenceClassification.from_pretrained(bidirectional.tmp / "plain-backward" / "classifier")
    member = AWDLSTMForSequenceClassification.from_pretrained(bidirectional.out / "backward" / "classifier")
    for (name, a), b in zip(plain.state_dict().items(), member.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_ensemble_folder_averages_the_saved_classifiers(bidirectional):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = bidirectional.out
    texts = ["red redish a the", "of blue and blueish blue blue a", "the"]
    tokenizer = AutoTokenizer.from_pretrained(out / "ensemble", trust_remote_code=True)
    ensemble = AutoModelForSequenceClassification.from_pretrained(out / "ensemble", trust_remote_code=True).eval()
    probabilities = []
    for direction in ("forward", "backward"):
        member_tokenizer = AutoTokenizer.from_pretrained(out / direction / "classifier", trust_remote_code=True)
        member = AutoModelForSequenceClassification.from_pretrained(out / direction / "classifier",
                                                                    trust_remote_code=True).eval()
        with torch.no_grad():  # each document alone: the member's own tokenizer reverses it for the backward one
            probabilities.append(torch.cat([member(**member_tokenizer([t], return_tensors="pt")).logits.softmax(-1)
                                            for t in texts]))
    with torch.no_grad():
        got = ensemble(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    torch.testing.assert_close(got, ((probabilities[0] + probabilities[1]) / 2).log(), atol=1e-5, rtol=0)


def test_the_figures_are_the_saved_ensembles(bidirectional):
    from hf_elmo import AWDLSTMEnsembleForSequenceClassification, AWDLSTMTokenizer
    from hf_elmo.data import tabular
    from hf_elmo.training.ulmfit import encode_documents, predict

    out = bidirectional.out
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"forward", "backward"} <= set(metrics) and metrics["backward"]["settings"]["backwards"] is True
    texts, labels = tabular.read_labelled(bidirectional.data[3], "text", "label")
    tokenizer = AWDLSTMTokenizer.from_pretrained(out / "ensemble")
    ensemble = AWDLSTMEnsembleForSequenceClassification.from_pretrained(out / "ensemble")
    names = ensemble.config.label2id
    predicted = predict(ensemble, tokenizer, encode_documents(tokenizer, texts))
    accuracy = float((predicted == torch.tensor([names[y] for y in labels]).numpy()).mean())
    assert metrics["ensemble valid accuracy"] == pytest.approx(accuracy, abs=1e-9)
    for direction in ("forward", "backward"):
        assert metrics[f"{direction} valid accuracy"] == metrics[direction]["valid accuracy"]
    assert f"ensemble valid accuracy: {accuracy:.4f}" in bidirectional.printed


def test_the_ensemble_card_snippet_loads_the_final_folder(bidirectional):
    card = (bidirectional.out / "ensemble" / "README.md").read_text(encoding="utf-8")
    assert "forward + backward ensemble" in card and "backward/classifier" in card
    assert str(bidirectional.out / "ensemble") in card and ".partial-" not in card
    run_card_snippet(card)


@pytest.mark.parametrize("extra, fragment", [
    (["--backwards"], "--bidirectional trains both directions: --backwards does not apply"),
    (["--push-lm-to-hub", "me/lm"], "--push-lm-to-hub names one language model, --bidirectional trains two"),
])
def test_options_that_do_not_apply_to_a_bidirectional_run(tmp_path, capsys, extra, fragment):
    status = main(["ulmfit", "--train", str(write_task(tmp_path, 8, 0)), *SIZES, "--bidirectional", *extra])
    assert status == 1 and fragment in capsys.readouterr().err


def lm_folder(folder: Path, backwards: bool, **sizes) -> Path:
    from awd_lstm_testing import tiny_config
    from hf_elmo import AWDLSTMForLanguageModeling, AWDLSTMTokenizer

    AWDLSTMForLanguageModeling(tiny_config(backwards=backwards, **sizes)).save_pretrained(folder)
    AWDLSTMTokenizer(itos=AWDLSTMTokenizer.build_vocab(["red blue"], min_freq=1),
                     backwards=backwards).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("case, fragment", [
    ("forward only", "a bidirectional run with --pretrained needs --pretrained-backward too"),
    ("backward only", "--pretrained-backward applies with --bidirectional"),
    ("swapped", "a backward language model given as the forward one (its config says backwards=True)"),
    ("sizes", "the forward and backward pretrained LMs differ in hidden_size"),
])
def test_the_pretrained_pair_is_checked_before_any_training(tmp_path, capsys, case, fragment):
    forward, backward = lm_folder(tmp_path / "fwd", False), lm_folder(tmp_path / "bwd", True)
    argv = ["ulmfit", "--train", str(write_task(tmp_path, 8, 0)), "--output", str(tmp_path / "out")]
    if case == "forward only":
        argv += ["--pretrained", str(forward), "--bidirectional"]
    elif case == "backward only":
        argv += ["--pretrained", str(backward), "--pretrained-backward", str(backward)]
    elif case == "swapped":
        argv += ["--pretrained", str(backward), "--pretrained-backward", str(forward), "--bidirectional"]
    else:
        other = lm_folder(tmp_path / "bwd-wide", True, hidden_size=40)
        argv += ["--pretrained", str(forward), "--pretrained-backward", str(other), "--bidirectional"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_a_pretrained_pair_fine_tunes_each_direction_from_its_own_lm(bidirectional):
    """The fine-tuned LMs of the shared run as the pretrained pair of a new run: each direction starts from its own
    (the backward run's stage 1 note names the backward LM), and the ensemble forms."""
    out, new = bidirectional.out, bidirectional.tmp / "from-pretrained"
    status, _ = run_cli(["ulmfit", *bidirectional.data, "--pretrained", str(out / "forward" / "language_model"),
                         "--pretrained-backward", str(out / "backward" / "language_model"), "--bidirectional",
                         "--lm-epochs", "1", "--classifier-epochs", "1", "--min-freq", "1", "--bptt", "10",
                         "--batch-size", "16", "--threads", "1", "--output", str(new)])
    assert status == 0
    metrics = json.loads((new / "metrics.json").read_text())
    for direction in ("forward", "backward"):
        stage1 = metrics[direction]["stages"][0]
        assert stage1["note"].startswith(f"pretrained LM {out / direction / 'language_model'};"), stage1
    assert (new / "ensemble" / "model.safetensors").is_file()
