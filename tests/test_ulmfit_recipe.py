"""ULMFiT's three stages on the Trainer learn what a classifier without LM pretraining cannot.

The task is built so that LM pretraining must matter: two topics, each with its own 20 words. Unlabelled text mixes
the words of one topic per sentence; the labelled training sentences use only the first 10 words of each topic, and
the validation sentences only the other 10. A classifier can then only be right on validation by knowing, from the
unlabelled text, which topic the unseen words belong to: the LM learns that (the words of a topic predict each
other), a classifier trained from scratch cannot.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import random
import time
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import ModelCard

from conftest import AWD_LSTM_FOLDER_FILES, COMMIT_URL, run_card_snippet
from hf_elmo.training.ulmfit import run_ulmfit
from hf_elmo.training.ulmfit_settings import StageSettings, UlmfitSettings

TINY = dict(emb_size=32, hidden_size=64, num_layers=2)


def topic_task(seed: int = 0):
    rng = random.Random(seed)
    topics = ([f"alpha{i}" for i in range(20)], [f"beta{i}" for i in range(20)])
    filler = "the a of and with to in on for is was".split()

    def sentence(words: list[str]) -> str:
        return " ".join(rng.choice(words) if rng.random() < 0.5 else rng.choice(filler)
                        for _ in range(rng.randint(6, 12)))

    unlabelled = [sentence(topics[rng.randrange(2)]) for _ in range(1500)]

    def labelled(n: int, lo: int, hi: int):
        labels = [rng.randrange(2) for _ in range(n)]
        return [sentence(topics[y][lo:hi]) for y in labels], labels

    return unlabelled, labelled(200, 0, 10), labelled(200, 10, 20)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny recurrences: threads only add overhead on a shared 2-core machine
    yield
    torch.set_num_threads(before)


def test_three_stages_beat_chance_and_the_unpretrained_classifier(tmp_path):
    unlabelled, (train_x, train_y), (valid_x, valid_y) = topic_task()
    start = time.perf_counter()
    settings = UlmfitSettings(pretraining=StageSettings(epochs=8, lr=3e-2, lr_factor=None, batch_size=16),
                              lm_finetuning=StageSettings(epochs=8, lr=3e-2, batch_size=16),
                              classifier=StageSettings(epochs=None, lr=2e-2, batch_size=16),
                              bptt=20, min_freq=1, drop_mult=0.3, seed=0)
    ulmfit = run_ulmfit(train_x, train_y, valid_x, valid_y, pretraining_texts=unlabelled, scratch_config=TINY,
                        settings=settings, output_dir=tmp_path / "ulmfit")
    elapsed = time.perf_counter() - start
    baseline_settings = settings.with_stages(lm_finetuning={"epochs": 1})
    baseline = run_ulmfit(train_x, train_y, valid_x, valid_y, pretraining_texts=None, scratch_config=TINY,
                          settings=baseline_settings, output_dir=tmp_path / "baseline")
    accuracy, without = ulmfit.metrics["valid accuracy"], baseline.metrics["valid accuracy"]
    assert accuracy >= 0.85, f"ULMFiT validation accuracy {accuracy:.3f} (chance is 0.5)"
    assert accuracy >= without + 0.25, f"ULMFiT {accuracy:.3f} vs no LM pretraining {without:.3f}"
    assert elapsed < 60, f"the recipe took {elapsed:.0f} s"
    # the classifier's encoder started from the fine-tuned LM's encoder, and every group was trained in the end
    assert all(p.requires_grad for p in ulmfit.classifier.parameters())


COMMAND_SIZES = ["--scratch", "--emb-size", "32", "--hidden-size", "64", "--num-layers", "2", "--pretrain-lr", "3e-2",
                 "--lm-lr", "3e-2",
                 "--classifier-lr", "2e-2", "--batch-size", "16", "--bptt", "20", "--drop-mult", "0.3",
                 "--min-freq", "1"]


def run_command(args: list[str]) -> tuple[int, str]:
    """``hf-elmo`` with ``args`` on one thread; returns the exit status and what it printed."""
    from hf_elmo.cli import main

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            status = main(args)
    finally:
        torch.set_num_threads(before)
    return status, printed.getvalue()


@pytest.fixture(scope="module")
def command_run(tmp_path_factory):
    """One `hf-elmo ulmfit` run on CSV + JSONL files (stage 1 on a .txt file), its folders kept under --output."""
    tmp = tmp_path_factory.mktemp("ulmfit_command")
    unlabelled, (train_x, train_y), (valid_x, valid_y) = topic_task(seed=1)
    names = ["world", "sports"]
    with open(tmp / "train.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "topic"])
        writer.writerows([x, names[y]] for x, y in zip(train_x, train_y))
    with open(tmp / "valid.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"review": x, "topic": names[y]}) + "\n" for x, y in zip(valid_x, valid_y))
    (tmp / "unlabelled.txt").write_text("\n".join(unlabelled), encoding="utf-8")
    data = ["--train", str(tmp / "train.csv"), "--valid", str(tmp / "valid.jsonl"), "--text-column", "review",
            "--label-column", "topic"]
    status, printed = run_command(["ulmfit", *data, *COMMAND_SIZES, "--pretrain-data", str(tmp / "unlabelled.txt"),
                                   "--pretrain-epochs", "8", "--lm-epochs", "8", "--output", str(tmp / "out")])
    assert status == 0
    return SimpleNamespace(out=tmp / "out", printed=printed, data=data, valid_x=valid_x, valid_y=valid_y, names=names)


def test_ulmfit_command_on_csv_and_jsonl(command_run):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out, valid_x, valid_y = command_run.out, command_run.valid_x, command_run.valid_y
    accuracy = float(command_run.printed.split("valid accuracy:")[1].split()[0])
    assert accuracy >= 0.85
    assert json.loads((out / "metrics.json").read_text())["valid accuracy"] == pytest.approx(accuracy, abs=1e-4)
    tokenizer = AutoTokenizer.from_pretrained(out / "classifier", trust_remote_code=True)
    model = AutoModelForSequenceClassification.from_pretrained(out / "classifier", trust_remote_code=True).eval()
    assert model.config.id2label == {0: "sports", 1: "world"}  # classes in sorted order
    with torch.no_grad():
        logits = model(**tokenizer([valid_x[0]], return_tensors="pt")).logits
    assert model.config.id2label[int(logits.argmax())] == command_run.names[valid_y[0]]


@pytest.mark.parametrize("name, pipeline", [("language_model", "text-generation"),
                                            ("classifier", "text-classification")])
def test_ulmfit_command_cards(command_run, name, pipeline, capsys):
    """Each saved folder has a card: Hub metadata, the training's stages and figures, and a usage snippet that runs
    as written against the folder."""
    folder = command_run.out / name
    assert {p.name for p in folder.iterdir()} == set(AWD_LSTM_FOLDER_FILES) | (
        {"generation_config.json"} if name == "language_model" else set())
    card = ModelCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers" and data["license"] == "apache-2.0" and data["language"] == "en"
    assert data["pipeline_tag"] == pipeline and {"awd-lstm", "ulmfit", pipeline} <= set(data["tags"])
    assert "base_model" not in data and "datasets" not in data  # trained from scratch on local files
    text = card.text
    for needle in ("## Architecture", "## Usage", "## Training", "## Results", "howard-ruder-2018-universal",
                   "1. general-domain LM pretraining", "2. target-task LM fine-tuning", "1,500 texts",
                   "8 epochs", "lr 0.03", "`train.csv`", "dropouts × 0.3"):
        assert needle in text, needle
    assert "## Conversion" not in text and "## Parity" not in text
    metrics = json.loads((command_run.out / "metrics.json").read_text())
    if name == "classifier":
        assert "3. classifier fine-tuning" in text and "gradual unfreezing" in text and "lr 0.02" in text
        assert f"| validation accuracy | {metrics['valid accuracy']:.3f} (200 texts) |" in text
        assert f"{metrics['valid majority-class accuracy']:.3f}" in text and "0: sports, 1: world" in text
    else:
        assert "3. classifier" not in text and "validation accuracy" not in text
    namespace = run_card_snippet(text)
    printed = capsys.readouterr().out
    if name == "classifier":
        assert namespace["texts"] == command_run.valid_x[:2]  # the task's own texts as examples
        assert set(namespace["predictions"]) <= {"sports", "world"} and printed.startswith("[")
    else:
        prompt = namespace["inputs"]["input_ids"]
        assert namespace["generated"].shape[1] > prompt.shape[1] and "xxbos" not in printed  # decoded as text
        assert printed.startswith(namespace["tokenizer"].decode(prompt[0], skip_special_tokens=True))


def test_ulmfit_command_pushes_the_folders(command_run, hub, tmp_path, capsys):
    """`--push-to-hub` (no --output: a temporary folder) commits the classifier folder, `--push-lm-to-hub` the
    fine-tuned LM's, each in one commit of exactly its files; the cards' snippets load the repositories at the
    revision, and the classifier's base_model is the pushed LM. Stage 1 here is the LM of the first run, a local
    folder: no base_model for the LM, whose card names the folder instead."""
    pretrained = command_run.out / "language_model"
    status, printed = run_command(["ulmfit", *command_run.data, "--pretrained", str(pretrained), "--lm-epochs", "1",
                                   "--batch-size", "16", "--bptt", "20", "--min-freq", "1",
                                   "--push-to-hub", "user/ulmfit-clf", "--push-lm-to-hub", "user/ulmfit-lm",
                                   "--revision", "v1", "--private"])
    assert status == 0, capsys.readouterr().err
    assert f"Pushed the classifier to {COMMIT_URL}" in printed
    assert hub.names() == ["create_repo", "create_branch", "create_commit"] * 2  # the LM first: the base model
    assert [c["repo_id"] for c in hub.all("create_repo")] == ["user/ulmfit-lm", "user/ulmfit-clf"]
    assert all(c["private"] is True for c in hub.all("create_repo"))
    assert all(b["branch"] == "v1" for b in hub.all("create_branch"))
    lm_commit, clf_commit = hub.all("create_commit")
    assert lm_commit["revision"] == clf_commit["revision"] == "v1"
    assert set(clf_commit["contents"]) == set(AWD_LSTM_FOLDER_FILES)
    assert set(lm_commit["contents"]) == set(AWD_LSTM_FOLDER_FILES) | {"generation_config.json"}
    assert [op.path_in_repo for op in clf_commit["operations"]] == sorted(AWD_LSTM_FOLDER_FILES)

    cards = {}
    for commit in (lm_commit, clf_commit):  # what the Hub would hold, laid out as a folder
        folder = tmp_path / commit["repo_id"].split("/")[1]
        for path, data in commit["contents"].items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_bytes(data)
        card = ModelCard.load(folder / "README.md")
        cards[commit["repo_id"]] = card
        assert f'checkpoint = "{commit["repo_id"]}"' in card.text and "revision='v1'" in card.text
        run_card_snippet(card.text, {f'"{commit["repo_id"]}"': json.dumps(str(folder)), ", revision='v1'": ""})
    lm_card, clf_card = cards["user/ulmfit-lm"], cards["user/ulmfit-clf"]
    assert clf_card.data.base_model == "user/ulmfit-lm" and "fine-tuned from [user/ulmfit-lm]" in clf_card.text
    assert lm_card.data.base_model is None and f"local folder `{pretrained}`" in lm_card.text
    assert "pretrained LM" in lm_card.text and "vocabulary adapted" in lm_card.text


def test_cards_of_a_model_fine_tuned_from_a_hub_lm(tmp_path):
    """A pretrained LM given as a Hub id is the base_model of the fine-tuned LM, and of the classifier unless the
    fine-tuned LM is pushed too (then that is the classifier's base model)."""
    from hf_elmo import AWDLSTMConfig, AWDLSTMForLanguageModeling, AWDLSTMTokenizer
    from hf_elmo.training.ulmfit import (StageRecord, UlmfitResult, classifier_from_language_model,
                                         save_ulmfit_folders)

    tokenizer = AWDLSTMTokenizer.from_texts(["the cat sat on the mat", "a dog"], min_freq=1)
    lm = AWDLSTMForLanguageModeling(AWDLSTMConfig.for_language_model(
        vocab_size=len(tokenizer.itos), emb_size=8, hidden_size=12, num_layers=2))
    settings = UlmfitSettings()
    trained = dict(tokens=100, epochs=1, steps=2, lr=0.01, batch_size=4, train_loss=4.0, seconds=1.0)
    result = UlmfitResult(
        lm, classifier_from_language_model(lm, 2, settings), tokenizer,
        {"valid accuracy": 0.9, "valid majority-class accuracy": 0.5, "stage 2 lm train loss": 4.0},
        [StageRecord(1, "general-domain LM", note="pretrained LM user/wt103-lm"),
         StageRecord(2, "target-task LM fine-tuning", texts=12, **trained),
         StageRecord(3, "classifier fine-tuning", texts=10, **trained)],
        settings, pretrained="user/wt103-lm", num_labels=2, num_valid=2,
    )
    for lm_repo, classifier_base in ((None, "user/wt103-lm"), ("user/my-lm", "user/my-lm")):
        out = tmp_path / str(lm_repo).replace("/", "-")
        folders = save_ulmfit_folders(result, out, data="12 texts", class_names=["neg", "pos"], lm_repo_id=lm_repo,
                                      datasets=["imdb"], language="fr", license="mit")
        lm_card, classifier_card = (ModelCard.load(folders[name] / "README.md") for name in ("language_model",
                                                                                              "classifier"))
        assert lm_card.data.base_model == "user/wt103-lm" and classifier_card.data.base_model == classifier_base
        for card in (lm_card, classifier_card):
            assert card.data.datasets == ["imdb"] and card.data.language == "fr" and card.data.license == "mit"
            assert "| 1. general-domain LM | – | pretrained LM user/wt103-lm | – |" in card.text
        assert f"fine-tuned from [{classifier_base}](https://huggingface.co/{classifier_base})" in classifier_card.text
        assert ("saved beside this folder" in classifier_card.text) == (lm_repo is None)


def test_ulmfit_push_options_need_a_repository(tmp_path, capsys):
    for flag in (["--revision", "v1"], ["--private"]):
        status, _ = run_command(["ulmfit", "--train", str(tmp_path / "missing.csv"), "--scratch", *flag])
        assert status == 1
        assert f"{flag[0]} only applies with --push-to-hub" in capsys.readouterr().err


def test_ulmfit_command_reports_a_missing_column(tmp_path, capsys):
    from hf_elmo.cli import main

    (tmp_path / "train.csv").write_text("text,label\nhello there,a\n", encoding="utf-8")
    status = main(["ulmfit", "--train", str(tmp_path / "train.csv"), "--label-column", "topic", "--scratch"])
    assert status == 1
    assert "no column 'topic'" in capsys.readouterr().err


def test_adapting_a_pretrained_vocabulary_keeps_what_the_lm_knows():
    """fastai's match_embeds: known tokens keep their rows and biases, so their logits are unchanged; new tokens
    start from the mean embedding."""
    from hf_elmo import AWDLSTMConfig, AWDLSTMForLanguageModeling, AWDLSTMTokenizer
    from hf_elmo.training.ulmfit import adapt_vocabulary

    old_texts = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"]
    tokenizer = AWDLSTMTokenizer.from_texts(old_texts, min_freq=1)
    torch.manual_seed(0)
    lm = AWDLSTMForLanguageModeling(AWDLSTMConfig.for_language_model(
        vocab_size=len(tokenizer.itos), emb_size=8, hidden_size=12, num_layers=2)).eval()
    with torch.no_grad():
        lm.decoder.bias.normal_()
    new_lm, new_tok = adapt_vocabulary(lm, tokenizer, ["the bird sat on the cat", "a bird and a cat"], min_freq=1)
    new_lm.eval()
    assert "bird" in new_tok.itos and "bird" not in tokenizer.itos and "mat" not in new_tok.itos
    text = "the cat sat on the"
    with torch.no_grad():
        old = lm(**tokenizer(text, return_tensors="pt")).logits[0]
        new = new_lm(**new_tok(text, return_tensors="pt")).logits[0]
    for word in ("the", "cat", "sat", "on", "a"):
        o, n = tokenizer.itos.index(word), new_tok.itos.index(word)
        torch.testing.assert_close(new[:, n], old[:, o], rtol=0, atol=1e-6)
    emb = new_lm.get_input_embeddings().weight
    torch.testing.assert_close(emb[new_tok.itos.index("bird")], lm.get_input_embeddings().weight.mean(0))
    assert new_lm.get_output_embeddings().weight.data_ptr() == emb.data_ptr()  # still tied
