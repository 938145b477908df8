"""SentencePiece AWD-LSTM / ULMFiT: fastai's ``SentencePieceTokenizer`` (its rules, then SentencePiece, then fastai's
vocabulary), the conversion of a fastai SentencePiece model, training one from texts for the ULMFiT recipe, ONNX.

The reference is fastai 2.8.12 with sentencepiece 0.2.3 (../shared/fixtures/awd_lstm/fastai-sentencepiece): 53 awkward
texts with the string SentencePiece was given, fastai's tokens and fastai's ids; the SentencePiece model and fastai's
vocabulary trained on the fixture's multilingual corpus; an LM and a classifier (heads without bias, bptt 8, max_len
24) with their logits.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from awd_lstm_testing import TF457_PYTHON, one_thread
from clean_process import BLOCK_HF_ELMO, run_child
from hf_elmo.conversion.fastai_awd_lstm import convert_fastai_awd_lstm
from hf_elmo.models.awd_lstm import AWDLSTMTokenizer
from hf_elmo.models.awd_lstm.tokenization_awd_lstm import (
    SPECIAL_TOKENS,
    apply_rules,
    load_sentencepiece,
    sentencepiece_vocab_size,
)

SPM_FIXTURE = Path(__file__).resolve().parents[1].parent / "shared/fixtures/awd_lstm/fastai-sentencepiece"
FIXTURE_FILES = ("spm.model", "vocab.json", "tokenization.json", "config.json", "corpus.txt.gz", "lm.pth",
                 "lm_expected.pt", "clas.pth", "clas_expected.pt")
ATOL = 1e-5  # float32 against fastai's own outputs (the fixture's files reproduce to 1e-6)
requires_fixture = pytest.mark.skipif(
    not all((SPM_FIXTURE / name).is_file() for name in FIXTURE_FILES),
    reason=f"the fastai SentencePiece fixtures are not at {SPM_FIXTURE} (../shared is beside the repository, not part "
           "of a fresh clone)")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return json.loads((SPM_FIXTURE / "tokenization.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def fixture_config() -> dict:
    return json.loads((SPM_FIXTURE / "config.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tokenizer() -> AWDLSTMTokenizer:
    return AWDLSTMTokenizer(vocab_file=str(SPM_FIXTURE / "vocab.json"), spm_file=str(SPM_FIXTURE / "spm.model"))


def expected(name: str) -> dict:
    return torch.load(SPM_FIXTURE / name, map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------------------------------------------------
# The tokenizer against fastai's
# --------------------------------------------------------------------------------------------------------------------
@requires_fixture
def test_every_text_gives_fastais_string_tokens_and_ids(records, tokenizer):
    assert len(records) == 53
    for record in records:
        text = record["text"]
        assert apply_rules(text) == record["after_rules"], text
        assert tokenizer.tokenize(text) == record["tokens"], text
        assert tokenizer(text)["input_ids"] == record["ids"], text
    batch = tokenizer([r["text"] for r in records], padding=True)
    width = max(len(r["ids"]) for r in records)
    for record, ids, mask in zip(records, batch["input_ids"], batch["attention_mask"]):
        n = len(record["ids"])
        assert ids[:n] == record["ids"] and set(ids[n:]) <= {1} and mask == [1] * n + [0] * (width - n)


@requires_fixture
def test_ids_index_fastais_vocabulary_not_sentencepieces(records, tokenizer):
    """``▁xxbos`` is an ordinary vocabulary entry (11), ``xxbos`` (2) never comes out; pieces the vocabulary lacks
    (``▁xxwrep``, rare characters) are 0; SentencePiece's own ids differ."""
    assert tokenizer.convert_tokens_to_ids(["▁xxbos", "▁xxmaj", "▁xxup", "▁xxrep", "xxbos"]) == [11, 12, 18, 91, 2]
    assert tokenizer.convert_tokens_to_ids(["▁xxwrep", "▁xxunk", "xxfake"]) == [0, 0, 0]
    every_id = {i for r in records for i in tokenizer(r["text"])["input_ids"]}
    assert not every_id & set(range(1, 9)) and 0 in every_id
    assert any(r["sp_ids"] != r["ids"] for r in records)
    assert tokenizer.document_start_id == 11 and tokenizer.vocab_size == len(tokenizer) == 1360


@requires_fixture
def test_training_on_the_corpus_gives_fastais_sentencepiece_model_and_vocabulary(fixture_config):
    """from_texts(sentencepiece=True) trains as fastai's SentencePieceTokenizer does: the same pieces with the same
    scores, and fastai's vocabulary (min_freq 3, xxfake padding) entry for entry."""
    texts = gzip.decompress((SPM_FIXTURE / "corpus.txt.gz").read_bytes()).decode("utf-8").split("\n")[:-1]
    assert len(texts) == fixture_config["corpus_lines"]
    trained = AWDLSTMTokenizer.from_texts(texts, sentencepiece=True, vocab_size=fixture_config["vocab_sz_requested"])
    fastai_sp = load_sentencepiece(SPM_FIXTURE / "spm.model")
    pieces = [(trained.sp_model.id_to_piece(i), trained.sp_model.get_score(i))
              for i in range(trained.sp_model.get_piece_size())]
    assert pieces == [(fastai_sp.id_to_piece(i), fastai_sp.get_score(i)) for i in range(fastai_sp.get_piece_size())]
    assert trained.itos == json.loads((SPM_FIXTURE / "vocab.json").read_text(encoding="utf-8"))


def test_sentencepiece_size_rule_is_fastais():
    """_get_vocab_sz: a quarter of the distinct words, up to a multiple of 8, at least 29, at most max_vocab_sz."""
    assert sentencepiece_vocab_size([" ".join(f"w{i}" for i in range(400))]) == 104  # 100 → 104
    assert sentencepiece_vocab_size(["a b c", "a d"]) == 29
    assert sentencepiece_vocab_size([" ".join(f"w{i}" for i in range(1000))], max_vocab_size=50) == 50


@pytest.fixture(scope="module")
def small_sp_tokenizer() -> AWDLSTMTokenizer:
    """A SentencePiece tokenizer trained here on a few texts (no fixture needed)."""
    texts = [f"The {w} of Paris is not the {w} of London, said Mr. {n}." for w in ("river", "bridge", "tower", "park")
             for n in ("Smith", "Jones", "Brown")] + ["ALL CAPS WORDS and sooooo many letters!"] * 3
    return AWDLSTMTokenizer.from_texts(texts, sentencepiece=True, vocab_size=80, min_freq=1)


def test_from_texts_trains_a_sentencepiece_tokenizer(small_sp_tokenizer):
    tok = small_sp_tokenizer
    assert tok.sp_model is not None and tok.itos[:9] == list(SPECIAL_TOKENS) and len(tok.itos) % 8 == 0
    assert tok.sp_model.get_piece_size() <= 80 and tok.sp_model.id_to_piece(2) == "▁xxbos"  # a soft limit, as fastai asks
    tokens = tok.tokenize("The river of London.")
    assert tokens[0] == "▁xxbos" and tokens[1] == "▁xxmaj" and all(isinstance(t, str) for t in tokens)
    assert 0 not in tok("The river of London.")["input_ids"]
    with pytest.raises(ValueError, match="sentencepiece=True"):
        AWDLSTMTokenizer.from_texts(["a b c"], vocab_size=100)
    with pytest.raises(ValueError, match="SentencePiece could not be trained"):
        AWDLSTMTokenizer.from_texts(["a b c"], sentencepiece=True, vocab_size=3)


@pytest.mark.parametrize("text", ["The river of Paris is not the tower of London, said Mr. Smith.",
                                  "ALL CAPS WORDS and sooooo many letters!", "Mr. Brown"])
def test_decode_gives_the_text_back(small_sp_tokenizer, text):
    ids = small_sp_tokenizer(text)["input_ids"]
    assert small_sp_tokenizer.decode(ids, skip_special_tokens=True) == text.replace("sooooo", "s ooooo")
    # without skip_special_tokens: the pieces as the model reads them, joined (the string SentencePiece was given)
    assert small_sp_tokenizer.decode(ids) == " ".join(apply_rules(text).split())


@requires_fixture
def test_decode_of_the_fixture(tokenizer, records):
    """Case and repetition rules undone; an unknown piece (id 0) leaves its word out; a continuation keeps the space
    its first piece stands for."""
    decoded = {r["text"]: tokenizer.decode(r["ids"], skip_special_tokens=True) for r in records}
    for text in ("Hello world.", "THIS IS ALL CAPS TEXT", "Die Datei konnte nicht geöffnet werden: Zugriff verweigert.",
                 "Impossible d'ouvrir le fichier « données.txt » : permission refusée.", "", "a"):
        assert decoded[text] == text
    assert tokenizer.decode(tokenizer("naïve")["input_ids"], skip_special_tokens=True) == "na ve"  # "ï": id 0
    assert decoded["ﬁnd the ﬂow"] == "find the flow"  # NFKC
    world = tokenizer("Hello world")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(world) == ["▁xxbos", "▁xxmaj", "▁", "h", "el", "lo", "▁", "w", "or", "l", "d"]
    assert tokenizer.decode(world[6:], skip_special_tokens=True) == " world"  # "▁": a new word
    assert tokenizer.decode(world[3:], skip_special_tokens=True) == "hello world"  # inside a word: no space
    assert tokenizer.convert_tokens_to_string(["▁xxmaj", "▁paris", "▁xxup", "▁nyc"]) == "Paris NYC"


@requires_fixture
def test_backwards_reads_each_document_reversed(tokenizer, records):
    backward = AWDLSTMTokenizer(vocab_file=str(SPM_FIXTURE / "vocab.json"), spm_file=str(SPM_FIXTURE / "spm.model"),
                                backwards=True)
    for record in records[:20]:
        assert backward.tokenize(record["text"]) == record["tokens"][::-1]
        ids = backward(record["text"])["input_ids"]
        assert ids == record["ids"][::-1]
        assert backward.decode(ids, skip_special_tokens=True) == tokenizer.decode(record["ids"],
                                                                                  skip_special_tokens=True)


@requires_fixture
def test_special_tokens_mask_marks_the_marker_pieces(tokenizer):
    ids = tokenizer("Hello WORLD")["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    mask = tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True)
    assert [t for t, m in zip(tokens, mask) if m] == ["▁xxbos", "▁xxmaj", "▁xxup"]


def test_bad_sentencepiece_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.model"):
        AWDLSTMTokenizer(spm_file=str(tmp_path / "nothing.model"))
    bad = tmp_path / "spm.model"
    bad.write_text('["not", "a", "model"]')
    with pytest.raises(ValueError, match="spm.model is not a SentencePiece model"):
        AWDLSTMTokenizer(spm_file=str(bad))


@requires_fixture
def test_saved_folder_round_trips_and_loads_as_remote_code_under_4_57(tokenizer, records, tmp_path):
    import hf_elmo  # noqa: F401  (registers the tokenizer, so that the folder carries its code)

    tokenizer.save_pretrained(tmp_path / "tok")
    assert {"spm.model", "vocab.json", "tokenization_awd_lstm.py"} <= {p.name for p in (tmp_path / "tok").iterdir()}
    assert (tmp_path / "tok/spm.model").read_bytes() == tokenizer.sp_model.serialized_model_proto()
    assert "spm_file" not in json.loads((tmp_path / "tok/tokenizer_config.json").read_text())
    loaded = AutoTokenizer.from_pretrained(tmp_path / "tok", trust_remote_code=True)
    texts = [r["text"] for r in records]
    assert loaded.sp_model is not None and [loaded(t)["input_ids"] for t in texts] == [r["ids"] for r in records]
    if not TF457_PYTHON.exists():
        pytest.skip(".venv-tf457 not found: the set-up script builds the transformers 4.57 environment")
    child = BLOCK_HF_ELMO + (
        "import transformers\n"
        "from transformers import AutoTokenizer\n"
        "texts = json.loads(Path(sys.argv[2]).read_text())\n"
        "tok = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
        "ids = [tok(t)['input_ids'] for t in texts]\n"
        "print(json.dumps({'v': transformers.__version__, 'ids': ids, 'blocked': BLOCKED,\n"
        "                  'decoded': tok.decode(ids[-1], skip_special_tokens=True)}))\n")
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    report = run_child(TF457_PYTHON, child, tmp_path, str(tmp_path / "tok"), str(tmp_path / "texts.json"))
    assert report["v"].startswith("4.57") and not report["blocked"]
    assert report["ids"] == [r["ids"] for r in records]
    assert report["decoded"] == tokenizer.decode(records[-1]["ids"], skip_special_tokens=True)


# --------------------------------------------------------------------------------------------------------------------
# Conversion: fastai's LM and classifier logits
# --------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def converted(tmp_path_factory, fixture_config) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spm-awd")
    spm = SPM_FIXTURE / "spm.model"
    return {
        "lm": convert_fastai_awd_lstm(SPM_FIXTURE / "lm.pth", SPM_FIXTURE / "vocab.json", root / "lm",
                                      spm_model=spm),
        "clas": convert_fastai_awd_lstm(SPM_FIXTURE / "clas.pth", SPM_FIXTURE / "vocab.json", root / "clas",
                                        spm_model=spm, bptt=fixture_config["clas_seq_len"],
                                        max_len=fixture_config["clas_max_len"]),
    }


@requires_fixture
def test_the_lm_stream_is_fastais(tokenizer, records, fixture_config):
    """LMDataLoader(bs=3, seq_len=8) over the documents' ids: row r of the stream starts at r·374."""
    lm = expected("lm_expected.pt")
    stream = [i for r in records for i in tokenizer(r["text"])["input_ids"]]
    bs, bptt = fixture_config["lm_bs"], fixture_config["lm_seq_len"]
    row = (len(stream) - 1) // bs
    for k, (x, y) in enumerate(((lm["x1"], lm["y1"]), (lm["x2"], lm["y2"]))):
        starts = [r * row + k * bptt for r in range(bs)]
        assert x.tolist() == [stream[s: s + bptt] for s in starts]
        assert y.tolist() == [stream[s + 1: s + 1 + bptt] for s in starts]


@requires_fixture
def test_converted_language_model_gives_fastais_logits(converted):
    lm = expected("lm_expected.pt")
    model = AutoModelForCausalLM.from_pretrained(converted["lm"], trust_remote_code=True).eval()
    assert model.config.bos_token_id == 11  # "▁xxbos", the piece every document starts with
    with torch.no_grad():
        call1 = model(lm["x1"], use_cache=True)
        call2 = model(lm["x2"], state=call1.state, use_cache=True)  # fastai's stateful second call
        reset = model(lm["x2"])  # after lm.reset()
    assert float((call1.logits - lm["logits_call1"]).abs().max()) <= ATOL
    assert float((call2.logits - lm["logits_call2_stateful"]).abs().max()) <= ATOL
    assert float((reset.logits - lm["logits_call2_after_reset"]).abs().max()) <= ATOL
    assert float((call1.raw_output - lm["last_layer_output_call1"]).abs().max()) <= ATOL
    for (h, c), want in zip(call2.state, lm["hidden_after_call2"]):
        assert float((h - want[0]).abs().max()) <= ATOL and float((c - want[1]).abs().max()) <= ATOL
    assert float((call2.logits - reset.logits).abs().max()) > 1e-3  # the state matters


@requires_fixture
def test_converted_classifier_gives_fastais_logits_per_document(converted, records):
    clas = expected("clas_expected.pt")
    model = AutoModelForSequenceClassification.from_pretrained(converted["clas"], trust_remote_code=True).eval()
    tok = AutoTokenizer.from_pretrained(converted["clas"], trust_remote_code=True)
    assert model.config.classifier_bias is False and (model.config.bptt, model.config.max_len) == (8, 24)
    for i, record in enumerate(records):
        ids = tok(record["text"], return_tensors="pt")["input_ids"]
        assert ids[0].tolist() == clas["ids"][i].tolist(), record["text"]
        with torch.no_grad():
            logits = model(ids).logits[0]
        assert float((logits - clas["logits"][i]).abs().max()) <= ATOL, record["text"]
    # a padded batch gives each document its own logits
    batch = tok([r["text"] for r in records[40:]], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert float((logits - clas["logits"][40:]).abs().max()) <= ATOL


@requires_fixture
def test_conversion_script_and_card(tmp_path):
    from hf_elmo.cli import main

    status = main(["convert-awd-lstm", "--weights", str(SPM_FIXTURE / "clas.pth"), "--vocab",
                   str(SPM_FIXTURE / "vocab.json"), "--spm-model", str(SPM_FIXTURE / "spm.model"), "--bptt", "8",
                   "--max-len", "24", "--output", str(tmp_path / "out")])
    assert status == 0
    assert (tmp_path / "out/spm.model").is_file()
    card = (tmp_path / "out/README.md").read_text(encoding="utf-8")
    assert "SentencePieceTokenizer" in card and "`spm.model`" in card and "spaCy" not in card
    assert "the vocabulary\nas a JSON list" in card and "unpickler" not in card  # no pickle was read
    assert main(["convert-awd-lstm", "--weights", str(SPM_FIXTURE / "clas.pth"), "--vocab",
                 str(SPM_FIXTURE / "vocab.json"), "--spm-model", str(tmp_path / "missing.model"), "--output",
                 str(tmp_path / "out2")]) != 0
    assert not (tmp_path / "out2").exists()


# --------------------------------------------------------------------------------------------------------------------
# The ULMFiT recipe with a SentencePiece tokenizer trained from the texts
# --------------------------------------------------------------------------------------------------------------------
def _tiny_task() -> tuple[list[str], list[int]]:
    import random

    rng = random.Random(0)
    words = (["sunny", "warm", "bright", "clear"], ["rainy", "cold", "grey", "windy"])
    texts, labels = [], []
    for _ in range(24):
        label = rng.randrange(2)
        texts.append(" ".join(rng.choice(words[label] + ["the", "day", "was", "and"]) for _ in range(8)).capitalize()
                     + ".")
        labels.append(label)
    return texts, labels


def test_ulmfit_command_with_a_sentencepiece_tokenizer(tmp_path):
    """hf-elmo ulmfit --tokenizer sentencepiece: the three stages run, the saved folders hold the SentencePiece
    model, load back with the Auto classes and give the trained classifier's logits."""
    from hf_elmo.cli import main

    texts, labels = _tiny_task()
    with open(tmp_path / "train.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *zip(texts, labels)])
    (tmp_path / "pretrain.txt").write_text("\n".join(texts), encoding="utf-8")
    sizes = ["--emb-size", "8", "--hidden-size", "12", "--num-layers", "2", "--bptt", "8", "--batch-size", "4",
             "--pretrain-epochs", "1", "--lm-epochs", "1", "--classifier-epochs", "3", "--threads", "1"]
    status = main(["ulmfit", "--train", str(tmp_path / "train.csv"), "--scratch", "--pretrain-data",
                   str(tmp_path / "pretrain.txt"), "--tokenizer", "sentencepiece", "--spm-vocab-size", "60",
                   "--min-freq", "1", *sizes, "--output", str(tmp_path / "out")])
    assert status == 0
    metrics = json.loads((tmp_path / "out/metrics.json").read_text())
    assert {"stage 1 lm train loss", "stage 2 lm train loss", "stage 3 classifier train loss"} <= set(metrics)
    for name in ("language_model", "classifier"):
        assert (tmp_path / "out" / name / "spm.model").is_file()
        assert "SentencePieceTokenizer" in (tmp_path / "out" / name / "README.md").read_text(encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(tmp_path / "out/classifier", trust_remote_code=True)
    assert tok.sp_model is not None and tok.sp_model.get_piece_size() <= 60
    lm = AutoModelForCausalLM.from_pretrained(tmp_path / "out/language_model", trust_remote_code=True)
    assert lm.config.bos_token_id == tok.document_start_id == tok.convert_tokens_to_ids("▁xxbos") > 8
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out/classifier",
                                                               trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(**tok(texts[:3], padding=True, return_tensors="pt")).logits
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()
    assert main(["ulmfit", "--train", str(tmp_path / "train.csv"), "--scratch", "--spm-vocab-size", "60",
                 "--output", str(tmp_path / "bad")]) != 0


def test_ulmfit_from_texts_round_trips_save_and_load(tmp_path):
    """run_ulmfit with a SentencePiece tokenizer trained from the texts: the saved folders reload with the Auto
    classes (remote code) and give the trained models' ids and outputs."""
    from hf_elmo.training.ulmfit import run_ulmfit, save_ulmfit_folders
    from hf_elmo.training.ulmfit_settings import StageSettings, UlmfitSettings

    texts, labels = _tiny_task()
    one = StageSettings(epochs=1, batch_size=4)
    settings = UlmfitSettings(pretraining=one, lm_finetuning=one, classifier=StageSettings(epochs=2, batch_size=4),
                              bptt=8, min_freq=1)
    result = run_ulmfit(texts[:16], labels[:16], texts[16:], labels[16:], pretraining_texts=texts, settings=settings,
                        scratch_config=dict(emb_size=8, hidden_size=12, num_layers=2),
                        tokenizer_options={"sentencepiece": True, "vocab_size": 60})
    assert result.tokenizer.sp_model is not None and "valid accuracy" in result.metrics
    folders = save_ulmfit_folders(result, tmp_path, data="24 weather sentences")
    tok = AutoTokenizer.from_pretrained(folders["classifier"], trust_remote_code=True)
    batch = tok(texts[16:], padding=True, return_tensors="pt")
    assert torch.equal(batch["input_ids"], result.tokenizer(texts[16:], padding=True, return_tensors="pt")["input_ids"])
    classifier = AutoModelForSequenceClassification.from_pretrained(folders["classifier"],
                                                                    trust_remote_code=True).eval()
    lm = AutoModelForCausalLM.from_pretrained(folders["language_model"], trust_remote_code=True).eval()
    with torch.no_grad():
        assert torch.allclose(classifier(**batch).logits, result.classifier.eval()(**batch).logits, atol=1e-6)
        assert torch.allclose(lm(**batch).logits, result.language_model.eval()(**batch).logits, atol=1e-6)
    # fine-tuning the saved LM again: its SentencePiece model comes with it (and tokenizer_options are refused)
    again = run_ulmfit(texts, labels, pretrained=folders["language_model"], settings=settings)
    assert again.tokenizer.sp_model.serialized_model_proto() == tok.sp_model.serialized_model_proto()
    with pytest.raises(ValueError, match="brings its own"):
        run_ulmfit(texts, labels, pretrained=folders["language_model"], settings=settings,
                   tokenizer_options={"sentencepiece": True})


def test_fine_tuning_a_sentencepiece_lm_keeps_its_sentencepiece_model(small_sp_tokenizer):
    """Vocabulary adaptation (a pretrained LM on the task's texts) renumbers the pieces of the same SentencePiece
    model and moves bos_token_id with "▁xxbos"."""
    from hf_elmo import AWDLSTMConfig, AWDLSTMForLanguageModeling
    from hf_elmo.training.ulmfit import adapt_vocabulary

    lm = AWDLSTMForLanguageModeling(AWDLSTMConfig(vocab_size=len(small_sp_tokenizer), emb_size=8, hidden_size=12,
                                                  num_layers=2, bos_token_id=small_sp_tokenizer.document_start_id))
    new_lm, new_tok = adapt_vocabulary(lm, small_sp_tokenizer, ["Paris tower tower tower."], min_freq=1)
    assert new_tok.sp_model.serialized_model_proto() == small_sp_tokenizer.sp_model.serialized_model_proto()
    assert new_tok.tokenize("Paris tower") == small_sp_tokenizer.tokenize("Paris tower")
    assert new_lm.config.bos_token_id == new_tok.document_start_id == new_tok.itos.index("▁xxbos")
    assert new_lm.config.vocab_size == len(new_tok.itos) < len(small_sp_tokenizer.itos)


# --------------------------------------------------------------------------------------------------------------------
# ONNX: the graph is the word-level one; the folder's tokenizer (SentencePiece, in Python) travels with it
# --------------------------------------------------------------------------------------------------------------------
@requires_fixture
def test_onnx_export_of_a_sentencepiece_classifier(converted, records, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("optimum.exporters.tasks")
    from hf_elmo.onnx import OnnxModel, export_onnx

    export_onnx(converted["clas"], tmp_path / "onnx")
    assert (tmp_path / "onnx/spm.model").read_bytes() == (SPM_FIXTURE / "spm.model").read_bytes()
    tok = AutoTokenizer.from_pretrained(tmp_path / "onnx", trust_remote_code=True)
    onnx_model = OnnxModel.from_pretrained(tmp_path / "onnx")
    assert tok.sp_model is not None and onnx_model.input_names == ["input_ids", "attention_mask"]
    model = AutoModelForSequenceClassification.from_pretrained(converted["clas"], trust_remote_code=True).eval()
    texts = [r["text"] for r in records]
    for padding_side in ("right", "left"):
        tok.padding_side = padding_side
        batch = tok(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            want = model(**batch).logits
        got = onnx_model(**batch).logits
        assert float((got - want).abs().max()) <= ATOL
        assert float((got - expected("clas_expected.pt")["logits"]).abs().max()) <= ATOL  # fastai's, each alone
