"""The traceable path of ElmoModel (a scan over the time axis; what export and compilation see) computes what the
eager packed path computes: on the TensorFlow fixture, statefully, and on random models with any padding, in both its
forms: inference (packed words, bilstm_elmo.lstm_cell_op on the running rows; what an ONNX export holds) and
differentiable (masked steps over the padded time axis; when gradients are on)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import randomize_, tiny_config
from hf_elmo import ElmoModel, ElmoTokenizer


def run_both(model: ElmoModel, differentiable: bool = False, **inputs):
    with torch.no_grad():
        model.graph_mode = False
        packed = model(**inputs, use_cache=True)
    model.graph_mode = True
    try:
        with torch.set_grad_enabled(differentiable):
            graph = model(**inputs, use_cache=True)
    finally:
        model.graph_mode = False
    assert graph.last_hidden_state.requires_grad == differentiable
    return packed, graph


def test_graph_path_matches_tensorflow_statefully(fixture_model, fixture_sentences, elmo_fixture_dir, tokenizer):
    refs = [h5py.File(elmo_fixture_dir / f"lm_embeddings_{k}.hdf5", "r") for k in range(3)]
    state, worst = None, 0.0
    fixture_model.graph_mode = True
    try:
        for i in range(10):
            batch = [fixture_sentences[k][i].split(" ") for k in range(3)]
            enc = tokenizer(batch, is_split_into_words=True, padding=True, return_tensors="pt")
            with torch.no_grad():
                out = fixture_model(**enc, state=state, use_cache=True)
            state = out.state
            for k, words in enumerate(batch):
                ref = refs[k][str(i)][...]
                expected = np.concatenate([ref[0], ref[1]], axis=-1)
                got = out.hidden_states[-1][k, 1 : len(words) + 1].numpy()
                worst = max(worst, float(np.abs(got - expected).max()))
    finally:
        fixture_model.graph_mode = False
    assert worst < 1e-5, f"graph path vs TensorFlow: max abs diff {worst:.3g}"


@pytest.mark.parametrize("differentiable", [False, True], ids=["inference", "differentiable"])
@pytest.mark.parametrize("side", ["right", "left", "holes"])
def test_graph_path_matches_packed_path(side, differentiable):
    model = randomize_(ElmoModel(tiny_config(use_skip_connections=True)).eval(), seed=3)
    tok = ElmoTokenizer()
    texts = ["a b c d e f g", "hello", "x y z", "one two", "last"]
    enc = tok(texts, padding=True, return_tensors="pt", padding_side="left" if side == "left" else "right")
    if side == "holes":  # padding between words, and a row without any word
        enc["attention_mask"][0, 2] = enc["attention_mask"][2, 0] = 0
        enc["attention_mask"][4] = 0
    gen = torch.Generator().manual_seed(1)
    h0, c0 = model.zero_state(len(texts))
    state = (torch.randn(h0.shape, generator=gen) * 0.3, torch.randn(c0.shape, generator=gen) * 0.3)
    # float64: the two paths are the same computation, so they agree to rounding of float64
    packed, graph = run_both(model.double(), differentiable, **enc, state=tuple(s.double() for s in state))
    for a, b in zip((*packed.hidden_states, packed.last_hidden_state, *packed.state),
                    (*graph.hidden_states, graph.last_hidden_state, *graph.state), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # float32: each path rounds differently (oneDNN's GEMMs on the running rows vs masked products over the padded
    # axis; on an AVX2 CPU each lands up to ~9e-7 from the float64 result on the cell state, which reaches the clip
    # of 3, on opposite sides): 1e-6 absolute plus 1e-5 relative to the value
    packed, graph = run_both(model.float(), differentiable, **enc, state=state)
    for a, b in zip((*packed.hidden_states, packed.last_hidden_state, *packed.state),
                    (*graph.hidden_states, graph.last_hidden_state, *graph.state), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_graph_path_is_differentiable():
    model = randomize_(ElmoModel(tiny_config()), seed=5)
    model.graph_mode = True
    enc = ElmoTokenizer()(["a b c", "d"], padding=True, return_tensors="pt")
    model(**enc).last_hidden_state.sum().backward()
    grads = [p.grad for p in model.bilm.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("trainable", ["char_encoder", "state"])
def test_graph_path_passes_gradients_with_a_frozen_bilm(trainable):
    """The inference form's step op has no backward: a gradient that must pass through the steps (to a trainable
    character encoder below a frozen biLSTM, or to the given state) takes the masked form, with the eager path's
    gradients."""
    enc = ElmoTokenizer()(["a b c", "d"], padding=True, return_tensors="pt")
    grads = []
    for graph_mode in (False, True):
        model = randomize_(ElmoModel(tiny_config()), seed=5)
        for w in model.bilm.parameters():
            w.requires_grad_(False)
        if trainable == "state":
            for w in model.char_encoder.parameters():
                w.requires_grad_(False)
        h0, c0 = (t.clone().requires_grad_(trainable == "state") for t in model.zero_state(2))
        model.graph_mode = graph_mode
        model(**enc, state=(h0, c0)).last_hidden_state.sum().backward()
        grads.append(h0.grad if trainable == "state" else model.char_encoder.projection.weight.grad)
    assert grads[1] is not None and grads[1].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def _import_copy(path, name: str):
    """Import a copy of bilstm_elmo.py under another module name, as transformers imports a Hub folder's remote code
    beside the installed package."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as importlib's own import does (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def test_custom_op_is_named_per_code_version(tmp_path):
    """The traceable path's op is process-global: an identical copy of bilstm_elmo.py (remote code of the same
    version) reuses the installed one's op; a changed copy registers its own instead of silently running the first."""
    from hf_elmo.models.elmo import bilstm_elmo

    source = Path(bilstm_elmo.__file__).read_text(encoding="utf-8")
    same = tmp_path / "same" / "bilstm_elmo.py"
    same.parent.mkdir()
    same.write_text(source, encoding="utf-8")
    copy = _import_copy(same, "remote_same_bilstm_elmo")
    assert copy.LSTM_CELL_OP_NAME == bilstm_elmo.LSTM_CELL_OP_NAME
    assert copy.lstm_cell_op is bilstm_elmo.lstm_cell_op

    changed = tmp_path / "changed" / "bilstm_elmo.py"
    changed.parent.mkdir()
    # any edit of the file (here one comment line) gives a new name
    changed.write_text(source + "\n# a later version\n", encoding="utf-8")
    other = _import_copy(changed, "remote_changed_bilstm_elmo")
    assert other.LSTM_CELL_OP_NAME != bilstm_elmo.LSTM_CELL_OP_NAME
    assert other.lstm_cell_op is not bilstm_elmo.lstm_cell_op
    # each name runs its own file's body
    h, c = torch.zeros(2, 3), torch.zeros(2, 4)
    gates, w_hh, w_proj = torch.randn(2, 16), torch.randn(3, 16), torch.randn(4, 3)
    args = (h, c, gates, torch.tensor(0), torch.tensor(2), w_hh, w_proj, 0.0, 0.0)
    for module in (bilstm_elmo, other):
        torch.testing.assert_close(module.lstm_cell_op(*args)[2], module._running_cell(*args)[2])
