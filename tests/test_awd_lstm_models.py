"""The AWD-LSTM models on tiny random configurations: fastai's regularisation (weight, embedding, locked dropouts,
AR/TAR), the language-model loss, recurrent state, padding, tied weights, layer groups, and loading a saved folder as
remote code where hf_elmo is not installed (this transformers and transformers 4.57)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

from clean_process import BLOCK_HF_ELMO
from awd_lstm_testing import REPO, TF457_PYTHON, no_dropout, one_thread, tiny_config, tiny_model
from hf_elmo import (
    AWDLSTMConfig,
    AWDLSTMForLanguageModeling,
    AWDLSTMForSequenceClassification,
    AWDLSTMModel,
    AWDLSTMTokenizer,
)
from hf_elmo.models.awd_lstm.modeling_awd_lstm import AWDLSTMLockedDropout, lm_cross_entropy

ATOL = 1e-6



@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield


def ids(batch: int, time: int, seed: int = 0, vocab: int = 50) -> torch.Tensor:
    return torch.randint(3, vocab, (batch, time), generator=torch.Generator().manual_seed(seed))


def close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL) -> bool:
    return a.shape == b.shape and float((a - b).abs().max()) <= atol


# --------------------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------------------
def test_config_defaults_are_ulmfits():
    cfg = AWDLSTMConfig()
    assert (cfg.emb_size, cfg.hidden_size, cfg.num_layers, cfg.pad_token_id, cfg.bos_token_id) == (400, 1152, 3, 1, 2)
    assert cfg.tie_weights and cfg.tie_word_embeddings and cfg.out_bias and not cfg.bidirectional
    assert (cfg.output_p, cfg.hidden_p, cfg.input_p, cfg.embed_p, cfg.weight_p) == (0.1, 0.15, 0.25, 0.02, 0.2)
    assert (cfg.ar_alpha, cfg.tar_beta, cfg.bptt, cfg.max_len) == (2.0, 1.0, 72, 1440)
    assert [cfg.layer_output_size(l) for l in range(3)] == [1152, 1152, 400]
    assert [cfg.layer_input_size(l) for l in range(3)] == [400, 1152, 1152]
    clas = AWDLSTMConfig.for_classifier(num_labels=5)
    assert (clas.output_p, clas.hidden_p, clas.input_p, clas.embed_p, clas.weight_p) == (0.4, 0.3, 0.4, 0.05, 0.5)
    assert clas.classifier_hidden_sizes == [50] and clas.head_dropouts == [0.4, 0.1] and clas.num_labels == 5
    half = AWDLSTMConfig.for_classifier(drop_mult=0.5)  # fastai scales the _p values, not the later head's 0.1
    assert half.head_dropouts == [0.2, 0.1] and half.weight_p == 0.25
    bi = AWDLSTMConfig(bidirectional=True)
    assert [bi.layer_state_size(l) for l in range(3)] == [576, 576, 200]


@pytest.mark.parametrize("fields, message", [
    ({"weight_p": 1.0}, "weight_p"),
    ({"bptt": 80, "max_len": 40}, "max_len"),
    ({"classifier_dropouts": [0.1]}, "classifier_dropouts"),
    ({"bidirectional": True, "emb_size": 7}, "even"),
    ({"pad_token_id": 60000}, "pad_token_id"),
    ({"num_layers": 0}, "num_layers"),
])
def test_config_rejects_bad_values(fields, message):
    with pytest.raises(ValueError, match=message):
        AWDLSTMConfig(**fields)


# --------------------------------------------------------------------------------------------------------------------
# Regularisation
# --------------------------------------------------------------------------------------------------------------------
def test_weight_dropout_only_in_training_on_the_raw_weight():
    model = tiny_model(AWDLSTMModel, weight_p=0.5)
    layer = model.layers[1]
    raw = layer.weight_hh_l0
    assert "layers.1.weight_hh_l0" in dict(model.named_parameters())  # the parameter is the raw weight
    assert layer.flat_weights()[1] is raw  # eval: the weight itself
    model.train()
    torch.manual_seed(0)
    dropped = layer.flat_weights()[1]
    zero = dropped == 0
    assert 0.35 < zero.float().mean() < 0.65  # DropConnect: single weights, about half of them
    assert torch.allclose(dropped[~zero], raw[~zero] * 2)  # the others scaled by 1 / (1 - p)
    assert layer.flat_weights()[0] is layer.weight_ih_l0  # only the hidden-to-hidden weight is dropped
    # the kernel runs on the dropped copy: the gradient of the dropped entries is zero, on the raw parameter
    x = ids(2, 6)
    torch.manual_seed(1)
    model(x).last_hidden_state.sum().backward()
    grad = raw.grad
    assert grad is not None and 0.3 < (grad == 0).float().mean() < 0.7
    model.zero_grad()
    model.eval()
    model(x).last_hidden_state.sum().backward()
    assert (raw.grad == 0).float().mean() < 0.05


def test_embedding_dropout_drops_whole_vocabulary_rows():
    model = tiny_model(AWDLSTMModel, embed_p=0.5).train()
    x = torch.arange(50).repeat(4, 3)  # every word 12 times, at different rows and times
    torch.manual_seed(0)
    emb = model.embed(x, None)
    weight = model.embeddings.weight
    kept = torch.zeros(50, dtype=torch.bool)
    for word in range(50):
        rows = emb[x == word]
        assert torch.equal(rows, rows[:1].expand_as(rows))  # every occurrence dropped (or kept) alike
        if bool(rows.abs().sum() > 0):
            kept[word] = True
            assert torch.allclose(rows[0], weight[word] * 2)
    assert 10 < int(kept.sum()) < 40
    model.eval()
    assert torch.equal(model.embed(x, None), F.embedding(x, weight))


def test_locked_dropout_shares_one_mask_over_time():
    drop = AWDLSTMLockedDropout(0.5).train()
    torch.manual_seed(0)
    out = drop(torch.ones(4, 30, 16))
    assert torch.equal(out, out[:, :1].expand_as(out))  # the same mask at every step
    assert not torch.equal(out[0], out[1])  # a mask per sequence
    assert set(out.unique().tolist()) == {0.0, 2.0}
    # packed data: the mask of each element's row
    rows = torch.tensor([0, 1, 0, 1, 0])
    packed = drop(torch.ones(5, 16), rows, 2)
    assert torch.equal(packed[0], packed[2]) and torch.equal(packed[0], packed[4]) and torch.equal(packed[1], packed[3])
    assert torch.equal(drop.eval()(out), out)


def test_dropout_between_layers_is_locked_and_not_after_the_last():
    model = tiny_model(AWDLSTMModel, **no_dropout(hidden_p=0.5)).train()
    torch.manual_seed(0)
    out = model(ids(3, 9), output_hidden_states=True)
    for l, (raw, dropped) in enumerate(zip(out.hidden_states, out.dropped_hidden_states)):
        if l == len(out.hidden_states) - 1:
            assert torch.equal(raw, dropped)
            continue
        ratio = torch.where(raw.abs() > 1e-6, dropped / raw, torch.full_like(raw, float("nan")))
        first = ratio[:, :1].expand_as(ratio)
        ok = torch.isnan(ratio) | torch.isnan(first) | ((ratio - first).abs() < 1e-4)
        assert bool(ok.all()), f"layer {l}: the mask changes over time"
        assert 0.3 < float((dropped == 0).float().mean()) < 0.7


def test_ar_and_tar_are_added_in_training_only_as_fastai_computes_them():
    model = tiny_model(AWDLSTMForLanguageModeling, ar_alpha=2.0, tar_beta=1.0)
    x = ids(3, 8)
    with torch.no_grad():
        out = model(x, labels=x)
    assert out.ar_loss is None and out.tar_loss is None and torch.equal(out.loss, out.lm_loss)
    model.train()
    torch.manual_seed(0)
    out = model(x, labels=x)
    ar = 2.0 * out.dropped_output.float().pow(2).mean()  # on the dropped output (fastai's `out`)
    raw = out.raw_output.float()
    tar = 1.0 * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()  # on the raw output (fastai's `raw_out`)
    assert not torch.equal(out.dropped_output, out.raw_output)  # the output dropout ran
    assert torch.allclose(out.ar_loss, ar) and torch.allclose(out.tar_loss, tar)
    assert torch.allclose(out.loss, out.lm_loss + ar + tar)
    # with a mask, only real tokens (and pairs of consecutive real tokens) count
    mask = torch.ones_like(x)
    mask[0, 5:] = 0
    model = tiny_model(AWDLSTMForLanguageModeling, **no_dropout()).train()
    out = model(x, attention_mask=mask, labels=x.masked_fill(mask == 0, -100))
    m = mask.bool()
    want_ar = 2.0 * out.dropped_output[m].pow(2).mean()
    pair = m[:, 1:] & m[:, :-1]
    want_tar = (out.raw_output[:, 1:] - out.raw_output[:, :-1])[pair].pow(2).mean()
    assert torch.allclose(out.ar_loss, want_ar) and torch.allclose(out.tar_loss, want_tar)


def test_language_model_labels_are_shifted_inside():
    model = tiny_model(AWDLSTMForLanguageModeling)
    x = ids(2, 7)
    labels = x.clone()
    labels[1, 4] = -100
    with torch.no_grad():
        out = model(x, labels=labels)
    logits = out.logits
    want = F.cross_entropy(logits[:, :-1].reshape(-1, 50), labels[:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(out.loss, want)
    unshifted = F.cross_entropy(logits.reshape(-1, 50), labels.reshape(-1), ignore_index=-100)
    assert not torch.allclose(out.loss, unshifted)
    with pytest.raises(ValueError, match="labels shape"):
        model(x, labels=labels[:, :-1])


def test_language_model_loss_and_gradient_are_cross_entropys():
    """The LM loss's own autograd function (fewer passes over the logits) gives F.cross_entropy's value and
    gradient, ignored targets included, and refuses a second backward pass (it reuses its buffer)."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 23, dtype=torch.float64, generator=gen, requires_grad=True)
    targets = torch.randint(0, 23, (40,), generator=gen)
    targets[::3] = -100
    want = F.cross_entropy(logits, targets, ignore_index=-100)
    (want_grad,) = torch.autograd.grad(want * 1.7, logits)
    got = lm_cross_entropy(logits, targets)
    assert got.grad_fn is not None and "LanguageModelCrossEntropy" in type(got.grad_fn).__name__
    (got_grad,) = torch.autograd.grad(got * 1.7, logits, retain_graph=True)
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    assert torch.allclose(got_grad, want_grad, rtol=0, atol=1e-12)
    with pytest.raises(RuntimeError, match="once per forward pass"):
        torch.autograd.grad(got, logits)
    assert torch.isnan(lm_cross_entropy(logits, torch.full((40,), -100)))  # no target: nan, as F.cross_entropy
    # and through the model in training: the same loss and gradients as with F.cross_entropy
    model = tiny_model(AWDLSTMForLanguageModeling, **no_dropout(ar_alpha=0.0, tar_beta=0.0)).train()
    x = ids(2, 7)
    out = model(x, labels=x)
    out.loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    reference = F.cross_entropy(model(x).logits[:, :-1].reshape(-1, 50), x[:, 1:].reshape(-1))  # no dropout
    reference.backward()
    assert torch.allclose(out.loss, reference)
    for got_g, p in zip(grads, model.parameters()):
        assert torch.allclose(got_g, p.grad, atol=1e-6)


def test_accepts_loss_kwargs_is_false():
    for cls in (AWDLSTMModel, AWDLSTMForLanguageModeling, AWDLSTMForSequenceClassification):
        assert cls.accepts_loss_kwargs is False


# --------------------------------------------------------------------------------------------------------------------
# State and padding
# --------------------------------------------------------------------------------------------------------------------
def test_state_in_and_out():
    model = tiny_model(AWDLSTMForLanguageModeling)
    x = ids(3, 10)
    with torch.no_grad():
        whole = model(x, use_cache=True)
        first = model(x[:, :4], use_cache=True)
        second = model(x[:, 4:], state=first.state, use_cache=True)
        zero = model(x, state=model.awd_lstm.zero_state(3))
        assert model(x).state is None  # stateless unless asked
    assert close(torch.cat([first.logits, second.logits], 1), whole.logits)
    for (h1, c1), (h2, c2) in zip(second.state, whole.state):
        assert close(h1, h2) and close(c1, c2)
    assert close(zero.logits, whole.logits)
    assert [tuple(h.shape) for h, _ in whole.state] == [(1, 3, 12), (1, 3, 12), (1, 3, 8)]
    with pytest.raises(ValueError, match=r"state\[0\] h has shape"):
        model(x[:2], state=whole.state)
    with pytest.raises(TypeError, match="3 \\(h, c\\) pairs"):
        model(x, state=whole.state[:2])


def test_bidirectional_layers_and_state():
    model = tiny_model(AWDLSTMModel, bidirectional=True)
    x = ids(2, 6)
    with torch.no_grad():
        out = model(x, use_cache=True, output_hidden_states=True)
    assert [h.shape[-1] for h in out.hidden_states] == [12, 12, 8]
    assert [tuple(h.shape) for h, _ in out.state] == [(2, 2, 6), (2, 2, 6), (2, 2, 4)]
    assert "layers.0.weight_hh_l0_reverse" in model.state_dict()


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_anywhere_matches_each_row_alone(bidirectional):
    model = tiny_model(AWDLSTMModel, bidirectional=bidirectional)
    lengths, lefts, width = [7, 3, 5, 1], [0, 4, 1, 6], 9
    rows = [ids(1, n, seed=i)[0] for i, n in enumerate(lengths)]
    x = torch.full((4, width), 1)
    mask = torch.zeros_like(x)
    for i, (row, left) in enumerate(zip(rows, lefts)):
        x[i, left : left + len(row)] = row
        mask[i, left : left + len(row)] = 1
    with torch.no_grad():
        out = model(x, attention_mask=mask, use_cache=True)
        for i, row in enumerate(rows):
            alone = model(row[None], use_cache=True)
            assert close(out.last_hidden_state[i][mask[i].bool()], alone.last_hidden_state[0])
            assert float(out.last_hidden_state[i][~mask[i].bool()].abs().sum()) == 0
            for (h, c), (h1, c1) in zip(out.state, alone.state):
                assert close(h[:, i], h1[:, 0]) and close(c[:, i], c1[:, 0])
        # right padding without a state to return runs dense: the same outputs
        right = torch.full((4, width), 1)
        rmask = torch.zeros_like(right)
        for i, row in enumerate(rows):
            right[i, : len(row)], rmask[i, : len(row)] = row, 1
        dense = model(right, attention_mask=rmask).last_hidden_state
        for i in range(4):
            assert close(dense[i][rmask[i].bool()], out.last_hidden_state[i][mask[i].bool()])


def test_inputs_embeds_skip_the_embedding():
    model = tiny_model(AWDLSTMModel)
    x = ids(2, 5)
    with torch.no_grad():
        a = model(x).last_hidden_state
        b = model(inputs_embeds=model.embeddings(x)).last_hidden_state
    assert close(a, b)
    with pytest.raises(ValueError, match="exactly one"):
        model(x, inputs_embeds=model.embeddings(x))


@pytest.mark.parametrize("bad, error", [
    (torch.tensor([[1.0, 2.0]]), TypeError),
    (torch.tensor([[1, 50]]), ValueError),
    (torch.tensor([1, 2]), ValueError),
])
def test_bad_input_ids(bad, error):
    with pytest.raises(error):
        tiny_model(AWDLSTMModel)(bad)


# --------------------------------------------------------------------------------------------------------------------
# Classifier
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_labels, problem_type, labels", [
    (3, None, torch.tensor([0, 2])),
    (1, None, torch.tensor([0.5, -1.0])),
    (3, "multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),
])
def test_classifier_losses(num_labels, problem_type, labels):
    model = tiny_model(AWDLSTMForSequenceClassification, num_labels=num_labels, problem_type=problem_type)
    with torch.no_grad():
        out = model(ids(2, 12), labels=labels)
    logits = out.logits
    if num_labels == 1:
        want = F.mse_loss(logits.squeeze(-1), labels)
    elif problem_type is None:
        want = F.cross_entropy(logits, labels)
    else:
        want = F.binary_cross_entropy_with_logits(logits, labels)
    assert torch.allclose(out.loss, want)


def test_classifier_head_is_fastais():
    model = tiny_model(AWDLSTMForSequenceClassification, num_labels=4, classifier_hidden_sizes=[6, 5])
    blocks = model.classifier.layers
    assert [(b.batch_norm.num_features, b.linear.in_features, b.linear.out_features) for b in blocks] == [
        (24, 24, 6), (6, 6, 5), (5, 5, 4)]
    assert [b.dropout.p for b in blocks] == [0.1, 0.1, 0.1] and all(b.linear.bias is None for b in blocks)
    assert [b.relu for b in blocks] == [True, True, False]
    fresh = AWDLSTMForSequenceClassification(tiny_config())
    assert torch.all(fresh.classifier.layers[0].batch_norm.bias == 1e-3)  # fastai's BatchNorm initialisation


@pytest.mark.parametrize("bidirectional", [False, True])
def test_classifier_does_not_depend_on_padding(bidirectional):
    model = tiny_model(AWDLSTMForSequenceClassification, num_labels=3, bidirectional=bidirectional)  # bptt 5
    docs = [ids(1, n, seed=n)[0] for n in (23, 7, 16, 5)]
    width = 26
    left, right = torch.full((4, width), 1), torch.full((4, width), 1)
    lmask, rmask = torch.zeros_like(left), torch.zeros_like(right)
    for i, d in enumerate(docs):
        left[i, width - len(d):], lmask[i, width - len(d):] = d, 1
        right[i, : len(d)], rmask[i, : len(d)] = d, 1
    with torch.no_grad():
        alone = torch.cat([model(d[None]).logits for d in docs])
        assert close(model(left, attention_mask=lmask).logits, alone, 1e-5)
        assert close(model(right, attention_mask=rmask).logits, alone, 1e-5)
        assert close(model(right).logits, alone, 1e-5)  # no mask: the pad id (1) marks padding, as in fastai


def test_classifier_trains_through_the_pooled_chunks_only():
    model = tiny_model(AWDLSTMForSequenceClassification, num_labels=2).train()  # bptt 5, max_len 15
    x = ids(3, 40)
    mask = torch.ones_like(x)
    mask[1, 30:] = 0
    mask[2, :12] = 0
    torch.manual_seed(0)
    out = model(x, attention_mask=mask, labels=torch.tensor([0, 1, 1]))
    assert out.ar_loss > 0 and out.tar_loss > 0
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    with pytest.raises(ValueError, match="hold no real token"):
        model.eval()(x, attention_mask=mask * torch.tensor([[1], [0], [1]]))


# --------------------------------------------------------------------------------------------------------------------
# Tied weights, layer groups, generation
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tie", [True, False])
def test_tied_weights_stay_tied_after_save_and_load(tmp_path, tie):
    model = tiny_model(AWDLSTMForLanguageModeling, tie_weights=tie)
    assert (model.decoder.weight is model.awd_lstm.embeddings.weight) is tie
    model.save_pretrained(tmp_path)
    assert ("decoder.weight" in load_file(tmp_path / "model.safetensors")) is not tie
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert (loaded.decoder.weight is loaded.awd_lstm.embeddings.weight) is tie
    assert torch.equal(loaded.decoder.weight, model.decoder.weight)
    x = ids(2, 5)
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits)
    if tie:  # still one tensor after an update
        with torch.no_grad():
            loaded.awd_lstm.embeddings.weight[3] += 1
        assert torch.equal(loaded.decoder.weight[3], loaded.awd_lstm.embeddings.weight[3])


def test_layer_groups_bottom_to_top():
    lm = tiny_model(AWDLSTMForLanguageModeling)
    groups = lm.layer_groups()
    assert len(groups) == 3 + 2
    assert lm.awd_lstm.embeddings in groups[0] and lm.decoder in groups[-1]
    assert [lm.awd_lstm.layers[l] in groups[l + 1] for l in range(3)] == [True] * 3

    def params(group):
        return {id(p) for item in group for p in (item.parameters() if isinstance(item, torch.nn.Module) else [item])}

    covered = set().union(*(params(g) for g in groups))
    assert covered == {id(p) for p in lm.parameters()}
    # the tied matrix is listed with the embedding and with the decoder (the training code gives it to the top one)
    assert id(lm.awd_lstm.embeddings.weight) in params(groups[0]) & params(groups[-1])
    clas = tiny_model(AWDLSTMForSequenceClassification)
    groups = clas.layer_groups()
    assert len(groups) == 5 and groups[-1] == [clas.classifier]
    sets = [params(g) for g in groups]
    assert sum(len(s) for s in sets) == len({id(p) for p in clas.parameters()}) == len(set().union(*sets))


def test_generate_is_the_greedy_loop_over_the_state():
    model = tiny_model(AWDLSTMForLanguageModeling)
    prompt = ids(2, 4)
    with torch.no_grad():
        generated = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=1, eos_token_id=None)
        seq, state, step = prompt, None, prompt
        for _ in range(6):
            out = model(step, state=state, use_cache=True)
            state, step = out.state, out.logits[:, -1:].argmax(-1)
            seq = torch.cat([seq, step], 1)
    assert torch.equal(generated, seq)


# --------------------------------------------------------------------------------------------------------------------
# Remote code where hf_elmo is not installed
# --------------------------------------------------------------------------------------------------------------------
CHILD = BLOCK_HF_ELMO + textwrap.dedent(
    r'''

    import numpy as np
    import torch
    import transformers

    spec = json.loads(Path(sys.argv[1]).read_text())
    out_dir = Path(sys.argv[2])
    report = {"transformers": transformers.__version__, "modules": {}, "tied": {}}
    arrays = {}
    for name, job in spec["jobs"].items():
        folder = job["folder"]
        config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=True)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        enc = tokenizer(spec["texts"], padding=True, return_tensors="pt")
        arrays[f"{name}.input_ids"] = enc["input_ids"].numpy()
        for auto_name in job["autos"]:
            model = getattr(transformers, auto_name).from_pretrained(folder, trust_remote_code=True).eval()
            report["modules"][f"{name}.{auto_name}"] = [type(config).__module__, type(tokenizer).__module__,
                                                        type(model).__module__, type(model).__name__]
            x = torch.tensor(spec["ids"])
            with torch.no_grad():
                if auto_name == "AutoModelForCausalLM":
                    first = model(x[:, :5], use_cache=True)
                    arrays[f"{name}.{auto_name}.logits"] = first.logits.numpy()
                    arrays[f"{name}.{auto_name}.stateful"] = model(x[:, 5:], state=first.state).logits.numpy()
                    arrays[f"{name}.{auto_name}.generate"] = model.generate(
                        x[:, :3], max_new_tokens=4, do_sample=False, pad_token_id=1, eos_token_id=None).numpy()
                    tied = model.decoder.weight.data_ptr() == model.awd_lstm.embeddings.weight.data_ptr()
                    report["tied"][name] = tied
                elif auto_name == "AutoModelForSequenceClassification":
                    mask = torch.ones_like(x)
                    mask[0, :3] = 0
                    arrays[f"{name}.{auto_name}.logits"] = model(x, attention_mask=mask).logits.numpy()
                else:
                    arrays[f"{name}.{auto_name}.last_hidden_state"] = model(x).last_hidden_state.numpy()
    np.savez(out_dir / "outputs.npz", **arrays)
    report["leaked"] = sorted(m for m in sys.modules if m == "hf_elmo" or m.startswith("hf_elmo."))
    (out_dir / "report.json").write_text(json.dumps(report))
    '''
)
TEXTS = ["The quick brown fox didn't jump.", "ULMFiT is GREAT!!!"]
JOBS = {
    "lm": (AWDLSTMForLanguageModeling, {}, ["AutoModelForCausalLM", "AutoModel"]),
    "clas": (AWDLSTMForSequenceClassification, {"num_labels": 3}, ["AutoModelForSequenceClassification",
                                                                   "AutoModel"]),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A language model and a classifier saved with a tokenizer; returns the spec for the child process and the
    in-process outputs it must reproduce."""
    root = tmp_path_factory.mktemp("remote")
    itos = ["xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxrep", "xxwrep", "xxup", "xxmaj", "the", "quick", "brown",
            "fox", "did", "n't", "jump", ".", "ulmfit", "is", "great", "!"] + [f"w{i}" for i in range(29)]
    tokenizer = AWDLSTMTokenizer(itos=itos)
    x = ids(2, 9)
    want, jobs = {}, {}
    for name, (cls, overrides, autos) in JOBS.items():
        model = tiny_model(cls, seed=3, **overrides)
        folder = root / name
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        jobs[name] = {"folder": str(folder), "autos": autos}
        want[f"{name}.input_ids"] = tokenizer(TEXTS, padding=True, return_tensors="pt")["input_ids"].numpy()
        with torch.no_grad():
            base = model if isinstance(model, AWDLSTMModel) else model.awd_lstm
            want[f"{name}.AutoModel.last_hidden_state"] = base(x).last_hidden_state.numpy()
            if name == "lm":
                first = model(x[:, :5], use_cache=True)
                want["lm.AutoModelForCausalLM.logits"] = first.logits.numpy()
                want["lm.AutoModelForCausalLM.stateful"] = model(x[:, 5:], state=first.state).logits.numpy()
                want["lm.AutoModelForCausalLM.generate"] = model.generate(
                    x[:, :3], max_new_tokens=4, do_sample=False, pad_token_id=1, eos_token_id=None).numpy()
            else:
                mask = torch.ones_like(x)
                mask[0, :3] = 0
                want["clas.AutoModelForSequenceClassification.logits"] = model(x, attention_mask=mask).logits.numpy()
    return {"jobs": jobs, "texts": TEXTS, "ids": x.tolist()}, want


def test_saved_folder_layout(saved):
    spec, _ = saved
    for name, job in spec["jobs"].items():
        folder = Path(job["folder"])
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"] == "awd_lstm"
        assert config["auto_map"] == {
            "AutoConfig": "configuration_awd_lstm.AWDLSTMConfig",
            "AutoModel": "modeling_awd_lstm.AWDLSTMModel",
            "AutoModelForCausalLM": "modeling_awd_lstm.AWDLSTMForLanguageModeling",
            "AutoModelForSequenceClassification": "modeling_awd_lstm.AWDLSTMForSequenceClassification",
        }
        tok = json.loads((folder / "tokenizer_config.json").read_text())
        assert tok["auto_map"]["AutoTokenizer"][0] == "tokenization_awd_lstm.AWDLSTMTokenizer"
        for py in ("configuration_awd_lstm.py", "modeling_awd_lstm.py", "cpu_lstm.py", "packed_linear.py",
                   "tokenization_awd_lstm.py", "english_splitter.py"):
            imports = [line.split()[1] for line in (folder / py).read_text().splitlines()
                       if line.startswith(("import ", "from "))]
            assert not any(m.split(".")[0] == "hf_elmo" for m in imports), py


def test_cross_loading_in_process(saved):
    spec, want = saved
    lm_folder = spec["jobs"]["lm"]["folder"]
    x = torch.tensor(spec["ids"])
    base = AutoModel.from_pretrained(lm_folder).eval()
    with torch.no_grad():
        assert np.abs(base(x).last_hidden_state.numpy() - want["lm.AutoModel.last_hidden_state"]).max() <= ATOL
    clas = AutoModelForSequenceClassification.from_pretrained(lm_folder, num_labels=2, output_p=0.4)
    assert isinstance(clas, AWDLSTMForSequenceClassification) and clas.classifier.layers[0].dropout.p == 0.4


def run_clean(python: Path | str, saved, tmp_path: Path) -> tuple[dict, dict]:
    spec, _ = saved
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "child.py").write_text(CHILD)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_MODULES_CACHE=str(tmp_path / "hf_modules"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([str(python), str(tmp_path / "child.py"), str(tmp_path / "spec.json"), str(out_dir)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"clean process failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    report = json.loads((out_dir / "report.json").read_text())
    return report, dict(np.load(out_dir / "outputs.npz"))


def check_clean_report(report: dict, got: dict, saved) -> None:
    _, want = saved
    assert report["leaked"] == []
    for key, modules in report["modules"].items():
        for module in modules[:-1]:
            assert module.startswith("transformers_modules."), (key, modules)
    assert report["modules"]["lm.AutoModelForCausalLM"][-1] == "AWDLSTMForLanguageModeling"
    assert report["modules"]["clas.AutoModelForSequenceClassification"][-1] == "AWDLSTMForSequenceClassification"
    assert report["tied"] == {"lm": True}
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key].shape == value.shape, key
        if value.dtype.kind in "iu":
            assert np.array_equal(got[key], value), key
        else:
            err = float(np.abs(got[key] - value).max())
            assert err <= ATOL, f"{key}: remote code differs from in-process by {err:.3g}"


def test_remote_code_in_clean_process(saved, tmp_path):
    report, got = run_clean(sys.executable, saved, tmp_path)
    assert report["transformers"] == __import__("transformers").__version__
    check_clean_report(report, got, saved)


def test_remote_code_with_transformers_4_57(saved, tmp_path):
    if not TF457_PYTHON.exists():
        pytest.skip(f"{TF457_PYTHON.relative_to(REPO)} not found: the set-up script builds the transformers 4.57 "
                    "environment for this test")
    report, got = run_clean(TF457_PYTHON, saved, tmp_path)
    assert report["transformers"].startswith("4.57"), report["transformers"]
    check_clean_report(report, got, saved)


def test_classifier_refuses_hidden_states_instead_of_dropping_them():
    """A classifier keeps only its pooled window's outputs: asking for hidden states (argument or config) is a clear
    error, not an output without them; False/None (what transformers passes) runs as usual."""
    model = AWDLSTMForSequenceClassification(tiny_config(num_labels=2)).eval()
    ids = torch.tensor([[2, 5, 6, 7]])
    with torch.no_grad():
        want = model(input_ids=ids).logits
        torch.testing.assert_close(model(input_ids=ids, output_hidden_states=False).logits, want)
        with pytest.raises(ValueError, match="does not return hidden states .* run AWDLSTMModel"):
            model(input_ids=ids, output_hidden_states=True)
        model.config.output_hidden_states = True
        with pytest.raises(ValueError, match="does not return hidden states"):
            model(input_ids=ids)
        torch.testing.assert_close(model(input_ids=ids, output_hidden_states=False).logits, want)
