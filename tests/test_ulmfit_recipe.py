"""ULMFiT's three stages on the Trainer learn what a classifier without LM pretraining cannot.

The task is built so that LM pretraining must matter: two topics, each with its own 20 words. Unlabelled text mixes
the words of one topic per sentence; the labelled training sentences use only the first 10 words of each topic, and
the validation sentences only the other 10. A classifier can then only be right on validation by knowing, from the
unlabelled text, which topic the unseen words belong to: the LM learns that (the words of a topic predict each
other), a classifier trained from scratch cannot.
"""

from __future__ import annotations

import random
import time

import pytest
import torch

from hf_elmo.training.ulmfit import UlmfitSettings, run_ulmfit

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
    settings = UlmfitSettings(lm_epochs=8, lm_lr=3e-2, lm_batch_size=16, bptt=20, classifier_lr=2e-2,
                              classifier_batch_size=16, drop_mult=0.3, seed=0)
    ulmfit = run_ulmfit(train_x, train_y, valid_x, valid_y, pretraining_texts=unlabelled, scratch_config=TINY,
                        settings=settings, min_freq=1, output_dir=tmp_path / "ulmfit")
    elapsed = time.perf_counter() - start
    baseline_settings = UlmfitSettings(**{**settings.__dict__, "lm_epochs": 1})
    baseline = run_ulmfit(train_x, train_y, valid_x, valid_y, pretraining_texts=None, scratch_config=TINY,
                          settings=baseline_settings, min_freq=1, output_dir=tmp_path / "baseline")
    accuracy, without = ulmfit.metrics["valid accuracy"], baseline.metrics["valid accuracy"]
    assert accuracy >= 0.85, f"ULMFiT validation accuracy {accuracy:.3f} (chance is 0.5)"
    assert accuracy >= without + 0.25, f"ULMFiT {accuracy:.3f} vs no LM pretraining {without:.3f}"
    assert elapsed < 60, f"the recipe took {elapsed:.0f} s"
    # the classifier's encoder started from the fine-tuned LM's encoder, and every group was trained in the end
    assert all(p.requires_grad for p in ulmfit.classifier.parameters())


def test_ulmfit_command_on_csv_and_jsonl(tmp_path, capsys):
    import csv
    import json

    from hf_elmo.cli import main
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    unlabelled, (train_x, train_y), (valid_x, valid_y) = topic_task(seed=1)
    names = ["world", "sports"]
    with open(tmp_path / "train.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "topic"])
        writer.writerows([x, names[y]] for x, y in zip(train_x, train_y))
    with open(tmp_path / "valid.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"review": x, "topic": names[y]}) + "\n" for x, y in zip(valid_x, valid_y))
    (tmp_path / "unlabelled.txt").write_text("\n".join(unlabelled), encoding="utf-8")
    out = tmp_path / "out"
    status = main(["ulmfit", "--train", str(tmp_path / "train.csv"), "--valid", str(tmp_path / "valid.jsonl"),
                   "--text-column", "review", "--label-column", "topic", "--scratch",
                   "--pretrain-data", str(tmp_path / "unlabelled.txt"), "--emb-size", "32", "--hidden-size", "64",
                   "--num-layers", "2", "--lm-epochs", "8", "--lm-lr", "3e-2", "--classifier-lr", "2e-2",
                   "--batch-size", "16", "--bptt", "20", "--drop-mult", "0.3", "--min-freq", "1",
                   "--output", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    accuracy = float(printed.split("valid accuracy:")[1].split()[0])
    assert accuracy >= 0.85
    assert json.loads((out / "metrics.json").read_text())["valid accuracy"] == pytest.approx(accuracy, abs=1e-4)
    tokenizer = AutoTokenizer.from_pretrained(out / "classifier", trust_remote_code=True)
    model = AutoModelForSequenceClassification.from_pretrained(out / "classifier", trust_remote_code=True).eval()
    assert model.config.id2label == {0: "sports", 1: "world"}  # classes in sorted order
    with torch.no_grad():
        logits = model(**tokenizer([valid_x[0]], return_tensors="pt")).logits
    assert model.config.id2label[int(logits.argmax())] == names[valid_y[0]]


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
