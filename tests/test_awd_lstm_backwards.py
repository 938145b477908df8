"""Backward AWD-LSTM models as fastai trains them (``TextBlock(..., backwards=True)``), against fastai 2.8.12's own
data in ../shared/fixtures/awd_lstm/fastai-backwards: each document's ids reversed on their own (``xxbos`` last)
before any batching or padding, the LM stream of the reversed documents in their original order, and each
direction's classifier giving fastai's logits."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from awd_lstm_testing import TF457_PYTHON, one_thread
from clean_process import BLOCK_HF_ELMO, run_child
from hf_elmo import AWDLSTMConfig, AWDLSTMForSequenceClassification, AWDLSTMTokenizer
from hf_elmo.conversion.fastai_awd_lstm import load_awd_lstm_weights, read_fastai_awd_lstm
from hf_elmo.training.data import LMStreamDataset

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared/fixtures/awd_lstm/fastai-backwards"
FILES = ("dataloaders.json", "clas_fwd.pth", "clas_bwd.pth", "ensemble_expected.pt", "config.json")
pytestmark = pytest.mark.skipif(not all((FIXTURE / f).is_file() for f in FILES),
                                reason=f"the fastai backwards fixtures are not at {FIXTURE} (../shared is beside the "
                                       "repository, not part of a fresh clone)")


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def data() -> dict:
    return json.loads((FIXTURE / "dataloaders.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(FIXTURE / "ensemble_expected.pt", weights_only=True)


def tokenizer(data: dict, direction: str) -> AWDLSTMTokenizer:
    return AWDLSTMTokenizer(itos=data["vocab"], backwards=direction == "bwd")


@pytest.mark.parametrize("direction", ["fwd", "bwd"])
def test_each_document_is_read_as_fastai_reads_it(data, direction):
    tok = tokenizer(data, direction)
    assert [tok(text)["input_ids"] for text in data["texts"]] == data[f"{direction}_ids"]
    if direction == "bwd":
        assert all(ids[-1] == tok.bos_token_id for ids in data["bwd_ids"])  # xxbos last
    for split in ("train", "valid"):
        rows = [i for i, valid in enumerate(data["is_valid"]) if valid == (split == "valid")]
        for key in ("lm", "clas"):
            assert [tok(data["texts"][i])["input_ids"] for i in rows] == data[key][f"{direction}_{split}_items"]
    # decode gives the text back, in the text's order, as the forward tokenizer decodes the forward ids
    forward = tokenizer(data, "fwd")
    for ids, fwd_ids in zip(data[f"{direction}_ids"], data["fwd_ids"]):
        text = tok.decode(ids, skip_special_tokens=True)
        assert text == forward.decode(fwd_ids, skip_special_tokens=True) and text.endswith((".", "!"))


@pytest.mark.parametrize("direction", ["fwd", "bwd"])
@pytest.mark.parametrize("split", ["train", "valid"])
def test_the_lm_stream_is_fastais(data, direction, split):
    lm = data["lm"]
    tok = tokenizer(data, direction)
    rows = [i for i, valid in enumerate(data["is_valid"]) if valid == (split == "valid")]
    documents = [tok(data["texts"][i])["input_ids"] for i in rows]
    stream = LMStreamDataset(documents, batch_size=lm["bs"], bptt=lm["seq_len"], jitter=False, shuffle=False)
    batches = list(stream.batches(0))
    assert [b["input_ids"].tolist() for b in batches] == lm[f"{direction}_{split}_batches_x"]
    assert [b["labels"][:, 1:].tolist() for b in batches] == lm[f"{direction}_{split}_batches_y"]


def classifier(data: dict, direction: str) -> AWDLSTMForSequenceClassification:
    clas = data["clas"]
    checkpoint = read_fastai_awd_lstm(FIXTURE / f"clas_{direction}.pth", vocab_size=len(data["vocab"]),
                                      bptt=clas["seq_len"], max_len=clas["max_len"])
    config = AWDLSTMConfig(**checkpoint.config_fields, backwards=direction == "bwd")
    model = AWDLSTMForSequenceClassification(config)
    load_awd_lstm_weights(model, checkpoint)
    return model.eval()


@pytest.mark.parametrize("direction", ["fwd", "bwd"])
def test_each_directions_classifier_gives_fastais_logits(data, expected, direction):
    model, tok = classifier(data, direction), tokenizer(data, direction)
    with torch.no_grad():
        alone = torch.cat([model(**tok(text, return_tensors="pt")).logits for text in data["texts"]])
        torch.testing.assert_close(alone, expected[f"{direction}_logits"], atol=1e-5, rtol=0)
        torch.testing.assert_close(alone.softmax(-1), expected[f"{direction}_probs"], atol=1e-5, rtol=0)
        # fastai's padded batches (Pad_Chunk: pad_first chunks of the reversed ids, padding not reversed) give each
        # document's logits too
        for batch in data["clas"][f"{direction}_train_batches_x"]:
            padded = model(input_ids=torch.tensor(batch)).logits
            for row, ids in zip(padded, batch):
                real = [i for i in ids if i != tok.pad_token_id]
                torch.testing.assert_close(row, model(input_ids=torch.tensor([real])).logits[0], atol=1e-5,
                                           rtol=0)


def test_backwards_is_saved_with_tokenizer_and_config(data, tmp_path):
    model, tok = classifier(data, "bwd"), tokenizer(data, "bwd")
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again = AWDLSTMTokenizer.from_pretrained(tmp_path)
    assert again.backwards and AWDLSTMConfig.from_pretrained(tmp_path).backwards
    assert again(data["texts"][0])["input_ids"] == data["bwd_ids"][0]
    with pytest.raises(ValueError, match="backwards must be True or False"):
        AWDLSTMTokenizer(itos=data["vocab"], backwards="yes")
    with pytest.raises(ValueError, match="backwards"):
        AWDLSTMConfig(backwards="true")


def test_converter_writes_a_backward_folder(data, tmp_path):
    """`convert-awd-lstm --backwards`: the folder's config and tokenizer read documents reversed, its card says so,
    and it gives fastai's backward logits through the Auto classes."""
    import pickle

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_elmo.cli import main

    vocab = tmp_path / "vocab.pkl"
    vocab.write_bytes(pickle.dumps(data["vocab"]))
    out = tmp_path / "bwd"
    assert main(["convert-awd-lstm", "--weights", str(FIXTURE / "clas_bwd.pth"), "--vocab", str(vocab),
                 "--output", str(out), "--bptt", "8", "--max-len", "24", "--backwards"]) == 0
    tok = AutoTokenizer.from_pretrained(out, trust_remote_code=True)
    model = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True).eval()
    assert tok.backwards and model.config.backwards
    assert "backward: each document is read reversed" in (out / "README.md").read_text(encoding="utf-8")
    expected = torch.load(FIXTURE / "ensemble_expected.pt", weights_only=True)
    with torch.no_grad():
        logits = model(**tok(data["texts"][3], return_tensors="pt")).logits[0]
    torch.testing.assert_close(logits, expected["bwd_logits"][3], atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------------------------------
# The forward + backward ensemble
# --------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ensemble(data):
    from hf_elmo import AWDLSTMEnsembleForSequenceClassification

    return AWDLSTMEnsembleForSequenceClassification.from_classifiers(classifier(data, "fwd"),
                                                                     classifier(data, "bwd")).eval()


@pytest.mark.parametrize("side", ["right", "left"])
def test_the_ensemble_averages_the_two_directions_probabilities(data, expected, ensemble, side):
    tok = tokenizer(data, "fwd")  # the ensemble reads the text's order and reverses for its backward member
    tok.padding_side = side
    with torch.no_grad():
        alone = torch.cat([ensemble(**tok(text, return_tensors="pt")).logits for text in data["texts"]])
        batch = ensemble(**tok(data["texts"], padding=True, return_tensors="pt"))
    torch.testing.assert_close(alone.softmax(-1), expected["ensemble_probs"], atol=1e-5, rtol=0)
    torch.testing.assert_close(batch.logits.softmax(-1), expected["ensemble_probs"], atol=1e-5, rtol=0)
    torch.testing.assert_close(batch.forward_logits, expected["fwd_logits"], atol=1e-5, rtol=0)
    torch.testing.assert_close(batch.backward_logits, expected["bwd_logits"], atol=1e-5, rtol=0)
    loss = ensemble(**tok(data["texts"], padding=True, return_tensors="pt"), labels=expected["labels"]).loss
    want = -expected["ensemble_probs"].log().gather(1, expected["labels"][:, None]).mean()
    torch.testing.assert_close(loss, want, atol=1e-5, rtol=0)


def test_the_ensemble_is_one_folder_for_the_auto_classes_and_pipelines(data, expected, ensemble, tmp_path):
    folder, child = tmp_path / "ensemble", tmp_path / "child"
    child.mkdir()
    from transformers import AutoModelForSequenceClassification, pipeline

    from hf_elmo import AWDLSTMEnsembleForSequenceClassification

    ensemble.config.id2label = dict(enumerate(data["clas"]["classes"]))
    ensemble.config.label2id = {c: i for i, c in enumerate(data["clas"]["classes"])}
    ensemble.save_pretrained(folder)
    tokenizer(data, "fwd").save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "awd_lstm_ensemble"
    assert config["auto_map"]["AutoModelForSequenceClassification"].endswith("AWDLSTMEnsembleForSequenceClassification")
    loaded = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert isinstance(loaded, AWDLSTMEnsembleForSequenceClassification)
    classify = pipeline("text-classification", model=str(folder), trust_remote_code=True, top_k=None)
    scores = classify([data["texts"][0]])[0]
    got = torch.tensor([next(s["score"] for s in scores if s["label"] == c) for c in data["clas"]["classes"]])
    torch.testing.assert_close(got, expected["ensemble_probs"][0], atol=1e-5, rtol=0)
    # where hf_elmo is not installed (transformers 4.57): the folder's own code, the same probabilities
    if TF457_PYTHON.exists():
        report = run_child(TF457_PYTHON, ENSEMBLE_CHILD, child, str(folder), data["texts"][0])
        assert report["class"] == "AWDLSTMEnsembleForSequenceClassification" and report["leaked"] == []
        torch.testing.assert_close(torch.tensor(report["probs"]), expected["ensemble_probs"][0], atol=1e-5, rtol=0)


ENSEMBLE_CHILD = BLOCK_HF_ELMO + textwrap.dedent(
    r'''
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder, text = sys.argv[1], sys.argv[2]
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        probs = model(**tokenizer(text, return_tensors="pt")).logits.softmax(-1)[0]
    leaked = sorted(m for m in sys.modules if m == "hf_elmo" or m.startswith("hf_elmo."))
    print(json.dumps({"class": type(model).__name__, "probs": probs.tolist(), "leaked": leaked}))
    '''
)


def test_two_classifiers_that_do_not_fit_together_are_refused(data):
    from hf_elmo import AWDLSTMEnsembleForSequenceClassification

    forward, backward = classifier(data, "fwd"), classifier(data, "bwd")
    with pytest.raises(ValueError, match="the backward member's config says backwards=False"):
        AWDLSTMEnsembleForSequenceClassification.from_classifiers(forward, forward)
    backward.config.num_labels = 2
    with pytest.raises(ValueError, match="the two classifiers differ in num_labels"):
        AWDLSTMEnsembleForSequenceClassification.from_classifiers(forward, backward)
    with pytest.raises(TypeError, match="must be an AWDLSTMForSequenceClassification"):
        AWDLSTMEnsembleForSequenceClassification.from_classifiers(forward, "not a folder" and object())
