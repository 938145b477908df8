"""``hf-elmo quickstart`` runs end to end on the standard library's docstrings and keeps Hub-ready folders: a small
ELMo, and the ULMFiT stage's AWD-LSTM language model and classifier, each with a model card whose snippet runs.

One quickstart run (module-scoped, tiny sizes) serves every test that reads its output.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModel, AutoTokenizer

from conftest import run_card_snippet, run_card_snippets
from hf_elmo.cli import main
from hf_elmo.data.stdlib_corpus import prose_sentences, stdlib_sentence_sources, stdlib_sentences
from hf_elmo.quickstart.corpus import split
from hf_elmo.quickstart.ulmfit_stage import STDLIB_MODULES, shuffle_task

FOLDERS = ("elmo", "ulmfit/language_model", "ulmfit/classifier")
ONNX_FOLDERS = ("ulmfit/onnx", "ulmfit/onnx-int8")
ONNX = "ONNX Runtime: the ULMFiT classifier exported, checked against PyTorch and timed"


def run_quickstart(args: list[str]) -> tuple[int, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["quickstart", *args])
    return status, printed.getvalue()


def sections(printed: str) -> dict[str, dict[str, str]]:
    """The printed figures, by section title ("== title" lines, then "  name  value" lines)."""
    found: dict[str, dict[str, str]] = {}
    current = None
    for line in printed.splitlines():
        if line.startswith("== "):
            current = found.setdefault(line[3:], {})
        elif current is not None and (match := re.match(r"  (\S.*?)\s{2,}(\S.*)$", line)):
            current[match.group(1)] = match.group(2)
        else:
            current = None
    return found


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    # one thread: tiny models on a 2-core machine that other jobs may share
    status, printed = run_quickstart(["--threads", "1", "--elmo-steps", "25", "--ulmfit-classifier-epochs", "10",
                                      "--ulmfit-emb-size", "64", "--ulmfit-hidden-size", "128", "--output", str(out)])
    assert status == 0
    figures = sections(printed)
    assert set(figures) == {"ELMo bidirectional LM", "ULMFiT: AWD-LSTM language model and text classifier", ONNX}
    return SimpleNamespace(out=out, printed=printed, elmo=figures["ELMo bidirectional LM"],
                           ulmfit=figures["ULMFiT: AWD-LSTM language model and text classifier"], onnx=figures[ONNX])


def test_stdlib_corpus_is_prose():
    sentences = stdlib_sentences(limit=200)
    assert len(sentences) == 200 and len(set(sentences)) == 200
    assert all(s[0].isupper() and s[-1] in ".!?" and ">>>" not in s for s in sentences)
    doc = "Return the sum.\n\n    >>> add(1, 2)\n    3\n\nThe values are added in order. Both must be numbers here."
    assert list(prose_sentences(doc, min_words=3)) == [
        "Return the sum.", "The values are added in order.", "Both must be numbers here."]
    assert list(prose_sentences(doc, min_words=6)) == ["The values are added in order."]
    pairs = stdlib_sentence_sources(limit=200)
    assert [s for s, _ in pairs] == sentences
    assert all(re.fullmatch(r"[A-Za-z_]\w*", module) for _, module in pairs)  # top-level module names


def test_quickstart_pretrains_elmo_and_keeps_the_folder(quickstart):
    before, after = (float(quickstart.elmo[k]) for k in ("valid perplexity before", "valid perplexity after"))
    assert after < before / 2, f"pretraining did not lower the validation perplexity enough: {before} -> {after}"
    assert "inference tokens/s" in quickstart.elmo and quickstart.elmo["folder"] == str(quickstart.out / "elmo")
    folder = quickstart.out / "elmo"
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        out = model(**tokenizer(["Return the value of the named attribute."], return_tensors="pt"))
    assert out.last_hidden_state.shape[-1] == model.config.hidden_size
    assert torch.isfinite(out.last_hidden_state).all()


def test_quickstart_ulmfit_classifier_beats_the_majority_class(quickstart):
    figures = quickstart.ulmfit
    assert figures["task"].endswith(", ".join(STDLIB_MODULES)) and figures["classes"] == str(len(STDLIB_MODULES))
    accuracy, majority = float(figures["classifier valid accuracy"]), float(figures["majority-class accuracy"])
    assert accuracy >= majority + 0.25, f"classifier {accuracy:.3f} vs majority class {majority:.3f}"
    before, after = float(figures["LM valid perplexity before"]), float(figures["LM valid perplexity after stage 1"])
    assert after < before / 5, f"stage 1 did not lower the LM's validation perplexity enough: {before} -> {after}"
    for stage in (1, 2, 3):
        assert float(figures[f"stage {stage} train seconds"]) > 0
    assert figures["folders"] == f"{quickstart.out / 'ulmfit/language_model'}, {quickstart.out / 'ulmfit/classifier'}"


def test_quickstart_onnx_stage_matches_pytorch(quickstart):
    """The exported classifier gives PyTorch's logits (float32) and predictions (float32 and int8) on the
    validation texts, and the three runners are timed."""
    figures = quickstart.onnx
    assert float(figures["float32 max abs diff to PyTorch"]) <= 1e-4
    assert figures["float32 predictions equal to PyTorch's"] == "100.0%"
    assert float(figures["int8 predictions equal to PyTorch's"].rstrip("%")) >= 95.0
    for runner in ("PyTorch eager float32", "ONNX Runtime CPU float32", "ONNX Runtime CPU int8"):
        assert float(figures[f"{runner} tokens/s"].split()[0].replace(",", "")) > 0
    assert figures["folders"] == ", ".join(str(quickstart.out / name) for name in ONNX_FOLDERS)


@pytest.mark.parametrize("name", ONNX_FOLDERS)
def test_quickstart_onnx_cards(quickstart, name, capsys):
    """The exported folders' cards: ONNX metadata, the base classifier, snippets that run against the folder."""
    folder = quickstart.out / name
    card = ModelCard.load(folder / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "onnx" and data["pipeline_tag"] == "text-classification"
    assert {"onnx", "awd-lstm", "ulmfit"} <= set(data["tags"]) and ("int8" in data["tags"]) == name.endswith("int8")
    assert f'checkpoint = "{folder}"' in card.text and "AWD-LSTM text classifier (ONNX" in card.text
    namespaces = run_card_snippets(card.text)  # hf-elmo's OnnxModel, and ONNX Runtime alone
    assert len(namespaces) == 2 and all(ns["predicted"].shape == (2,) for ns in namespaces)


@pytest.mark.parametrize("name", FOLDERS)
def test_quickstart_cards(quickstart, name, capsys):
    """Every folder the quickstart keeps has a card: Hub metadata, the training and its figures as printed, and a
    usage snippet that runs as written against the folder."""
    folder = quickstart.out / name
    card = ModelCard.load(folder / "README.md")
    data = card.data.to_dict()
    pipeline = {"elmo": "feature-extraction", "ulmfit/language_model": "text-generation",
                "ulmfit/classifier": "text-classification"}[name]
    assert data["library_name"] == "transformers" and data["license"] == "apache-2.0" and data["language"] == "en"
    assert data["pipeline_tag"] == pipeline and pipeline in data["tags"] and "hf-elmo" in data["tags"]
    assert "base_model" not in data and "datasets" not in data  # trained from scratch, on no Hub dataset
    text = card.text
    for needle in ("## Architecture", "## Usage", "## Training", "## Results", "@inproceedings",
                   "prose sentences from the docstrings of the Python"):
        assert needle in text, needle
    assert "## Conversion" not in text and "freshly initialised" not in text
    snippet_target = f'checkpoint = "{folder}"'
    assert snippet_target in text and "trust_remote_code=True" in text
    namespace = run_card_snippet(text)
    printed = capsys.readouterr().out
    if name == "elmo":
        figures = quickstart.elmo
        after, before = (float(figures[f"valid perplexity {k}"]) for k in ("after", "before"))
        assert f"| {after:.1f} (" in text and f"; {before:.1f} before training)" in text
        assert "25 steps of 32 sentences" in text and "peters-etal-2018-deep" in text
        assert len(namespace["vectors"]) == len(namespace["words"]) > 0
    else:
        figures = quickstart.ulmfit
        assert f"{float(figures['LM valid perplexity after stage 1']):.1f} (after stage 1)" in text
        assert "1. general-domain LM pretraining" in text and "howard-ruder-2018-universal" in text
        if name == "ulmfit/classifier":
            assert f"| validation accuracy | {float(figures['classifier valid accuracy']):.3f} (" in text
            assert "10 epochs" in text and "gradual unfreezing" in text and "0: asyncio" in text
            assert set(namespace["predictions"]) <= set(STDLIB_MODULES) and printed.startswith("[")
        else:
            prompt = namespace["inputs"]["input_ids"]
            assert "xxbos" not in printed  # decoded as text
            assert printed.startswith(namespace["tokenizer"].decode(prompt[0], skip_special_tokens=True))


def test_shuffled_order_task_for_unlabelled_text():
    texts = [f"Sentence {i} has a few more words in it than that." for i in range(50)] + ["Too short.", "A b c."]
    task = shuffle_task(texts, seed=0)
    assert task.class_names == ["original", "shuffled"]
    rows = list(zip(task.train_texts + task.valid_texts, task.train_labels + task.valid_labels))
    assert len(rows) == 50 and {y for _, y in rows} == {0, 1}
    assert abs(sum(y for _, y in rows) - 25) <= 1  # half shuffled
    for text, label in rows:
        words = text.split()
        originals = [t for t in texts if sorted(t.split()) == sorted(words)]
        assert len(originals) == 1, text
        original = originals[0].split()
        assert sorted(words) == sorted(original) and words[0] == original[0] and words[-1] == original[-1]
        assert (words != original) == (label == 1)
    # the task draws its texts independently of the quickstart's train/validation split, so that validation texts
    # outside the task remain to measure the language model on
    many = [f"Text {i} holds some words in an order." for i in range(400)]
    _, valid = split(many)
    used = shuffle_task(many, seed=0, max_texts=200).used
    assert len(used) == 200 and any(t not in used for t in valid)  # with the split's random stream: none


def test_quickstart_ulmfit_on_a_labelled_file(tmp_path):
    """--data with --label-column: the ULMFiT stage classifies by the file's labels (--stages ulmfit alone)."""
    rows = [(f"The {w} sat on a {w} mat today.", "animal") for w in ("cat", "dog", "cow", "hen")] * 10 + \
           [(f"We {w} the data in a {w} way.", "code") for w in ("parse", "load", "save", "sort")] * 10
    with open(tmp_path / "data.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "topic"), *rows])
    status, printed = run_quickstart(["--threads", "1", "--data", str(tmp_path / "data.csv"), "--label-column",
                                      "topic", "--stages", "ulmfit", "--ulmfit-lm-epochs", "1",
                                      "--ulmfit-classifier-epochs", "2", "--ulmfit-emb-size", "16",
                                      "--ulmfit-hidden-size", "32", "--output", str(tmp_path / "out")])
    assert status == 0
    figures = sections(printed)["ULMFiT: AWD-LSTM language model and text classifier"]
    assert figures["task"] == "the 'topic' label of a text" and figures["classes"] == "2"
    assert "ELMo" not in printed and not (tmp_path / "out/elmo").exists()
    card = ModelCard.load(tmp_path / "out/ulmfit/classifier/README.md")
    assert "It tells the 'topic' label of a text." in card.text and "80 texts of `data.csv`" in card.text


def test_quickstart_label_column_needs_data(capsys):
    assert main(["quickstart", "--label-column", "topic"]) == 1
    assert "--label-column applies with --data" in capsys.readouterr().err


def test_quickstart_announces_each_stage_before_it_runs_and_logs_numbers(quickstart):
    lines = quickstart.printed.splitlines()

    def first(prefix: str) -> int:
        found = [i for i, line in enumerate(lines) if line.startswith(prefix)]
        assert found, f"no line starts with {prefix!r}"
        return found[0]

    titles = ["ELMo bidirectional LM", "ULMFiT: AWD-LSTM language model and text classifier", ONNX]
    previous = -1
    for n, title in enumerate(titles, 1):
        announced, done = first(f"-> stage {n}/3, {title}: "), first(f"== {title}")
        assert previous < announced < done, (title, previous, announced, done)
        previous = done
    # the Trainer's logs, as numbers, under each bar's label (the bars themselves go to stderr)
    for label in ("ELMo pretraining", "ULMFiT stage 1: LM pretraining", "ULMFiT stage 2: LM fine-tuning",
                  "ULMFiT stage 3: classifier"):
        logged = [line for line in lines if line.startswith(f"{label}, step ")]
        assert logged, f"no Trainer log line for {label!r}"
        assert re.search(r": .*\bloss \d+(\.\d+)?(e[-+]?\d+)?\b", logged[0]), logged[0]
    assert "'loss': '" not in quickstart.printed
    assert "ULMFiT stage 1: pretraining the language model on" in quickstart.printed  # the recipe's own log lines
