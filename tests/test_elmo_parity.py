"""Numerical parity of ElmoModel with the original TensorFlow biLM (bilm-tf) on its own test model.

The fixture model has no skip connections, while every published ELMo uses them; so besides comparing with the
TensorFlow outputs, this file holds an independent, deliberately simple NumPy implementation of the bilm-tf biLM
(one timestep, one sentence at a time, written from ../shared/REFERENCE.md), checks it against TensorFlow, and uses
it as the reference for skip connections.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import load_fixture_model

ATOL = 1e-5


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------
def batch_words(sentences: list[list[str]], i: int) -> list[list[str]]:
    """Batch i of the bilm-tf test: (sentences[0][i], sentences[1][i], sentences[2][i]), split on spaces."""
    return [sentences[k][i].split(" ") for k in range(3)]


def tf_top_layer(fixture_dir: Path, k: int, i: int) -> np.ndarray:
    """TensorFlow's top layer for sentences[k][i]: (n_words, 2P), [forward; backward], no boundary tokens."""
    with h5py.File(fixture_dir / f"lm_embeddings_{k}.hdf5", "r") as f:
        ref = f[str(i)][...]
    assert ref.ndim == 3 and ref.shape[0] == 2
    return np.concatenate([ref[0], ref[1]], axis=-1)


def encode(tokenizer, words: list[list[str]], **kwargs):
    return tokenizer(words, is_split_into_words=True, padding=True, return_tensors="pt", **kwargs)


def real_rows(t: torch.Tensor, mask: torch.Tensor, b: int) -> np.ndarray:
    """The rows of sequence ``b`` at its real positions (boundaries included), as float64 NumPy."""
    return t[b][mask[b].bool()].detach().double().numpy()


# ----------------------------------------------------------------------------------------------------------------
# The NumPy reference biLM
# ----------------------------------------------------------------------------------------------------------------
def ref_char_ids(word: str) -> list[int]:
    """Character ids as REFERENCE.md states them (independent of the package's tokenizer)."""
    bos, eos, bow, eow, pad = 256, 257, 258, 259, 260
    if word == "<S>":
        body = [bos]
    elif word == "</S>":
        body = [eos]
    else:
        body = list(word.encode("utf-8"))[:48]
    ids = [bow] + body + [eow]
    ids += [pad] * (50 - len(ids))
    return [v + 1 for v in ids]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class NumpyBiLM:
    """The bilm-tf biLM straight from REFERENCE.md, in float64, one sentence and one timestep at a time."""

    def __init__(self, weights_path: Path, options: dict, use_skip_connections: bool) -> None:
        with h5py.File(weights_path, "r") as f:
            self.w = {}
            f.visititems(lambda name, obj: self.w.__setitem__(name, obj[...].astype(np.float64))
                         if isinstance(obj, h5py.Dataset) else None)
        self.filters = options["char_cnn"]["filters"]
        self.n_highway = options["char_cnn"]["n_highway"]
        self.relu = options["char_cnn"]["activation"] == "relu"
        lstm = options["lstm"]
        self.n_layers, self.dim, self.proj = lstm["n_layers"], lstm["dim"], lstm["projection_dim"]
        self.cell_clip, self.proj_clip = lstm["cell_clip"], lstm["proj_clip"]
        self.skip = use_skip_connections

    def zero_state(self) -> dict:
        return {(d, l): (np.zeros(self.proj), np.zeros(self.dim)) for d in range(2) for l in range(self.n_layers)}

    def token(self, word: str) -> np.ndarray:
        table = np.concatenate([np.zeros((1, self.w["char_embed"].shape[1])), self.w["char_embed"]])
        x = table[ref_char_ids(word)]  # (50, emb)
        pooled = []
        for i, (width, n) in enumerate(self.filters):
            kernel, bias = self.w[f"CNN/W_cnn_{i}"][0], self.w[f"CNN/b_cnn_{i}"]  # (width, emb, n), (n,)
            conv = np.stack([np.einsum("ke,ken->n", x[p : p + width], kernel) + bias
                             for p in range(x.shape[0] - width + 1)])
            best = conv.max(axis=0)
            pooled.append(np.maximum(best, 0.0) if self.relu else np.tanh(best))
        h = np.concatenate(pooled)
        for k in range(self.n_highway):
            g = sigmoid(h @ self.w[f"CNN_high_{k}/W_carry"] + self.w[f"CNN_high_{k}/b_carry"])
            t = np.maximum(h @ self.w[f"CNN_high_{k}/W_transform"] + self.w[f"CNN_high_{k}/b_transform"], 0.0)
            h = g * t + (1.0 - g) * h
        if "CNN_proj/W_proj" in self.w:
            h = h @ self.w["CNN_proj/W_proj"] + self.w["CNN_proj/b_proj"]
        return h

    def cell(self, d: int, layer: int, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        prefix = f"RNN_{d}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"
        z = np.concatenate([x, h]) @ self.w[f"{prefix}/W_0"] + self.w[f"{prefix}/B"]
        i, j, f, o = np.split(z, 4)
        c = sigmoid(f + 1.0) * c + sigmoid(i) * np.tanh(j)
        if self.cell_clip:
            c = np.clip(c, -self.cell_clip, self.cell_clip)
        h = (sigmoid(o) * np.tanh(c)) @ self.w[f"{prefix}/W_P_0"]
        if self.proj_clip:
            h = np.clip(h, -self.proj_clip, self.proj_clip)
        return h, c

    def run(self, words: list[str], state: dict | None = None) -> tuple[list[np.ndarray], dict]:
        """``words`` with boundaries; returns the n_layers + 1 layers (len(words), 2P) and the final state."""
        state = dict(state) if state is not None else self.zero_state()
        tokens = np.stack([self.token(w) for w in words])
        layers = [np.concatenate([tokens, tokens], axis=-1)]
        inputs = {0: tokens, 1: tokens[::-1]}  # the backward LM reads the sentence reversed
        for layer in range(self.n_layers):
            outs = {}
            for d in range(2):
                h, c = state[(d, layer)]
                seq = []
                for x in inputs[d]:
                    h, c = self.cell(d, layer, x, h, c)
                    seq.append(h)
                state[(d, layer)] = (h, c)
                out = np.stack(seq)
                if self.skip and layer > 0:
                    out = out + inputs[d]
                outs[d] = out
            layers.append(np.concatenate([outs[0], outs[1][::-1]], axis=-1))
            inputs = outs
        return layers, state


@pytest.fixture(scope="module")
def options(elmo_fixture_dir):
    import json

    with open(elmo_fixture_dir / "options.json", encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def numpy_bilm(elmo_fixture_dir, options) -> NumpyBiLM:
    return NumpyBiLM(elmo_fixture_dir / "lm_weights.hdf5", options, use_skip_connections=False)


@pytest.fixture(scope="module")
def numpy_bilm_skip(elmo_fixture_dir, options) -> NumpyBiLM:
    return NumpyBiLM(elmo_fixture_dir / "lm_weights.hdf5", options, use_skip_connections=True)


@pytest.fixture(scope="module")
def skip_model(elmo_fixture_dir):
    return load_fixture_model(elmo_fixture_dir, use_skip_connections=True)


def with_boundaries(words: list[str]) -> list[str]:
    return ["<S>", *words, "</S>"]


# ----------------------------------------------------------------------------------------------------------------
# (a), (b): TensorFlow parity
# ----------------------------------------------------------------------------------------------------------------
def test_fixture_has_no_skip_connections(fixture_model, options):
    """The fixture's options: no skip connections, so the TF outputs say nothing about them (see the NumPy tests)."""
    assert options["lstm"]["use_skip_connections"] is False
    assert fixture_model.config.use_skip_connections is False


def test_stateful_batches_match_tensorflow(fixture_model, tokenizer, fixture_sentences, elmo_fixture_dir):
    state = None
    worst = 0.0
    for i in range(10):
        words = batch_words(fixture_sentences, i)
        enc = encode(tokenizer, words)
        with torch.no_grad():
            out = fixture_model(**enc, state=state, use_cache=True)
        assert out.state is not None
        state = out.state
        top = out.hidden_states[-1]
        assert top.shape == (3, max(len(w) for w in words) + 2, 2 * fixture_model.config.projection_dim)
        for k in range(3):
            n = len(words[k])
            ref = tf_top_layer(elmo_fixture_dir, k, i)
            assert ref.shape == (n, top.shape[-1])
            ours = top[k, 1 : n + 1].numpy()
            err = float(np.abs(ours - ref).max())
            worst = max(worst, err)
            assert err < ATOL, f"batch {i}, sentence {k}: max abs error {err:.3g} against TensorFlow"
            # padding positions stay zero
            assert torch.all(top[k, n + 2 :] == 0)
    print(f"worst error against TensorFlow over 10 stateful batches: {worst:.3g}")


def test_first_batch_stateless_matches_tensorflow(fixture_model, tokenizer, fixture_sentences, elmo_fixture_dir):
    words = batch_words(fixture_sentences, 0)
    with torch.no_grad():
        out = fixture_model(**encode(tokenizer, words))
    assert out.state is None
    for k in range(3):
        n = len(words[k])
        err = float(np.abs(out.hidden_states[-1][k, 1 : n + 1].numpy() - tf_top_layer(elmo_fixture_dir, k, 0)).max())
        assert err < ATOL, f"sentence {k}: max abs error {err:.3g}"


def test_later_batch_needs_the_state(fixture_model, tokenizer, fixture_sentences, elmo_fixture_dir):
    """The stateful reference really depends on the carried state: batch 1 run statelessly does NOT match it
    (so the stateful test above cannot pass by ignoring ``state``)."""
    words = batch_words(fixture_sentences, 1)
    with torch.no_grad():
        out = fixture_model(**encode(tokenizer, words))
    n = len(words[0])
    err = float(np.abs(out.hidden_states[-1][0, 1 : n + 1].numpy() - tf_top_layer(elmo_fixture_dir, 0, 1)).max())
    assert err > 1e-3


# ----------------------------------------------------------------------------------------------------------------
# (c): skip connections, through an independent NumPy reference
# ----------------------------------------------------------------------------------------------------------------
def test_numpy_reference_matches_tensorflow(numpy_bilm, fixture_sentences, elmo_fixture_dir):
    """The NumPy reference (skip off) reproduces TensorFlow's stateful outputs: it is a valid reference."""
    states = [None, None, None]
    worst = 0.0
    for i in range(10):
        for k in range(3):
            words = fixture_sentences[k][i].split(" ")
            layers, states[k] = numpy_bilm.run(with_boundaries(words), states[k])
            err = float(np.abs(layers[-1][1:-1] - tf_top_layer(elmo_fixture_dir, k, i)).max())
            worst = max(worst, err)
            assert err < ATOL, f"NumPy reference, batch {i}, sentence {k}: max abs error {err:.3g}"
    print(f"NumPy reference against TensorFlow: worst error {worst:.3g}")


def test_numpy_reference_skip_connections_change_the_output(numpy_bilm, numpy_bilm_skip):
    words = with_boundaries("The cat sat on the mat .".split())
    plain, _ = numpy_bilm.run(words)
    skip, _ = numpy_bilm_skip.run(words)
    np.testing.assert_allclose(plain[1], skip[1])  # the first layer has no skip connection
    assert np.abs(plain[2] - skip[2]).max() > 1e-2


SKIP_BATCHES = [
    ["The cat sat on the mat .".split(), "Hi".split(),
     "A much longer sentence with , punctuation and 1,000 numbers".split()],
    ["One".split()],
    ["x y".split(), "Elk calling -- a skill that hunters perfected long ago".split()],
]


@pytest.mark.parametrize("batch_index", range(len(SKIP_BATCHES)))
def test_skip_connections_match_numpy_reference(skip_model, numpy_bilm_skip, tokenizer, batch_index):
    words = SKIP_BATCHES[batch_index]
    enc = encode(tokenizer, words)
    with torch.no_grad():
        out = skip_model(**enc)
    assert skip_model.config.use_skip_connections
    assert len(out.hidden_states) == skip_model.config.n_layers + 1
    for b, sentence in enumerate(words):
        ref_layers, _ = numpy_bilm_skip.run(with_boundaries(sentence))
        for l, ref in enumerate(ref_layers):
            ours = real_rows(out.hidden_states[l], enc["attention_mask"], b)
            assert ours.shape == ref.shape
            err = float(np.abs(ours - ref).max())
            assert err < ATOL, f"batch {batch_index}, sentence {b}, layer {l}: max abs error {err:.3g}"
        # padding positions stay zero in every layer
        pad = ~enc["attention_mask"][b].bool()
        for layer in out.hidden_states:
            assert torch.all(layer[b][pad] == 0)


def test_skip_connections_stateful_match_numpy_reference(skip_model, numpy_bilm_skip, tokenizer, fixture_sentences):
    """Two stateful batches of different lengths with skip connections on."""
    states = [None, None, None]
    state = None
    for i in range(2):
        words = batch_words(fixture_sentences, i)
        enc = encode(tokenizer, words)
        with torch.no_grad():
            out = skip_model(**enc, state=state, use_cache=True)
        state = out.state
        for k in range(3):
            ref_layers, states[k] = numpy_bilm_skip.run(with_boundaries(words[k]), states[k])
            for l, ref in enumerate(ref_layers):
                err = float(np.abs(real_rows(out.hidden_states[l], enc["attention_mask"], k) - ref).max())
                assert err < ATOL, f"batch {i}, sentence {k}, layer {l}: max abs error {err:.3g}"


# ----------------------------------------------------------------------------------------------------------------
# (d), (e): padding side and batch composition
# ----------------------------------------------------------------------------------------------------------------
def test_left_padding_equals_right_padding(skip_model, tokenizer, fixture_sentences):
    words = batch_words(fixture_sentences, 3)
    right = encode(tokenizer, words, padding_side="right")
    left = encode(tokenizer, words, padding_side="left")
    assert not torch.equal(right["attention_mask"], left["attention_mask"])  # the padding really differs
    with torch.no_grad():
        out_r = skip_model(**right, use_cache=True)
        out_l = skip_model(**left, use_cache=True)
    for b in range(len(words)):
        for l, (lr, ll) in enumerate(zip(out_r.hidden_states, out_l.hidden_states)):
            a, c = real_rows(lr, right["attention_mask"], b), real_rows(ll, left["attention_mask"], b)
            assert a.shape == c.shape
            assert np.abs(a - c).max() < 1e-6, f"sentence {b}, layer {l}"
        a = real_rows(out_r.last_hidden_state, right["attention_mask"], b)
        c = real_rows(out_l.last_hidden_state, left["attention_mask"], b)
        assert np.abs(a - c).max() < 1e-6
    for s_r, s_l in zip(out_r.state, out_l.state):
        assert torch.allclose(s_r, s_l, atol=1e-6, rtol=0)


def test_output_does_not_depend_on_the_rest_of_the_batch(skip_model, tokenizer, fixture_sentences):
    words = batch_words(fixture_sentences, 5) + [["Short", "one"], fixture_sentences[0][0].split(" ")]
    enc = encode(tokenizer, words)
    with torch.no_grad():
        together = skip_model(**enc, use_cache=True)
    for b, sentence in enumerate(words):
        alone_enc = encode(tokenizer, [sentence])
        with torch.no_grad():
            alone = skip_model(**alone_enc, use_cache=True)
        for l in range(len(alone.hidden_states)):
            a = real_rows(together.hidden_states[l], enc["attention_mask"], b)
            c = alone.hidden_states[l][0].double().numpy()
            assert np.abs(a - c).max() < 1e-6, f"sentence {b}, layer {l}"
        for s_t, s_a in zip(together.state, alone.state):
            assert torch.allclose(s_t[:, :, b], s_a[:, :, 0], atol=1e-6, rtol=0)


def test_attention_mask_defaults_to_nonzero_words(skip_model, tokenizer, fixture_sentences):
    enc = encode(tokenizer, batch_words(fixture_sentences, 2))
    with torch.no_grad():
        with_mask = skip_model(**enc)
        without = skip_model(input_ids=enc["input_ids"])
    assert torch.equal(with_mask.hidden_states[-1], without.hidden_states[-1])


# ----------------------------------------------------------------------------------------------------------------
# (f): the grad-enabled path
# ----------------------------------------------------------------------------------------------------------------
def test_grad_path_matches_no_grad_path_and_backward_works(elmo_fixture_dir, tokenizer, fixture_sentences):
    model = load_fixture_model(elmo_fixture_dir, use_skip_connections=True)
    words = batch_words(fixture_sentences, 0)
    enc = encode(tokenizer, words)
    with torch.no_grad():
        ref = model(**enc, use_cache=True)
    model.train()
    with torch.enable_grad():
        out = model(**enc, use_cache=True)
        assert out.hidden_states[-1].requires_grad
        for l, (a, b) in enumerate(zip(out.hidden_states, ref.hidden_states)):
            err = float((a.detach() - b).abs().max())
            assert err < ATOL, f"layer {l}: grad path differs from no-grad path by {err:.3g}"
        assert float((out.last_hidden_state.detach() - ref.last_hidden_state).abs().max()) < ATOL
        for a, b in zip(out.state, ref.state):
            assert float((a.detach() - b).abs().max()) < ATOL
        loss = out.last_hidden_state.pow(2).sum() + out.state[0].sum()
        loss.backward()
    for name in ("char_encoder.char_embedding.weight", "char_encoder.convolutions.0.weight",
                 "bilm.layers.0.weight_hh", "bilm.layers.1.weight_ih", "bilm.layers.1.weight_proj",
                 "scalar_mixes.0.scalar_parameters"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None, name
        assert torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, name
    # padding row of the character embedding: id 0 never contributes
    assert torch.all(model.char_encoder.char_embedding.weight.grad[0] == 0)


def test_gradient_matches_finite_differences():
    """Directional derivative of a loss in float64, for the recurrent weights and the initial state."""
    from conftest import tiny_model

    model = tiny_model(seed=3).double()
    tok_ids = torch.tensor([[[259, 98, 260] + [261] * 47, [259, 99, 100, 260] + [261] * 46, [0] * 50],
                            [[259, 101, 260] + [261] * 47, [259, 102, 260] + [261] * 47, [259, 103, 260] + [261] * 47]])
    h0, c0 = model.zero_state(2, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    h0 = (torch.randn(h0.shape, generator=gen, dtype=torch.float64) * 0.5).requires_grad_()
    c0 = torch.randn(c0.shape, generator=gen, dtype=torch.float64) * 0.5
    weight = model.bilm.layers[1].weight_hh
    direction = torch.randn(weight.shape, generator=gen, dtype=torch.float64)
    direction_h = torch.randn(h0.shape, generator=gen, dtype=torch.float64)

    def loss_fn(h):
        out = model(input_ids=tok_ids, state=(h, c0), use_cache=True)
        return (out.hidden_states[-1] * torch.linspace(-1, 1, out.hidden_states[-1].shape[-1],
                                                       dtype=torch.float64)).sum() + out.state[1].sum()

    loss = loss_fn(h0)
    loss.backward()
    analytic_w = float((weight.grad * direction).sum())
    analytic_h = float((h0.grad * direction_h).sum())
    eps = 1e-6
    with torch.no_grad():
        weight.add_(eps * direction)
        plus = float(loss_fn(h0))
        weight.sub_(2 * eps * direction)
        minus = float(loss_fn(h0))
        weight.add_(eps * direction)
        numeric_w = (plus - minus) / (2 * eps)
        numeric_h = (float(loss_fn(h0 + eps * direction_h)) - float(loss_fn(h0 - eps * direction_h))) / (2 * eps)
    assert abs(analytic_w) > 1e-3
    assert abs(analytic_w - numeric_w) < 1e-6 * max(1.0, abs(numeric_w)), (analytic_w, numeric_w)
    assert abs(analytic_h - numeric_h) < 1e-6 * max(1.0, abs(numeric_h)), (analytic_h, numeric_h)


# ----------------------------------------------------------------------------------------------------------------
# (g): bfloat16
# ----------------------------------------------------------------------------------------------------------------
def test_bfloat16_close_to_float32(elmo_fixture_dir, fixture_model, tokenizer, fixture_sentences):
    words = batch_words(fixture_sentences, 0)
    enc = encode(tokenizer, words)
    with torch.no_grad():
        ref = fixture_model(**enc)
    model = load_fixture_model(elmo_fixture_dir).to(torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    with torch.no_grad():
        out = model(**enc)
    assert out.hidden_states[-1].dtype == torch.bfloat16
    mask = enc["attention_mask"].bool()
    for name, ours, theirs in (("top layer", out.hidden_states[-1], ref.hidden_states[-1]),
                               ("last_hidden_state", out.last_hidden_state, ref.last_hidden_state)):
        a, b = ours.float()[mask], theirs[mask]
        assert torch.isfinite(a).all()
        cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
        assert cos.numel() == int(mask.sum())
        assert float(cos.min()) >= 0.999, f"{name}: minimum cosine similarity to float32 {float(cos.min()):.6f}"
