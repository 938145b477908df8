"""Every pipeline a saved folder's task implies runs with ``trust_remote_code=True`` and gives the model's own
numbers: ELMo's feature-extraction, text-classification and token-classification, AWD-LSTM's feature-extraction,
text-classification and text-generation, on tiny seeded random models saved as a user's folders are (nothing is
downloaded); and once more under transformers 4.57, whose pipelines differ (text-generation cuts the decoded text
at the decoded prompt's length where 5.x appends the decoded continuation to the prompt), as remote code only."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import pipeline

import awd_lstm_testing
import conftest
from clean_process import BLOCK_HF_ELMO, run_child
from hf_elmo import (
    AWDLSTMForLanguageModeling,
    AWDLSTMForSequenceClassification,
    AWDLSTMModel,
    AWDLSTMTokenizer,
    ElmoForSequenceClassification,
    ElmoForTokenClassification,
    ElmoModel,
    ElmoTokenizer,
)
from hf_elmo.models.elmo.tokenization_elmo import CUSTOM_PIPELINES

TF457_PYTHON = Path(__file__).resolve().parents[1] / ".venv-tf457/bin/python"
SENTENCE = "The cat sat in New York."
AWD_TEXTS = ["The world is big.", "The world maintains its rules, the world is round!", "Hello there, world."]
PROMPT = "the world"
CONTINUATION = "maintains"  # the word the biased LM below always generates
TAGS = {0: "O", 1: "B-PLACE", 2: "I-PLACE"}


def _save(model: torch.nn.Module, tokenizer, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Each task's folder: ELMo without a vocabulary, AWD-LSTM with a vocabulary built from AWD_TEXTS."""
    root = tmp_path_factory.mktemp("pipelines")
    elmo = ElmoTokenizer()
    awd = AWDLSTMTokenizer.from_texts(AWD_TEXTS, min_freq=1)
    torch.manual_seed(0)
    tagger = ElmoForTokenClassification(conftest.tiny_config(
        num_labels=3, id2label=TAGS, label2id={v: k for k, v in TAGS.items()}))
    assert tagger.config.custom_pipelines == CUSTOM_PIPELINES  # the classifier declares its pipeline itself
    awd_config = awd_lstm_testing.tiny_config(vocab_size=len(awd.itos))
    lm = awd_lstm_testing.randomize_(AWDLSTMForLanguageModeling(awd_config), seed=3).eval()
    with torch.no_grad():  # an LM that always says CONTINUATION next, so that the generated text is known
        lm.decoder.bias.zero_()
        lm.decoder.bias[awd.convert_tokens_to_ids(CONTINUATION)] = 100.0
    return {
        "elmo-feature-extraction": _save(conftest.randomize_(ElmoModel(conftest.tiny_config()), 1), elmo,
                                         root / "elmo-base"),
        "elmo-text-classification": _save(conftest.randomize_(ElmoForSequenceClassification(
            conftest.tiny_config(num_labels=2)), 2), elmo, root / "elmo-seqcls"),
        "elmo-token-classification": _save(conftest.randomize_(tagger, 3), elmo, root / "elmo-tokcls"),
        "awd-feature-extraction": _save(awd_lstm_testing.randomize_(AWDLSTMModel(awd_config), seed=1), awd,
                                        root / "awd-base"),
        "awd-text-classification": _save(awd_lstm_testing.randomize_(AWDLSTMForSequenceClassification(
            awd_lstm_testing.tiny_config(vocab_size=len(awd.itos), num_labels=3)), seed=2).eval(), awd,
            root / "awd-classifier"),
        "awd-text-generation": _save(lm, awd, root / "awd-lm"),
    }


def _direct(folder: Path, auto: str, text: str) -> tuple:
    """The folder's model and tokenizer loaded as the pipeline loads them, and the model's outputs on ``text``."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = getattr(transformers, auto).from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        out = model(**tokenizer(text, return_tensors="pt"))
    return tokenizer, model, out


@pytest.mark.parametrize("family", ["elmo", "awd"])
def test_feature_extraction(folders, family):
    folder = folders[f"{family}-feature-extraction"]
    text = SENTENCE if family == "elmo" else AWD_TEXTS[1]
    got = pipeline("feature-extraction", model=str(folder), trust_remote_code=True)(text)
    _, _, out = _direct(folder, "AutoModel", text)
    np.testing.assert_allclose(np.asarray(got), out[0].numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", ["elmo", "awd"])
def test_text_classification(folders, family):
    folder = folders[f"{family}-text-classification"]
    texts = [SENTENCE, "Another, shorter one."] if family == "elmo" else AWD_TEXTS
    classify = pipeline("text-classification", model=str(folder), trust_remote_code=True, top_k=None)
    for text, got in zip(texts, classify(texts)):
        _, model, out = _direct(folder, "AutoModelForSequenceClassification", text)
        probs = out.logits.softmax(-1)[0]
        want = {model.config.id2label[i]: float(p) for i, p in enumerate(probs)}
        assert {r["label"]: pytest.approx(want[r["label"]], abs=1e-6) for r in got} == want


def test_elmo_token_classification(folders):
    folder = folders["elmo-token-classification"]
    tagger = pipeline("token-classification", model=str(folder), trust_remote_code=True)
    assert type(tagger).__name__ == "ElmoTokenClassificationPipeline"
    entities = tagger(SENTENCE)
    tokenizer, model, out = _direct(folder, "AutoModelForTokenClassification", SENTENCE)
    words = tokenizer.tokenize(SENTENCE)
    probs = out.logits.softmax(-1)[0]
    want = []
    for position, word in enumerate(words, start=1):  # position 0 is <S>
        label = model.config.id2label[int(probs[position].argmax())]
        if label != "O":
            want.append((position, word, label, float(probs[position].max())))
    assert [(e["index"], e["word"], e["entity"]) for e in entities] == [w[:3] for w in want]
    assert [e["score"] for e in entities] == pytest.approx([w[3] for w in want], abs=1e-6)
    for e in entities:  # every entity points at its word in the sentence
        assert SENTENCE[e["start"]:e["end"]] == e["word"]
    grouped = pipeline("token-classification", model=str(folder), trust_remote_code=True,
                       aggregation_strategy="simple")(SENTENCE)
    assert all(SENTENCE[g["start"]:g["end"]].replace(" ", "") == g["word"].replace(" ", "") for g in grouped)
    batched = tagger([SENTENCE, "A dog barked loudly!"], batch_size=2)  # padding with the tokenizer's pad id
    assert batched[0] == entities


def test_awd_text_generation(folders):
    folder = folders["awd-text-generation"]
    generate = pipeline("text-generation", model=str(folder), trust_remote_code=True)
    got = generate(PROMPT, max_new_tokens=3, do_sample=False)[0]["generated_text"]
    assert got == f"{PROMPT} {CONTINUATION} {CONTINUATION} {CONTINUATION}"
    capitalised = generate("The World", max_new_tokens=1, do_sample=False)[0]["generated_text"]
    assert capitalised == f"The World {CONTINUATION}"
    new_only = generate(PROMPT, max_new_tokens=2, do_sample=False, return_full_text=False)[0]["generated_text"]
    assert new_only == f" {CONTINUATION} {CONTINUATION}"


# ------------------------------------------------------------------------------------------------------------------
# The same pipelines under transformers 4.57, as remote code
# ------------------------------------------------------------------------------------------------------------------
CHILD = BLOCK_HF_ELMO + textwrap.dedent(
    r'''
    import transformers
    from transformers import pipeline

    spec = json.loads(Path(sys.argv[1]).read_text())
    f = spec["folders"]
    report = {"transformers": transformers.__version__}
    report["features"] = pipeline("feature-extraction", model=f["elmo-feature-extraction"], trust_remote_code=True)(
        spec["sentence"])
    report["classes"] = pipeline("text-classification", model=f["awd-text-classification"], trust_remote_code=True,
                                 top_k=None)(spec["awd_texts"])
    tagger = pipeline("token-classification", model=f["elmo-token-classification"], trust_remote_code=True)
    report["tagger"] = type(tagger).__name__
    report["entities"] = [{k: (float(v) if k == "score" else v) for k, v in e.items()} for e in tagger(spec["sentence"])]
    report["generated"] = pipeline("text-generation", model=f["awd-text-generation"], trust_remote_code=True)(
        spec["prompt"], max_new_tokens=3, do_sample=False)[0]["generated_text"]
    report["leaked"] = sorted(m for m in sys.modules if m == "hf_elmo" or m.startswith("hf_elmo."))
    print(json.dumps(report))
    '''
)


def test_the_pipelines_under_transformers_4_57(folders, tmp_path):
    if not TF457_PYTHON.exists():
        pytest.skip(".venv-tf457 not found: the set-up script (.ci/setup-tests) builds the transformers 4.57 env")
    spec = {"folders": {k: str(v) for k, v in folders.items()}, "sentence": SENTENCE, "awd_texts": AWD_TEXTS,
            "prompt": PROMPT}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    report = run_child(TF457_PYTHON, CHILD, tmp_path, str(tmp_path / "spec.json"))
    assert report["transformers"].startswith("4.57") and report["leaked"] == []
    here = pipeline("feature-extraction", model=str(folders["elmo-feature-extraction"]), trust_remote_code=True)
    np.testing.assert_allclose(np.asarray(report["features"]), np.asarray(here(SENTENCE)), atol=1e-5, rtol=0)
    classify = pipeline("text-classification", model=str(folders["awd-text-classification"]),
                        trust_remote_code=True, top_k=None)
    for got, want in zip(report["classes"], classify(AWD_TEXTS)):
        assert [g["label"] for g in got] == [w["label"] for w in want]
        assert [g["score"] for g in got] == pytest.approx([w["score"] for w in want], abs=1e-5)
    assert report["tagger"] == "ElmoTokenClassificationPipeline"
    tagger = pipeline("token-classification", model=str(folders["elmo-token-classification"]),
                      trust_remote_code=True)
    assert [(e["index"], e["word"], e["entity"], e["start"], e["end"]) for e in report["entities"]] == [
        (e["index"], e["word"], e["entity"], e["start"], e["end"]) for e in tagger(SENTENCE)]
    assert report["generated"] == f"{PROMPT} {CONTINUATION} {CONTINUATION} {CONTINUATION}"


# ------------------------------------------------------------------------------------------------------------------
# The fixture folders, converted as a user converts the published weights
# ------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fixture_folders(tmp_path_factory) -> dict[str, Path]:
    """The bilm-tf test model and fastai's LM and classifier converted to folders (skipped without the fixtures)."""
    from hf_elmo.conversion.allennlp_elmo import convert_allennlp_elmo
    from hf_elmo.conversion.fastai_awd_lstm import convert_fastai_awd_lstm

    conftest.require_elmo_fixture()
    if not awd_lstm_testing.fixture_available():
        pytest.skip(awd_lstm_testing.SKIP_REASON)
    root = tmp_path_factory.mktemp("fixture-folders")
    fastai = awd_lstm_testing.FASTAI_FIXTURE
    cfg = awd_lstm_testing.fixture_config()
    return {
        "elmo": convert_allennlp_elmo(conftest.ELMO_FIXTURE / "options.json", conftest.ELMO_FIXTURE / "lm_weights.hdf5",
                                      root / "elmo"),
        "lm": convert_fastai_awd_lstm(fastai / "lm_state_dict.pth", fastai / "vocab.pkl", root / "lm"),
        "classifier": convert_fastai_awd_lstm(fastai / "clas_state_dict.pth", fastai / "vocab.pkl",
                                              root / "classifier", bptt=cfg["bptt"], max_len=cfg["max_len"]),
    }


def test_fixture_folders_in_their_pipelines(fixture_folders):
    text = "Elk calling -- a skill that hunters perfected long ago -- is now its own sport ."
    features = pipeline("feature-extraction", model=str(fixture_folders["elmo"]), trust_remote_code=True)(text)
    _, _, out = _direct(fixture_folders["elmo"], "AutoModel", text)
    np.testing.assert_allclose(np.asarray(features), out[0].numpy(), atol=1e-6, rtol=0)

    classes = pipeline("text-classification", model=str(fixture_folders["classifier"]), trust_remote_code=True,
                       top_k=None)([text])[0]
    _, model, out = _direct(fixture_folders["classifier"], "AutoModelForSequenceClassification", text)
    probs = out.logits.softmax(-1)[0]
    assert {c["label"]: c["score"] for c in classes} == pytest.approx(
        {model.config.id2label[i]: float(p) for i, p in enumerate(probs)}, abs=1e-6)

    prompt = "The U.S. Centers for Disease Control"
    generated = pipeline("text-generation", model=str(fixture_folders["lm"]), trust_remote_code=True)(
        prompt, max_new_tokens=6, do_sample=False)[0]["generated_text"]
    tokenizer, model, _ = _direct(fixture_folders["lm"], "AutoModelForCausalLM", prompt)
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        full = model.generate(ids, max_new_tokens=6, do_sample=False)[0]
    continuation = tokenizer.decode(full[ids.shape[1]:], skip_special_tokens=True)
    assert generated == prompt + continuation
    words = tokenizer.convert_ids_to_tokens(full[ids.shape[1]:].tolist())
    if words[0].isalnum() or words[0] in ("xxmaj", "xxup"):
        assert continuation.startswith(" ") and not continuation.startswith("  ")  # the word after the prompt's
