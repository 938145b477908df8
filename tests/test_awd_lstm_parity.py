"""Converted fastai AWD-LSTM checkpoints give fastai's own outputs.

The reference is fastai 2.8.12 itself (../shared/fixtures/awd_lstm/fastai): a language model saved in fastai's three
formats (plain state dict, ``Learner.save``, fastai v1 layout) with the logits of a fresh call, of a stateful second
call and of a call after ``reset()``, and a text classifier with its logits on a batch padded as fastai pads
classifier batches. Every checkpoint goes through the converter and is read back with the Auto classes, as a user
would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from awd_lstm_testing import FASTAI_FIXTURE, LM_FILES, fixture_config, load_expected, one_thread, requires_fixture
from hf_elmo.conversion.fastai_awd_lstm import convert_fastai_awd_lstm

pytestmark = requires_fixture
ATOL = 1e-5



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every fixture checkpoint converted (the classifier with fastai's bptt and max_len of the fixture)."""
    cfg = fixture_config()
    root = tmp_path_factory.mktemp("awd")
    folders = {}
    for name in (*LM_FILES, "clas_state_dict.pth"):
        folders[name] = convert_fastai_awd_lstm(FASTAI_FIXTURE / name, FASTAI_FIXTURE / "vocab.pkl",
                                                root / name.replace(".", "_"), bptt=cfg["bptt"],
                                                max_len=cfg["max_len"])
    return folders


@pytest.fixture(scope="module")
def lm_expected() -> dict:
    return load_expected("lm_expected.pt")


@pytest.fixture(scope="module")
def clas_expected() -> dict:
    return load_expected("clas_expected.pt")


@pytest.fixture(scope="module")
def classifier(converted):
    return AutoModelForSequenceClassification.from_pretrained(converted["clas_state_dict.pth"]).eval()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (tuple(a.shape), tuple(b.shape))
    return float((a - b).abs().max())


# --------------------------------------------------------------------------------------------------------------------
# Language model
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LM_FILES)
def test_language_model_matches_fastai(converted, lm_expected, name):
    model = AutoModelForCausalLM.from_pretrained(converted[name]).eval()
    x, bptt = lm_expected["input"], lm_expected["bptt"]
    with torch.no_grad():
        call1 = model(x[:, :bptt], use_cache=True)
        call2 = model(x[:, bptt:], state=call1.state)  # fastai's stateful second call
        reset = model(x[:, bptt:])  # after fastai's reset(): a fresh state
    assert max_diff(call1.logits, lm_expected["logits_call1"]) <= ATOL
    assert max_diff(call2.logits, lm_expected["logits_call2_stateful"]) <= ATOL
    assert max_diff(reset.logits, lm_expected["logits_after_reset"]) <= ATOL
    # the decoder's input before / after the output dropout (fastai's raw_outputs / outputs; equal in eval)
    assert max_diff(call1.raw_output, lm_expected["raw_outputs_call1"]) <= ATOL
    assert max_diff(call1.dropped_output, lm_expected["outputs_call1"]) <= ATOL
    # the state matters: the stateful call is not the fresh one
    assert max_diff(call2.logits, reset.logits) > 1e-3


def test_language_model_layers(converted, lm_expected):
    """Every layer's output (``hidden_states``), the last one being fastai's raw output, with the sizes fastai gives
    each layer (emb → hidden → hidden → emb)."""
    model = AutoModelForCausalLM.from_pretrained(converted["lm_state_dict.pth"]).eval()
    x = lm_expected["input"][:, : lm_expected["bptt"]]
    cfg = fixture_config()["lm_config"]
    with torch.no_grad():
        out = model(x, output_hidden_states=True)
    sizes = [h.shape[-1] for h in out.hidden_states]
    assert sizes == [cfg["n_hid"]] * (cfg["n_layers"] - 1) + [cfg["emb_sz"]]
    assert max_diff(out.hidden_states[-1], lm_expected["raw_outputs_call1"]) <= ATOL
    for raw, dropped in zip(out.hidden_states, out.dropped_hidden_states):
        assert torch.equal(raw, dropped)  # eval mode: no dropout between layers


def test_language_model_padded_batch_keeps_fastai_outputs_and_state(converted, lm_expected):
    """Rows padded on the left (and right) with an attention mask: their real positions get fastai's logits and the
    state after their last real token continues as fastai's stateful call."""
    model = AutoModelForCausalLM.from_pretrained(converted["lm_state_dict.pth"]).eval()
    x, bptt = lm_expected["input"], lm_expected["bptt"]
    first = x[:, :bptt]
    pad = model.config.pad_token_id
    padded = torch.full((3, bptt + 4), pad)
    mask = torch.zeros_like(padded)
    for row, left in enumerate((4, 0, 2)):  # left, right and both-sided padding
        padded[row, left : left + bptt] = first[row]
        mask[row, left : left + bptt] = 1
    with torch.no_grad():
        out = model(padded, attention_mask=mask, use_cache=True)
        call2 = model(x[:, bptt:], state=out.state)
    real = out.logits[mask.bool()].view(3, bptt, -1)
    assert max_diff(real, lm_expected["logits_call1"]) <= ATOL
    assert max_diff(call2.logits, lm_expected["logits_call2_stateful"]) <= ATOL


# --------------------------------------------------------------------------------------------------------------------
# Classifier
# --------------------------------------------------------------------------------------------------------------------
def repad(x: torch.Tensor, pad_id: int, side: str, extra: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """The documents of a fastai-padded batch, padded again on ``side`` (plus ``extra`` columns), with their mask."""
    docs = [row[row != pad_id] for row in x]
    width = max(len(d) for d in docs) + extra
    ids = torch.full((len(docs), width), pad_id)
    mask = torch.zeros_like(ids)
    for i, d in enumerate(docs):
        sl = slice(0, len(d)) if side == "right" else slice(width - len(d), width)
        ids[i, sl], mask[i, sl] = d, 1
    return ids, mask


def test_classifier_matches_fastai(classifier, clas_expected):
    x = clas_expected["input"]
    assert classifier.config.bptt == clas_expected["bptt"] and classifier.config.max_len == clas_expected["max_len"]
    with torch.no_grad():
        logits = classifier(x).logits  # fastai's padding found from the pad id, as fastai does
        masked = classifier(x, attention_mask=(x != clas_expected["pad_idx"]).long()).logits
    assert max_diff(logits, clas_expected["logits"]) <= ATOL
    assert max_diff(masked, clas_expected["logits"]) <= ATOL


@pytest.mark.parametrize("side", ["right", "left"])
def test_classifier_does_not_depend_on_padding(classifier, clas_expected, side):
    ids, mask = repad(clas_expected["input"], clas_expected["pad_idx"], side)
    want = clas_expected["logits"]
    with torch.no_grad():
        assert max_diff(classifier(ids, attention_mask=mask).logits, want) <= ATOL
        order = torch.tensor([2, 0, 3, 1])  # not sorted by length
        assert max_diff(classifier(ids[order], attention_mask=mask[order]).logits, want[order]) <= ATOL
        for i in range(len(ids)):  # alone, without padding
            doc = ids[i][mask[i].bool()].unsqueeze(0)
            assert max_diff(classifier(doc).logits, want[i : i + 1]) <= ATOL


def test_classifier_long_document_pools_only_the_last_max_len_tokens(classifier):
    """A 100,000-token document: read in chunks (the state carried across them), no chunk larger than the
    prefix block, no graph kept before the pooled window, and the pooled features are [last, max, mean] of exactly
    the chunks that start within the last max_len tokens, as the whole document read in one go gives them."""
    cfg = classifier.config
    length = 100_000
    gen = torch.Generator().manual_seed(0)
    doc = torch.randint(4, cfg.vocab_size, (1, length), generator=gen)
    calls: list[tuple[int, bool]] = []
    layer0 = classifier.awd_lstm.layers[0]
    hook = layer0.register_forward_hook(lambda mod, args, out: calls.append((args[0].shape[1],
                                                                             torch.is_grad_enabled())))
    try:
        with torch.enable_grad():
            out = classifier(doc)
    finally:
        hook.remove()
    with torch.no_grad():
        full = classifier.awd_lstm(doc).last_hidden_state[0]  # the whole document in one call
    assert max(n for n, _ in calls) <= classifier.PREFIX_BLOCK_TOKENS  # bounded: never the whole document
    start = -(-(length - cfg.max_len) // cfg.bptt) * cfg.bptt  # first chunk start within the last max_len tokens
    window = length - start
    with_grad = [n for n, grad in calls if grad]
    assert sum(with_grad) == window and all(n <= cfg.bptt for n in with_grad)
    assert sum(n for n, _ in calls) == length

    pooled = out.pooled_output[0].detach()
    emb = cfg.emb_size
    kept = full[start:]
    assert max_diff(pooled[:emb], full[-1]) <= ATOL
    assert max_diff(pooled[emb : 2 * emb], kept.max(dim=0).values) <= ATOL
    assert max_diff(pooled[2 * emb :], kept.mean(dim=0)) <= ATOL
    # one token more in the pooled window changes the mean: the window is exactly these positions
    assert max_diff(pooled[2 * emb :], full[start - 1 :].mean(dim=0)) > 1e-6
