"""What the AWD-LSTM tests share: where fastai's reference fixtures are, and tiny random models.

The fixtures (AWD-LSTM checkpoints saved by fastai 2.8.12 with fastai's own outputs) live beside the repository in
``../shared/fixtures/awd_lstm/fastai``; they are read from there, never copied here, and the tests that need them
skip with a clear reason when the folder is absent (a user's fresh clone).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

import pytest
import torch

import hf_elmo  # noqa: F401  (registers the models with the transformers Auto classes)
from hf_elmo import AWDLSTMConfig

REPO = Path(__file__).resolve().parents[1]
FASTAI_FIXTURE = Path(__file__).resolve().parents[1].parent / "shared/fixtures/awd_lstm/fastai"
FIXTURE_FILES = ("config.json", "vocab.pkl", "lm_state_dict.pth", "lm_learner.pth", "lm_v1_state_dict.pth",
                 "lm_expected.pt", "clas_state_dict.pth", "clas_expected.pt")
SKIP_REASON = (f"the fastai AWD-LSTM fixtures are not at {FASTAI_FIXTURE} (../shared is beside the repository, not "
               "part of a fresh clone)")
LM_FILES = ("lm_state_dict.pth", "lm_learner.pth", "lm_v1_state_dict.pth")
TF457_PYTHON = REPO / ".venv-tf457/bin/python"


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Runs the block on one thread. The tiny models' recurrences are thousands of small steps, where a second
    thread only adds a barrier per step, and slows them to a crawl when another process holds the other core of a
    small machine; one thread keeps these tests fast whatever else runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fixture_available() -> bool:
    return all((FASTAI_FIXTURE / name).is_file() for name in FIXTURE_FILES)


requires_fixture = pytest.mark.skipif(not fixture_available(), reason=SKIP_REASON)


def fixture_config() -> dict:
    """fastai's own description of the fixture models (sizes, dropouts, the classifier's bptt and max_len)."""
    return json.loads((FASTAI_FIXTURE / "config.json").read_text(encoding="utf-8"))


def load_expected(name: str) -> dict:
    return torch.load(FASTAI_FIXTURE / name, map_location="cpu", weights_only=True)


def tiny_config(**overrides) -> AWDLSTMConfig:
    """A tiny configuration (vocabulary 50, embedding 8, hidden 12, 3 layers) for fast tests."""
    fields = dict(vocab_size=50, emb_size=8, hidden_size=12, num_layers=3, bptt=5, max_len=15)
    fields.update(overrides)
    return AWDLSTMConfig(**fields)


def no_dropout(**overrides) -> dict:
    """Config fields that turn every dropout off (deterministic training-mode forward passes)."""
    fields = dict(output_p=0.0, hidden_p=0.0, input_p=0.0, embed_p=0.0, weight_p=0.0)
    fields.update(overrides)
    return fields


def randomize_(model: torch.nn.Module, seed: int = 0, std: float = 0.5) -> torch.nn.Module:
    """Seeded N(0, std²) values in every floating parameter and the BatchNorm statistics (the default
    initialisation is small, which would make comparisons weak)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
    return model


def tiny_model(cls, seed: int = 0, **overrides) -> torch.nn.Module:
    """A seeded random model of ``cls`` on ``tiny_config(**overrides)``, in eval mode."""
    torch.manual_seed(seed)
    return randomize_(cls(tiny_config(**overrides)), seed).eval()
