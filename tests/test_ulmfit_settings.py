"""The ULMFiT recipe's knobs, per stage (issue: "The ULMFiT recipe with every knob a fastai user turns"): each is
settable from UlmfitSettings and from `hf-elmo ulmfit`, reaches the optimiser, schedule, stream and freezing it
names, and is recorded in metrics.json and the model cards."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from awd_lstm_testing import one_thread, tiny_model
from hf_elmo import AWDLSTMForLanguageModeling, AWDLSTMTokenizer
from hf_elmo.training.layer_groups import grouped_parameters
from hf_elmo.training.ulmfit import (
    _optimizers,
    lm_stream,
    run_ulmfit,
    save_ulmfit_folders,
    train_language_model,
    unfreezing_cycles,
)
from hf_elmo.training.ulmfit_settings import StageSettings, UlmfitSettings
from hf_elmo.training.unfreezing import FrozenEpochsCallback, GradualUnfreezingCallback


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def lm(**overrides) -> AWDLSTMForLanguageModeling:
    return tiny_model(AWDLSTMForLanguageModeling, **overrides).train()


# --------------------------------------------------------------------------------------------------------------------
# Defaults and validation
# --------------------------------------------------------------------------------------------------------------------
def test_defaults_are_the_papers_recipe_with_fastais_optimiser():
    settings = UlmfitSettings()
    assert settings.pretraining.lr_factor is None  # stage 1: one rate, as training from scratch
    assert settings.lm_finetuning.lr_factor == settings.classifier.lr_factor == 2.6
    assert settings.classifier.epochs is None  # one per layer group, plus one
    for stage in (settings.pretraining, settings.lm_finetuning, settings.classifier):
        assert stage.weight_decay == 0.01 and stage.eps == 1e-5 and stage.betas == (0.7, 0.99)
        assert stage.schedule == "stlr" and stage.max_grad_norm == 1.0
    assert settings.min_freq == 3 and settings.max_vocab == 60000 and settings.bptt is None
    assert settings.bptt_jitter and not settings.replace_space


@pytest.mark.parametrize("stage, fields, message", [
    ("classifier", {"lr": 0.0}, r"classifier\.lr 0\.0: needs a number > 0"),
    ("lm_finetuning", {"epochs": None}, r"lm_finetuning\.epochs None: needs a positive integer"),
    ("lm_finetuning", {"epochs": 2.5}, r"lm_finetuning\.epochs 2\.5"),
    ("pretraining", {"lr_factor": 0.5}, r"pretraining\.lr_factor 0\.5: needs a number >= 1"),
    ("classifier", {"weight_decay": -0.1}, r"classifier\.weight_decay -0\.1"),
    ("classifier", {"betas": (0.9, 1.0)}, r"classifier\.betas \(0\.9, 1\.0\)"),
    ("classifier", {"schedule": "cosine"}, r"classifier\.schedule 'cosine': needs one of stlr, one_cycle"),
    ("classifier", {"frozen_epochs": 1}, r"classifier\.frozen_epochs 1: the classifier unfreezes gradually"),
    ("lm_finetuning", {"epochs": 2, "frozen_epochs": 2}, r"lm_finetuning\.frozen_epochs 2: leaves no unfrozen"),
    ("lm_finetuning", {"max_grad_norm": 0}, r"lm_finetuning\.max_grad_norm 0"),
    ("lm_finetuning", {"batch_size": True}, r"lm_finetuning\.batch_size True"),
])
def test_a_setting_that_cannot_be_meant_is_refused_by_name(stage, fields, message):
    with pytest.raises(ValueError, match=message):
        UlmfitSettings(**{stage: StageSettings(**{"epochs": 1 if stage != "classifier" else None, **fields})})


@pytest.mark.parametrize("fields, message", [
    ({"bptt": 1}, r"bptt 1: needs an integer >= 2"),
    ({"bptt_jitter": "false"}, r"bptt_jitter 'false': needs True or False"),
    ({"min_freq": 0}, r"min_freq 0"),
    ({"extra_training_args": {"weight_decay": 0.1}}, r"are set per stage in StageSettings"),
])
def test_run_wide_settings_are_checked(fields, message):
    with pytest.raises(ValueError, match=message):
        UlmfitSettings(**fields)


def test_settings_round_trip_through_their_record():
    settings = UlmfitSettings().with_stages(classifier={"schedule": "one_cycle", "lr": 3e-3},
                                            lm_finetuning={"frozen_epochs": 1, "epochs": 3})
    again = UlmfitSettings(**json.loads(json.dumps(settings.to_dict())))
    assert again == settings and again.classifier.betas == (0.7, 0.99)


# --------------------------------------------------------------------------------------------------------------------
# What each knob reaches
# --------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("factor", [2.6, None])
def test_param_groups_carry_the_rates_and_weight_decay_asked_for(factor):
    model = lm()
    stage = StageSettings(lr=4e-3, lr_factor=factor, weight_decay=0.05, betas=(0.8, 0.98), eps=1e-6)
    optimizer, _ = _optimizers(model, stage, [10])
    n_groups = len(grouped_parameters(model))
    for group in optimizer.param_groups:
        depth = n_groups - 1 - group["layer_group"]
        want = 4e-3 / (factor ** depth if factor else 1.0)
        assert group["initial_lr"] == pytest.approx(want)
        assert group["betas"] == (0.8, 0.98) and group["eps"] == 1e-6
        names = {id(p): n for n, p in model.named_parameters()}
        is_bias = all("bias" in names[id(p)] for p in group["params"])
        assert group["weight_decay"] == (0.0 if is_bias else 0.05)
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.0, 0.05}


def stlr(t: int, total: int, cut_frac: float = 0.1, ratio: float = 32.0) -> float:
    """The paper's eq. 3, written out here on its own."""
    cut = math.floor(total * cut_frac)
    p = t / cut if t < cut else 1 - (t - cut) / (cut * (1 / cut_frac - 1))
    return (1 + max(p, 0.0) * (ratio - 1)) / ratio


def one_cycle(t: int, total: int, pct_start: float = 0.25, div: float = 25.0, div_final: float = 1e5) -> float:
    """fastai's combined cosine schedule, written out here on its own."""
    pos = t / total
    def cos(a: float, b: float, x: float) -> float:
        return a + (1 - math.cos(math.pi * x)) * (b - a) / 2
    if pos < pct_start:
        return cos(1 / div, 1.0, pos / pct_start)
    return cos(1.0, 1 / div_final, (pos - pct_start) / (1 - pct_start))


def rates(optimizer: torch.optim.Optimizer, schedule, steps: int) -> tuple[list[float], list[float]]:
    """The top group's lr and β1 at each of ``steps`` optimizer steps."""
    lr, beta1 = [], []
    for _ in range(steps):
        lr.append(optimizer.param_groups[-1]["lr"])
        beta1.append(optimizer.param_groups[-1]["betas"][0])
        optimizer.step()
        schedule.step()
    return lr, beta1


def test_stlr_runs_over_the_whole_stage():
    optimizer, schedule = _optimizers(lm(), StageSettings(lr=1e-2, cut_frac=0.2, ratio=10.0), [6, 6, 8])
    lr, beta1 = rates(optimizer, schedule, 20)
    assert lr == pytest.approx([1e-2 * stlr(t, 20, 0.2, 10.0) for t in range(20)])
    assert set(beta1) == {0.7}


def test_one_cycle_restarts_at_each_unfreezing_and_cycles_beta1():
    stage = StageSettings(lr=1e-2, schedule="one_cycle")
    optimizer, schedule = _optimizers(lm(), stage, [4, 4, 8])
    lr, beta1 = rates(optimizer, schedule, 16)
    want = [1e-2 * one_cycle(t, n) for n in (4, 4, 8) for t in range(n)]
    assert lr == pytest.approx(want)
    assert beta1[0] == pytest.approx(0.95) and beta1[4] == pytest.approx(0.95) and min(beta1) < 0.9


@pytest.mark.parametrize("schedule", ["one_cycle", "stlr"])
def test_each_phase_peaks_at_its_own_rate(schedule):
    """fastai's ULMFiT tutorial: fit_one_cycle(1, 2e-2) frozen, then fit_one_cycle(n, 2e-3) unfrozen."""
    stage = StageSettings(epochs=3, lr=2e-3, frozen_epochs=1, phase_lrs=(2e-2, 2e-3), schedule=schedule)
    optimizer, scheduler = _optimizers(lm(), stage, [4, 8])
    lr, _ = rates(optimizer, scheduler, 12)
    if schedule == "one_cycle":
        want = [2e-2 * one_cycle(t, 4) for t in range(4)] + [2e-3 * one_cycle(t, 8) for t in range(8)]
    else:
        want = [(2e-2 if t < 4 else 2e-3) * stlr(t, 12) for t in range(12)]
    assert lr == pytest.approx(want)


def test_phase_lrs_must_match_the_phases():
    stage = StageSettings(epochs=3, frozen_epochs=1, phase_lrs=(1e-2, 1e-3, 1e-4))
    with pytest.raises(ValueError, match="phase_lrs gives 3 rates for the 2 phases of this stage"):
        _optimizers(lm(), stage, [4, 8])


def test_cycles_follow_the_unfreezing():
    assert unfreezing_cycles(None, 3, 4, 5) == [15]
    assert unfreezing_cycles(GradualUnfreezingCallback(), 5, 4, 3) == [3, 3, 3, 6]
    assert unfreezing_cycles(GradualUnfreezingCallback(epochs_per_stage=2), 5, 3, 2) == [4, 4, 2]
    assert unfreezing_cycles(FrozenEpochsCallback(1), 3, 5, 7) == [7, 14]
    tutorial = GradualUnfreezingCallback(stage_groups=(1, 2, 3, -1))  # fastai's ULMFiT tutorial's freeze_to calls
    assert [tutorial.trained_groups(e, 5) for e in range(5)] == [1, 2, 3, 5, 5]
    assert unfreezing_cycles(tutorial, 5, 5, 2) == [2, 2, 2, 4]


@pytest.mark.parametrize("jitter", [True, False])
def test_bptt_jitter_can_be_turned_off(jitter):
    documents = [list(range(2, 40)) for _ in range(30)]
    settings = UlmfitSettings(bptt_jitter=jitter)
    stream = lm_stream(documents, settings, StageSettings(batch_size=4), bptt=10)
    lengths = [int(n) for n in stream.window_lengths(0)]
    if jitter:
        assert len(set(lengths)) > 1
    else:
        assert set(lengths[:-1]) == {10} and lengths[-1] <= 10


class Snapshots(TrainerCallback):
    """The model's parameters at the end of each epoch."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, torch.Tensor]] = []

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        self.epochs.append({n: p.detach().clone() for n, p in model.named_parameters()})


def test_frozen_first_epoch_trains_only_the_top_group(tmp_path: Path):
    model = lm(vocab_size=50, **{"output_p": 0.0})
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    top = {n for n, _ in grouped_parameters(model)[-1]}
    assert "awd_lstm.embeddings.weight" in top  # fastai's split: the tied embedding and decoder on top
    snapshots = Snapshots()
    documents = [list(range(2, 50))[i:] + list(range(2, 2 + i)) for i in range(12)]
    stage = StageSettings(epochs=2, frozen_epochs=1, batch_size=4, lr=1e-2)
    train_language_model(model, documents, UlmfitSettings(bptt=8), stage, tmp_path, callbacks=[snapshots])
    first, second = snapshots.epochs
    for name, value in before.items():
        if name in top:
            assert not torch.equal(first[name], value), f"{name} did not train in the frozen epoch"
        else:
            assert torch.equal(first[name], value), f"{name} changed in the frozen epoch"
            assert not torch.equal(second[name], value), f"{name} did not train after the frozen epoch"


# --------------------------------------------------------------------------------------------------------------------
# The three stages with their own settings, recorded
# --------------------------------------------------------------------------------------------------------------------
def corpus(n: int, seed: int) -> tuple[list[str], list[int]]:
    gen = torch.Generator().manual_seed(seed)
    words = [["red", "blue", "green", "cyan"], ["cat", "dog", "owl", "fox"]]
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        picks = torch.randint(0, 4, (6,), generator=gen).tolist()
        texts.append(" ".join(words[label][k] for k in picks) + " .")
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory):
    with one_thread():
        settings = UlmfitSettings(
            pretraining=StageSettings(epochs=2, lr=2e-2, lr_factor=None, batch_size=4, weight_decay=0.0),
            lm_finetuning=StageSettings(epochs=2, lr=1e-2, batch_size=6, frozen_epochs=1, schedule="one_cycle"),
            classifier=StageSettings(epochs=3, lr=5e-3, lr_factor=2.0, batch_size=8, weight_decay=0.1,
                                     max_grad_norm=None, unfreeze_groups=(1, -1), phase_lrs=(1e-2, 5e-3)),
            bptt=12, bptt_jitter=False, min_freq=1, max_vocab=200, seed=3,
        )
        train_x, train_y = corpus(24, 0)
        valid_x, valid_y = corpus(8, 1)
        pretraining, _ = corpus(20, 2)
        lm_valid, _ = corpus(6, 4)
        out = tmp_path_factory.mktemp("staged")
        result = run_ulmfit(train_x, train_y, valid_x, valid_y, pretraining_texts=pretraining,
                            scratch_config=dict(emb_size=8, hidden_size=12, num_layers=2), settings=settings,
                            output_dir=out / "checkpoints", lm_eval_texts=lm_valid)
        folders = save_ulmfit_folders(result, out, data="24 texts", class_names=["colour", "animal"])
    return settings, result, folders


def test_each_stage_records_its_own_settings_and_epochs(staged_run):
    settings, result, _ = staged_run
    stage1, stage2, stage3 = result.stages
    assert (stage1.settings, stage2.settings, stage3.settings) == (
        settings.pretraining, settings.lm_finetuning, settings.classifier)
    assert [len(s.epochs_log) for s in result.stages] == [2, 2, 3]
    assert (stage1.batch_size, stage2.batch_size, stage3.batch_size) == (4, 6, 8)
    for record in result.stages:
        assert record.tokens_per_s > 0 and record.seconds > 0
        for epoch in record.epochs_log:
            assert epoch.seconds > 0 and epoch.tokens_per_s > 0 and math.isfinite(epoch.train_loss)
    assert all("valid perplexity" in e.valid for s in (stage1, stage2) for e in s.epochs_log)
    assert all("valid accuracy" in e.valid for e in stage3.epochs_log)
    assert result.metrics["valid accuracy"] == stage3.epochs_log[-1].valid["valid accuracy"]
    assert result.metrics["stage 2 lm valid perplexity"] == stage2.epochs_log[-1].valid["valid perplexity"]
    # one source of bptt: the models' configs, saved with the folders
    assert result.language_model.config.bptt == result.classifier.config.bptt == 12


def test_metrics_json_card_and_summary_say_what_ran(staged_run):
    settings, result, folders = staged_run
    report = json.loads(json.dumps(result.report()))
    assert UlmfitSettings(**report["settings"]) == settings
    assert [s["settings"]["schedule"] for s in report["stages"]] == ["stlr", "one_cycle", "stlr"]
    assert [len(s["epochs_log"]) for s in report["stages"]] == [2, 2, 3]
    assert report["valid accuracy"] == result.metrics["valid accuracy"]
    card = (folders["classifier"] / "README.md").read_text(encoding="utf-8")
    assert "lr 0.02 for every layer group" in card  # stage 1: one rate
    assert "one-cycle (pct_start 0.25" in card and "restarted at each unfreezing" in card
    assert "weight decay 0.1" in card and "no gradient clipping" in card
    assert "gradients clipped to norm 1" in card and "the first 1 epoch(s) train only the top layer group" in card
    assert "the top 1, all layer groups, changing every 1 epoch" in card
    assert "(min_freq 1, max_vocab 200, replace_space off)" in card
    assert "(peak lr of each phase: 0.01, 0.005)" in card
    assert "fixed windows of bptt 12" in card and "tokens/s" in card and "(after each epoch: 1: accuracy" in card
    table = result.summary()
    assert table.splitlines()[0].split() == ["stage", "epoch", "lr", "seconds", "tokens/s", "train", "loss",
                                             "validation"]
    assert len(table.splitlines()) == 2 + 3 + 2 + 2 + 3  # header, rule, a row per stage and per epoch


def test_the_command_sets_every_knob():
    from hf_elmo.cli import build_parser
    from hf_elmo.commands.ulmfit import recipe_settings

    args = build_parser().parse_args([
        "ulmfit", "--train", "t.csv", "--scratch", "--batch-size", "16", "--weight-decay", "0.02",
        "--adam-betas", "0.9", "0.99", "--adam-eps", "1e-7", "--max-grad-norm", "0", "--schedule", "one_cycle",
        "--pretrain-epochs", "2", "--pretrain-lr", "3e-2", "--lm-epochs", "3", "--lm-lr-factor", "none",
        "--lm-frozen-epochs", "1", "--lm-phase-lrs", "5e-2", "1e-2", "--lm-batch-size", "8", "--classifier-epochs", "4", "--classifier-lr", "2e-3",
        "--classifier-schedule", "stlr", "--classifier-weight-decay", "0.3", "--classifier-epochs-per-unfreeze",
        "2", "--classifier-unfreeze-groups", "1", "2", "-1", "--bptt", "40", "--backwards", "--no-bptt-jitter", "--min-freq", "2", "--max-vocab", "500", "--replace-space",
    ])
    settings = recipe_settings(args)
    assert settings.pretraining == StageSettings(epochs=2, lr=3e-2, lr_factor=None, batch_size=16, weight_decay=0.02,
                                                 betas=(0.9, 0.99), eps=1e-7, schedule="one_cycle",
                                                 max_grad_norm=None)
    assert settings.lm_finetuning == StageSettings(epochs=3, lr=1e-2, lr_factor=None, batch_size=8,
                                                   weight_decay=0.02, betas=(0.9, 0.99), eps=1e-7,
                                                   schedule="one_cycle", max_grad_norm=None, frozen_epochs=1,
                                                   phase_lrs=(5e-2, 1e-2))
    assert settings.classifier == StageSettings(epochs=4, lr=2e-3, lr_factor=2.6, batch_size=16, weight_decay=0.3,
                                                betas=(0.9, 0.99), eps=1e-7, schedule="stlr", max_grad_norm=None,
                                                epochs_per_unfreeze=2, unfreeze_groups=(1, 2, -1))
    assert (settings.bptt, settings.bptt_jitter, settings.min_freq, settings.max_vocab, settings.replace_space,
            settings.backwards) == (40, False, 2, 500, True, True)
    defaults = recipe_settings(build_parser().parse_args(["ulmfit", "--train", "t.csv", "--scratch"]))
    assert defaults == UlmfitSettings()


def test_a_backward_run_reads_every_document_reversed(tmp_path: Path):
    """`UlmfitSettings(backwards=True)` / `hf-elmo ulmfit --backwards`: the tokenizer and both configs are backward,
    every document goes in reversed (xxbos last), and a forward pretrained LM is refused by name."""
    train_x, train_y = corpus(12, 0)
    settings = UlmfitSettings(pretraining=StageSettings(epochs=1, batch_size=4, lr_factor=None),
                              lm_finetuning=StageSettings(epochs=1, batch_size=4),
                              classifier=StageSettings(epochs=1, batch_size=4), bptt=8, min_freq=1, backwards=True)
    result = run_ulmfit(train_x, train_y, scratch_config=dict(emb_size=8, hidden_size=12, num_layers=2),
                        settings=settings)
    tok = result.tokenizer
    assert tok.backwards and result.language_model.config.backwards and result.classifier.config.backwards
    ids = tok(train_x[0])["input_ids"]
    assert ids[-1] == tok.bos_token_id and ids[::-1] == AWDLSTMTokenizer(itos=tok.itos)(train_x[0])["input_ids"]
    folders = save_ulmfit_folders(result, tmp_path / "bwd", data="12 texts")
    assert AWDLSTMTokenizer.from_pretrained(folders["classifier"]).backwards
    forward = run_ulmfit(train_x, train_y, scratch_config=dict(emb_size=8, hidden_size=12, num_layers=2),
                         settings=UlmfitSettings(lm_finetuning=StageSettings(epochs=1, batch_size=4),
                                                 classifier=StageSettings(epochs=1, batch_size=4), bptt=8,
                                                 min_freq=1))
    save_ulmfit_folders(forward, tmp_path / "fwd", data="12 texts")
    with pytest.raises(ValueError, match="a forward language model, but the run trains backward models"):
        run_ulmfit(train_x, train_y, pretrained=tmp_path / "fwd" / "language_model", settings=settings)
