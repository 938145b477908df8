"""ULMFiT's training utilities (hf_elmo.training) on tiny toy models, with the transformers Trainer where it matters:
discriminative learning rates × slanted triangular schedule step by step, gradual unfreezing, the stateful
language-model stream, and length-sorted classifier batches."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, Trainer, TrainerCallback, TrainingArguments

from hf_elmo import ElmoConfig, ElmoForSequenceClassification
from hf_elmo.training import (
    ULMFIT_BETAS,
    GradualUnfreezingCallback,
    LMStreamDataset,
    OneCycle,
    SlantedTriangular,
    SortedLengthSampler,
    SortedLengthTrainer,
    StatefulLMTrainer,
    detach_state,
    discriminative_param_groups,
    expected_window_length,
    freeze_to,
    grouped_parameters,
    layer_groups_of,
    lm_stream_batches,
    make_optimizer,
    next_token_targets,
    num_windows,
    one_cycle_schedule,
    slanted_triangular_schedule,
    sorted_batches,
    window_lengths,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Toy-sized ops run fastest on one thread; two threads' barriers cost seconds when the CPU is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------------------------------
# Toy models: embedding → GRU layers → head, with layer_groups() as the AWD-LSTM models expose it (GRUs, as this
# torch build's oneDNN LSTM kernel is ~100× slower than the native path at toy sizes)
# --------------------------------------------------------------------------------------------------------------------
class ToyConfig(PretrainedConfig):
    model_type = "toy-ulmfit"

    def __init__(self, vocab_size: int = 40, hidden: int = 8, n_layers: int = 2, num_labels: int = 3,
                 tie: bool = False, **kwargs):
        self.vocab_size, self.hidden, self.n_layers, self.tie = vocab_size, hidden, n_layers, tie
        super().__init__(num_labels=num_labels, **kwargs)


class _ToyBase(PreTrainedModel):
    config_class = ToyConfig
    main_input_name = "input_ids"
    accepts_loss_kwargs = False

    def _encode(self, input_ids, state=None):
        x = self.embedding(input_ids)
        states = []
        for i, rnn in enumerate(self.rnns):
            x, s = rnn(x, None if state is None else state[i])
            states.append(s)
        return x, tuple(states)


class ToyLM(_ToyBase):
    """A recurrent LM that shifts its labels itself (next_token_targets) and carries ``state`` like AWD-LSTM."""

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        h = config.hidden
        self.embedding = nn.Embedding(config.vocab_size, h)
        self.rnns = nn.ModuleList(nn.GRU(h, h, batch_first=True) for _ in range(config.n_layers))
        self.decoder = nn.Linear(h, config.vocab_size)
        if config.tie:
            self.decoder.weight = self.embedding.weight
        self.post_init()
        self.seen: list[dict] = []  # what each forward got, for the tests

    def layer_groups(self):
        return [[self.embedding], *[[rnn] for rnn in self.rnns], [self.decoder]]

    def forward(self, input_ids, labels=None, state=None, use_cache=None, **kwargs):
        self.seen.append({"input_ids": input_ids.clone(), "labels": None if labels is None else labels.clone(),
                          "state": state, "training": self.training})
        x, new_state = self._encode(input_ids, state)
        logits = self.decoder(x)
        out = {"logits": logits}
        if labels is not None:
            targets = next_token_targets(labels, input_ids.shape[1])
            out["loss"] = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        if use_cache:
            out["state"] = new_state
            self.seen[-1]["out_state"] = new_state
        return out


class ToyClassifier(_ToyBase):
    """Embedding → GRUs → mean over the real tokens → [BatchNorm → Linear] head; records the item ids it saw."""

    def __init__(self, config: ToyConfig, batchnorm_in_embedding_group: bool = False):
        super().__init__(config)
        h = config.hidden
        self.embedding = nn.Embedding(config.vocab_size, h, padding_idx=0)
        self.embedding_norm = nn.BatchNorm1d(h) if batchnorm_in_embedding_group else None
        self.rnns = nn.ModuleList(nn.GRU(h, h, batch_first=True) for _ in range(config.n_layers))
        self.head = nn.Sequential(nn.LayerNorm(h), nn.Linear(h, config.num_labels))
        self.post_init()
        self.seen_ids: list[list[int]] = []

    def layer_groups(self):
        bottom = [self.embedding] + ([self.embedding_norm] if self.embedding_norm is not None else [])
        return [bottom, *[[rnn] for rnn in self.rnns], [self.head]]

    def forward(self, input_ids, attention_mask=None, labels=None, idx=None, **kwargs):
        if idx is not None:
            self.seen_ids.append(idx.tolist())
        x, _ = self._encode(input_ids)
        if self.embedding_norm is not None:
            x = x + self.embedding_norm(x.transpose(1, 2)).transpose(1, 2)
        mask = (input_ids != 0) if attention_mask is None else attention_mask.bool()
        mask = mask.unsqueeze(-1).float()
        logits = self.head((x * mask).sum(1) / mask.sum(1).clamp_min(1))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits, labels)
        return out


def classifier_data(n: int = 24, length: int = 6, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(1, 40, (length,), generator=g), "labels": int(i % 3)} for i in range(n)]


def training_args(tmp_path: Path, **overrides) -> TrainingArguments:
    fields = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, num_train_epochs=2,
                  report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0,
                  max_grad_norm=0.0, dataloader_num_workers=0)
    fields.update(overrides)
    return TrainingArguments(**fields)


class Recorder(TrainerCallback):
    """Per optimizer step: (global_step, epoch, [(layer_group, lr, weight_decay, betas) per param group])."""

    def __init__(self):
        self.steps = []

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        groups = [(g["layer_group"], g["lr"], g["weight_decay"], tuple(g["betas"])) for g in optimizer.param_groups]
        self.steps.append((state.global_step, state.epoch, groups))


def paper_stlr(t: int, T: int, cut_frac: float = 0.1, ratio: float = 32.0) -> float:
    """Howard & Ruder 2018, eq. 3, written out independently of the package (η_t / η_max)."""
    cut = math.floor(T * cut_frac)
    p = t / cut if t < cut else 1 - (t - cut) / (cut * (1 / cut_frac - 1))
    return (1 + p * (ratio - 1)) / ratio


# --------------------------------------------------------------------------------------------------------------------
# Layer groups and discriminative learning rates
# --------------------------------------------------------------------------------------------------------------------
def test_discriminative_param_groups_cover_every_parameter_once_with_lr_over_2_6_per_level():
    model = ToyClassifier(ToyConfig(n_layers=3))
    groups = discriminative_param_groups(model, lr=1e-2, weight_decay=0.1)
    seen = Counter(id(p) for g in groups for p in g["params"])
    assert set(seen) == {id(p) for p in model.parameters()} and set(seen.values()) == {1}
    n_groups = 5
    for g in groups:
        assert g["lr"] == pytest.approx(1e-2 / 2.6 ** (n_groups - 1 - g["layer_group"]), rel=1e-12)
    # biases and norm weights are not decayed; everything else is
    names = {id(p): n for n, p in model.named_parameters()}
    for g in groups:
        for p in g["params"]:
            exempt = "bias" in names[id(p)] or names[id(p)].startswith("head.0.")
            assert g["weight_decay"] == (0.0 if exempt else 0.1), names[id(p)]
    # without weight decay: exactly one param group per layer group, bottom to top
    plain = discriminative_param_groups(model, lr=1e-2)
    assert [g["layer_group"] for g in plain] == list(range(n_groups))
    assert all(g["weight_decay"] == 0.0 for g in plain)
    # explicit per-group rates
    explicit = discriminative_param_groups(model, lr=[1, 2, 3, 4, 5], factor=99)
    assert [g["lr"] for g in explicit] == [1, 2, 3, 4, 5]


def test_make_optimizer_is_adamw_over_all_parameters_frozen_ones_included():
    model = ToyClassifier(ToyConfig())
    model.embedding.weight.requires_grad_(False)
    opt = make_optimizer(model, lr=3e-3, betas=ULMFIT_BETAS, weight_decay=0.01)
    assert isinstance(opt, torch.optim.AdamW)
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in model.parameters()}
    assert all(tuple(g["betas"]) == (0.7, 0.99) for g in opt.param_groups)
    assert max(g["lr"] for g in opt.param_groups) == pytest.approx(3e-3)


def test_a_parameter_shared_by_groups_belongs_to_the_topmost():
    model = ToyLM(ToyConfig(tie=True))  # decoder.weight is embedding.weight
    named = grouped_parameters(model)
    assert named[0] == []  # the embedding group's only parameter is tied to the decoder, in the top group
    assert any(p is model.embedding.weight for _, p in named[-1])
    groups = discriminative_param_groups(model, lr=1.0)
    assert [g["layer_group"] for g in groups] == [1, 2, 3]
    assert groups[-1]["lr"] == 1.0 and groups[0]["lr"] == pytest.approx(1 / 2.6**2)


def test_layer_group_errors_are_clear():
    model = ToyClassifier(ToyConfig())
    with pytest.raises(ValueError, match=r"parameters in no layer group: head\.0\.weight"):
        discriminative_param_groups(model, lr=1e-3, groups=[[model.embedding], list(model.rnns), [model.head[1]]])
    with pytest.raises(ValueError, match="not one of the model's parameters"):
        discriminative_param_groups(model, lr=1e-3, groups=[[model.embedding, nn.Linear(2, 2)], list(model.rnns),
                                                            [model.head]])
    with pytest.raises(TypeError, match="holds a str"):
        discriminative_param_groups(model, lr=1e-3, groups=[["embedding"]])
    with pytest.raises(ValueError, match="4 layer groups"):
        discriminative_param_groups(model, lr=[1e-3, 1e-2])
    with pytest.raises(TypeError, match="has no layer_groups"):
        layer_groups_of(nn.Linear(2, 2))


def test_elmo_models_get_a_default_grouping():
    cfg = ElmoConfig(char_cnn_filters=[[1, 4], [2, 4]], n_highway=1, char_embedding_dim=4, lstm_dim=8,
                     projection_dim=4, n_layers=2, num_labels=2)
    model = ElmoForSequenceClassification(cfg)
    groups = layer_groups_of(model)
    assert len(groups) == 4  # characters, biLSTM layer 0, layer 1, scalar mix + head
    named = grouped_parameters(model)
    assert {n for n, _ in named[-1]} >= {"classifier.weight", "classifier.bias"}
    assert all(n.startswith("elmo.char_encoder.") for n, _ in named[0])
    freeze_to(model, -1)
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith("elmo.bilm."))
    assert model.classifier.weight.requires_grad


# --------------------------------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [10, 30, 100, 1000])
def test_slanted_triangular_is_the_papers_formula(T):
    stlr = SlantedTriangular(T)
    for t in range(T + 1):
        assert stlr(t) == pytest.approx(paper_stlr(t, T), rel=1e-12, abs=1e-15)
    cut = math.floor(T * 0.1)
    assert stlr(0) == pytest.approx(1 / 32) and stlr(cut) == 1.0 and stlr(T) == pytest.approx(1 / 32)


def test_slanted_triangular_edge_cases():
    # T·cut_frac not whole (T=25, cut=2): the formula is exact until it reaches its floor at t = cut/cut_frac = 20,
    # after which the rate stays at η_max/ratio instead of going on down (negative)
    stlr = SlantedTriangular(25)
    for t in range(21):
        assert stlr(t) == pytest.approx(paper_stlr(t, 25), rel=1e-12)
    assert paper_stlr(24, 25) < 0
    assert [stlr(t) for t in range(20, 30)] == [1 / 32] * 10
    # T < 1/cut_frac: no warm-up; from η_max down to η_max/ratio linearly over the T steps
    short = SlantedTriangular(5)
    assert short.cut == 0
    assert [short(t) for t in range(6)] == pytest.approx([(1 + (1 - t / 5) * 31) / 32 for t in range(6)])
    assert SlantedTriangular(1)(0) == 1.0
    with pytest.raises(ValueError):
        SlantedTriangular(0)
    with pytest.raises(ValueError):
        SlantedTriangular(10, cut_frac=1.0)


def test_one_cycle_is_fastais_and_cycles_momentum():
    T = 100
    cycle = OneCycle(T)  # pct_start 0.25, div 25, div_final 1e5
    assert cycle(0) == pytest.approx(1 / 25)
    assert cycle(25) == pytest.approx(1.0)
    assert cycle(T) == pytest.approx(1e-5)
    assert cycle(10) == pytest.approx(1 / 25 + (1 - math.cos(math.pi * 10 / 25)) * (1 - 1 / 25) / 2)
    assert cycle(60) == pytest.approx(1 + (1 - math.cos(math.pi * 35 / 75)) * (1e-5 - 1) / 2)
    layer = nn.Linear(2, 2)
    opt = torch.optim.AdamW([{"params": [layer.weight], "lr": 1.0}, {"params": [layer.bias], "lr": 0.1}])
    sched = one_cycle_schedule(opt, T)
    for t in range(T):
        assert opt.param_groups[0]["lr"] == pytest.approx(cycle(t))
        assert opt.param_groups[1]["lr"] == pytest.approx(0.1 * cycle(t))
        mom = opt.param_groups[0]["betas"][0]
        assert mom == pytest.approx(cycle.momentum(t))
        assert opt.param_groups[1]["betas"][1] == 0.999
        opt.step()
        sched.step()
    assert cycle.momentum(0) == pytest.approx(0.95) and cycle.momentum(25) == pytest.approx(0.85)
    with pytest.raises(ValueError, match="no momentum"):
        one_cycle_schedule(torch.optim.Adagrad(layer.parameters()), T)


def test_trainer_lrs_are_stlr_times_discriminative_factor_at_every_step(tmp_path):
    torch.manual_seed(0)
    model = ToyClassifier(ToyConfig(n_layers=2))
    data = classifier_data(n=40)
    args = training_args(tmp_path, num_train_epochs=2, per_device_train_batch_size=4)  # 10 steps per epoch
    opt = make_optimizer(model, lr=1e-2, weight_decay=0.01, betas=ULMFIT_BETAS)
    steps = 20
    sched = slanted_triangular_schedule(opt, num_training_steps=steps)
    rec = Recorder()
    trainer = Trainer(model=model, args=args, train_dataset=data, optimizers=(opt, sched), callbacks=[rec])
    trainer.train()
    assert trainer.state.max_steps == steps and [s[0] for s in rec.steps] == list(range(steps))
    n_groups = 4
    for t, _, groups in rec.steps:
        # decayed and not per layer group (the embedding has no bias)
        assert sorted(level for level, *_ in groups) == [0, 1, 1, 2, 2, 3, 3]
        for level, lr, _, betas in groups:
            expected = 1e-2 / 2.6 ** (n_groups - 1 - level) * paper_stlr(t, steps)
            assert lr == pytest.approx(expected, rel=1e-9), (t, level)
            assert betas == (0.7, 0.99)
    # the ratios between layer groups hold at every step
    ratios = {round(lr / groups[-1][1], 12) for _, _, groups in rec.steps for _, lr, _, _ in groups}
    assert ratios == {round(1 / 2.6**k, 12) for k in range(n_groups)}


# --------------------------------------------------------------------------------------------------------------------
# Gradual unfreezing
# --------------------------------------------------------------------------------------------------------------------
class SnapshotCallback(TrainerCallback):
    """requires_grad per layer group at each epoch's first step, and the weights at each epoch's start and end."""

    def __init__(self):
        self.requires_grad, self.at_begin, self.at_end = {}, {}, {}
        self._epoch = 0

    @staticmethod
    def _snapshot(model):
        return [[p.detach().clone() for _, p in group] for group in grouped_parameters(model)]

    def on_epoch_begin(self, args, state, control, model=None, **kwargs):
        self._epoch = math.floor(state.epoch + 1e-6)  # a resumed epoch begins where its checkpoint was (e.g. 1.5)
        self.at_begin[self._epoch] = self._snapshot(model)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if self._epoch not in self.requires_grad:
            self.requires_grad[self._epoch] = [[p.requires_grad for _, p in g] for g in grouped_parameters(model)]

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.at_end[self._epoch] = self._snapshot(model)


def test_gradual_unfreezing_under_the_trainer(tmp_path):
    torch.manual_seed(0)
    model = ToyClassifier(ToyConfig(n_layers=2))  # 4 layer groups
    data = classifier_data(n=16)  # 2 steps per epoch
    snap = SnapshotCallback()
    # the optimizer holds every parameter, with weight decay: frozen ones must still not move
    opt = make_optimizer(model, lr=1e-2, weight_decay=0.1)
    sched = slanted_triangular_schedule(opt, num_training_steps=5 * 2)
    # callbacks run in order: unfreezing first, then the snapshot sees its result
    args = training_args(tmp_path, num_train_epochs=5, per_device_train_batch_size=8)
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      optimizers=(opt, sched), callbacks=[GradualUnfreezingCallback(), snap])
    trainer.train()
    n_groups = 4
    for epoch in range(5):
        trained = min(n_groups, epoch + 1)
        for level, flags in enumerate(snap.requires_grad[epoch]):
            assert all(f == (level >= n_groups - trained) for f in flags), (epoch, level)
        for level, (before, after) in enumerate(zip(snap.at_begin[epoch], snap.at_end[epoch])):
            moved = any(not torch.equal(a, b) for a, b in zip(before, after))
            assert moved == (level >= n_groups - trained), (epoch, level)


def test_resuming_from_a_checkpoint_keeps_the_unfreezing_stage_and_the_schedule(tmp_path):
    """Epochs of 2 steps, checkpoints every 3 steps: resuming from step 3 (mid epoch 1) and step 6 (end of epoch 2)."""

    def run(resume=None, max_steps=None):
        torch.manual_seed(0)
        model = ToyClassifier(ToyConfig(n_layers=2))
        opt = make_optimizer(model, lr=1e-2)
        sched = one_cycle_schedule(opt, 10)  # momentum cycling too: its state must load with weights_only
        rec, snap = Recorder(), SnapshotCallback()
        args = training_args(tmp_path, num_train_epochs=5, per_device_train_batch_size=8, save_strategy="steps",
                             save_steps=3, max_steps=max_steps or -1)
        trainer = Trainer(model=model, args=args, train_dataset=classifier_data(n=16), optimizers=(opt, sched),
                          callbacks=[GradualUnfreezingCallback(), rec, snap])
        trainer.train(resume_from_checkpoint=resume)
        return rec, snap

    full, full_snap = run()
    for step in (3, 6):
        resumed, snap = run(resume=str(tmp_path / "out" / f"checkpoint-{step}"))
        assert [s[0] for s in resumed.steps] == list(range(step, 10))
        assert resumed.steps == full.steps[step:]  # same lrs and momenta, step by step
        for epoch, flags in snap.requires_grad.items():
            assert flags == full_snap.requires_grad[epoch], (step, epoch)


def test_freeze_to_like_fastai():
    model = ToyClassifier(ToyConfig(n_layers=2), batchnorm_in_embedding_group=True)
    model.rnns[0].bias_hh_l0.requires_grad_(False)  # frozen before freeze_to sees the model: stays frozen

    def flags():
        return [any(p.requires_grad for _, p in g) for g in grouped_parameters(model)]

    freeze_to(model, -1)
    assert flags() == [True, False, False, True]  # group 0 only through its BatchNorm (train_bn)
    assert not model.embedding.weight.requires_grad and model.embedding_norm.weight.requires_grad
    freeze_to(model, 2, train_bn=False)
    assert flags() == [False, False, True, True]
    freeze_to(model, 0)
    assert all(p.requires_grad for n, p in model.named_parameters() if n != "rnns.0.bias_hh_l0")
    assert not model.rnns[0].bias_hh_l0.requires_grad
    freeze_to(model, 4)
    assert flags() == [True, False, False, False]
    with pytest.raises(ValueError, match="must lie in"):
        freeze_to(model, 5)


# --------------------------------------------------------------------------------------------------------------------
# The language-model stream
# --------------------------------------------------------------------------------------------------------------------
def _documents(n_docs: int = 17, seed: int = 0) -> list[np.ndarray]:
    """Documents of distinct token ids (each id once in the corpus), so that positions can be told apart."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 60, n_docs)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return [np.arange(s, s + n) for s, n in zip(starts, lengths)]


@pytest.mark.parametrize("jitter", [True, False])
def test_lm_stream_rows_continue_across_batches_and_use_every_token_once(jitter):
    docs = _documents()
    n_tokens = sum(len(d) for d in docs)
    bs, bptt = 4, 12
    ds = LMStreamDataset(docs, bs, bptt, jitter=jitter, seed=3)
    row_length = (n_tokens - 1) // bs
    assert ds.row_length == row_length
    for epoch in range(3):
        stream = ds.stream(epoch)
        # the stream is the documents, whole, in some order
        assert sorted(stream.tolist()) == list(range(n_tokens))
        starts = {int(d[0]): len(d) for d in docs}
        i = 0
        while i < n_tokens:
            assert int(stream[i]) in starts, "a document was cut"
            n = starts[int(stream[i])]
            assert stream[i : i + n].tolist() == list(range(stream[i], stream[i] + n))
            i += n
        batches = list(lm_stream_batches(docs, bs, bptt, jitter=jitter, seed=3, epoch=epoch))
        assert len(batches) == ds.num_batches == num_windows(row_length, bptt, jitter)
        inputs = torch.cat([b["input_ids"] for b in batches], dim=1)
        targets = torch.cat([b["labels"][:, 1:] for b in batches], dim=1)
        for b in batches:
            assert b["labels"].shape[1] == b["input_ids"].shape[1] + 1
            assert torch.equal(b["labels"][:, :-1], b["input_ids"])
        # row j reads stream[j·R : (j+1)·R] and predicts stream[j·R + 1 : (j+1)·R + 1], batch after batch
        expected = torch.from_numpy(stream[: bs * row_length].reshape(bs, row_length).astype(np.int64))
        assert torch.equal(inputs, expected)
        assert torch.equal(targets, torch.from_numpy(stream[1 : bs * row_length + 1].reshape(bs, row_length)
                                                     .astype(np.int64)))
        assert Counter(inputs.flatten().tolist()) == Counter(stream[: bs * row_length].tolist())
        assert len(set(inputs.flatten().tolist())) == bs * row_length  # every token once
        if jitter:
            lengths = [b["input_ids"].shape[1] for b in batches]
            assert lengths[:-1] != [bptt] * (len(lengths) - 1)
    assert not np.array_equal(ds.stream(0), ds.stream(1))  # shuffled afresh each epoch


def test_lm_stream_next_token_label_style_and_dataloader_order():
    docs = _documents()
    ds = LMStreamDataset(docs, 3, 10, jitter=True, seed=1, label_style="next_token")
    ds.set_epoch(2)
    expected = list(ds.batches(2))
    for b in expected:
        assert b["labels"].shape == b["input_ids"].shape
        assert torch.equal(b["labels"][:, :-1], b["input_ids"][:, 1:])
    # transformers' labels = input_ids, for models that want labels as long as their inputs
    for a, b in zip(LMStreamDataset(docs, 3, 10, seed=1, label_style="inputs").batches(2), expected):
        assert torch.equal(a["labels"], a["input_ids"]) and torch.equal(a["input_ids"], b["input_ids"])
    for workers in (0, 2):
        ds.set_epoch(2)
        loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=workers)
        assert len(loader) == len(expected)
        got = list(loader)
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    # a plain pass moves on to the next epoch by itself
    ds.set_epoch(0)
    first, second = list(ds), list(ds)
    assert ds.epoch == 2 and not all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(first, second))


def test_window_lengths_follow_fastais_rule():
    bptt, row_length = 70, 400_000
    counts = set()
    all_lengths = []
    for epoch in range(3):
        lengths = window_lengths(row_length, bptt, jitter=True, seed=0, epoch=epoch)
        assert lengths.sum() == row_length
        counts.add(len(lengths))
        all_lengths.append(lengths[:-1])  # the last window is cut at the row's end
        assert lengths[-1] >= 1
    assert counts == {num_windows(row_length, bptt)}  # the same number of batches every epoch
    lengths = np.concatenate(all_lengths)
    assert lengths.min() >= 5 and lengths.max() <= bptt + 25
    half = lengths < (bptt * 3) // 4  # drawn around bptt/2
    assert half.mean() == pytest.approx(0.05, abs=0.01)
    full = lengths[~half]
    # int(normal(70, 5)) truncates: mean 69.5; sd 5
    assert full.mean() == pytest.approx(69.5, abs=0.15)
    assert full.std() == pytest.approx(5.0, abs=0.15)
    assert lengths[half].mean() == pytest.approx(34.5 + 0.5, abs=0.7)  # int(normal(35, 5))
    assert lengths.mean() == pytest.approx(expected_window_length(bptt), abs=0.2)
    # without jitter, fastai v2's rule: bptt each, the last shorter
    assert window_lengths(150, 70, jitter=False).tolist() == [70, 70, 10]
    assert window_lengths(3, 70).tolist() == [3]


def test_lm_stream_rejects_bad_input():
    with pytest.raises(ValueError, match="too few"):
        LMStreamDataset([[1, 2, 3]], batch_size=4)
    with pytest.raises(TypeError, match="integer token ids"):
        LMStreamDataset([[1.5, 2.0]], batch_size=1)
    with pytest.raises(ValueError, match="1-D sequence"):
        LMStreamDataset([1, 2, 3], batch_size=1)
    with pytest.raises(ValueError, match="label_style"):
        LMStreamDataset([[1, 2, 3]], batch_size=1, label_style="shifted")


def test_next_token_targets_both_label_conventions():
    labels = torch.tensor([[1, 2, 3, 4]])
    assert next_token_targets(labels, 3).tolist() == [[2, 3, 4]]
    assert next_token_targets(labels, 4).tolist() == [[2, 3, 4, -100]]
    with pytest.raises(ValueError, match="do not fit"):
        next_token_targets(labels, 2)


def test_stateful_lm_trainer_carries_detached_state_and_resets_each_epoch(tmp_path):
    torch.manual_seed(0)
    model = ToyLM(ToyConfig(vocab_size=40))
    docs = [np.random.default_rng(i).integers(0, 40, 30) for i in range(8)]
    ds = LMStreamDataset(docs, batch_size=4, bptt=10, seed=0)
    args = training_args(tmp_path, num_train_epochs=2, gradient_accumulation_steps=2)
    opt = make_optimizer(model, lr=1e-2)
    total = 2 * math.ceil(ds.num_batches / 2)
    trainer = StatefulLMTrainer(model=model, args=args, train_dataset=ds,
                                optimizers=(opt, slanted_triangular_schedule(opt, total)))
    trainer.train()
    seen = [s for s in model.seen if s["training"]]
    assert len(seen) == 2 * ds.num_batches
    for epoch in range(2):
        calls = seen[epoch * ds.num_batches : (epoch + 1) * ds.num_batches]
        expected = list(ds.batches(epoch))
        assert calls[0]["state"] is None  # a fresh start every epoch
        for k, (call, batch) in enumerate(zip(calls, expected)):
            assert torch.equal(call["input_ids"], batch["input_ids"]) and torch.equal(call["labels"], batch["labels"])
            if k:
                prev = calls[k - 1]["out_state"]
                for h, ph in zip(call["state"], prev):
                    assert torch.equal(h, ph)
                    assert not h.requires_grad and h.grad_fn is None
            # batch k+1 continues every row of batch k
            if k + 1 < len(expected):
                assert torch.equal(expected[k + 1]["input_ids"][:, 0], batch["labels"][:, -1])
    # evaluation: a stream of its own, state carried within, never mixed with training's
    eval_ds = LMStreamDataset(docs, batch_size=4, bptt=10, jitter=False, shuffle=False)
    model.seen.clear()
    trainer.args.per_device_eval_batch_size = 4
    metrics = trainer.evaluate(eval_ds)
    assert math.isfinite(metrics["eval_loss"])
    assert len(model.seen) == eval_ds.num_batches and model.seen[0]["state"] is None
    assert all(s["state"] is not None for s in model.seen[1:])
    assert trainer.carried_state("eval") is None


def test_stateful_lm_trainer_checks_the_batch_size(tmp_path):
    model = ToyLM(ToyConfig())
    ds = LMStreamDataset([list(range(30))], batch_size=2, bptt=5)
    trainer = StatefulLMTrainer(model=model, args=training_args(tmp_path, per_device_train_batch_size=4),
                                train_dataset=ds)
    with pytest.raises(ValueError, match="must be equal"):
        trainer.train()


def test_detach_state_keeps_structure():
    x = torch.ones(2, requires_grad=True) * 2
    out = detach_state(((x, x), [x], {"h": x}))
    assert isinstance(out, tuple) and isinstance(out[1], list) and not out[2]["h"].requires_grad
    with pytest.raises(TypeError):
        detach_state(object())


# --------------------------------------------------------------------------------------------------------------------
# Length-sorted classifier batches
# --------------------------------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 500), min_size=1, max_size=300), batch_size=st.integers(1, 17),
       chunk_batches=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_sorted_batches_properties(lengths, batch_size, chunk_batches, seed):
    batches = sorted_batches(lengths, batch_size, seed=seed, chunk_batches=chunk_batches)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))  # every index exactly once
    assert all(len(b) == batch_size for b in batches[:-1]) and 1 <= len(batches[-1]) <= batch_size
    assert max(lengths[i] for i in batches[0]) == max(lengths)  # the longest item comes first
    for b in batches:  # each batch is a slice of a sorted chunk: roughly sorted overall, sorted within
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)


def test_sorted_batches_pad_little_and_change_every_epoch():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 400, 2000)
    sampler = SortedLengthSampler(lengths, batch_size=16, seed=1)
    batches = sampler.batches()

    def padding(bs):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in bs)

    shuffled = rng.permutation(len(lengths))
    random_batches = [shuffled[i : i + 16] for i in range(0, len(lengths), 16)]
    assert padding(batches) < 0.1 * padding(random_batches)
    assert list(sampler) == [i for b in batches for i in b] and len(sampler) == 2000
    assert list(sampler) != [i for b in batches for i in b]  # the next pass is the next epoch
    assert sorted_batches(lengths, 16, shuffle=False)[0] == list(np.argsort(-lengths, kind="stable")[:16])


def test_sorted_length_trainer_batches(tmp_path):
    torch.manual_seed(0)
    model = ToyClassifier(ToyConfig())
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(1, 30, (37,), generator=g).tolist()
    data = [{"input_ids": torch.randint(1, 40, (n,), generator=g), "labels": i % 3, "idx": i}
            for i, n in enumerate(lengths)]

    def collate(items):
        width = max(len(it["input_ids"]) for it in items)
        ids = torch.zeros(len(items), width, dtype=torch.long)
        for row, it in enumerate(items):
            ids[row, : len(it["input_ids"])] = it["input_ids"]
        return {"input_ids": ids, "labels": torch.tensor([it["labels"] for it in items]),
                "idx": torch.tensor([it["idx"] for it in items])}

    args = training_args(tmp_path, num_train_epochs=2, per_device_train_batch_size=8)
    opt = make_optimizer(model, lr=1e-3)
    trainer = SortedLengthTrainer(model=model, args=args, train_dataset=data, data_collator=collate, chunk_batches=2,
                                  optimizers=(opt, slanted_triangular_schedule(opt, 10)))
    trainer.train()
    per_epoch = math.ceil(37 / 8)
    assert len(model.seen_ids) == 2 * per_epoch
    epochs = [model.seen_ids[:per_epoch], model.seen_ids[per_epoch:]]
    for batches in epochs:
        assert sorted(i for b in batches for i in b) == list(range(37))
        assert max(lengths[i] for i in batches[0]) == max(lengths)
        for b in batches:
            assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)
    assert epochs[0] != epochs[1]
