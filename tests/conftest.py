"""Shared fixtures of the ELMo tests.

The reference data (an ELMo test model in the original HDF5 layout, with outputs computed by the original TensorFlow
implementation) lives beside the repository in ``../shared/fixtures``; it is read from there, never copied here, and
the tests that need it skip with a clear reason when it is absent (a user's fresh clone).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
import torch

import hf_elmo  # noqa: F401  (registers ELMo with the transformers Auto classes)
from hf_elmo import ElmoConfig, ElmoModel, ElmoTokenizer
from hf_elmo.conversion.allennlp_elmo import load_elmo_weights

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures"
ELMO_FIXTURE = FIXTURES / "elmo" / "bilm-tf"
SKIP_REASON = "../shared/fixtures/elmo/bilm-tf not found: the reference fixtures live beside the repository"

# What a converted ELMo folder holds, and so what one push to the Hub commits: the weights, the config, the
# tokenizer, the model's code (remote code), the card and the original options.
CONVERTED_ELMO_FILES = frozenset({
    "README.md",
    "config.json",
    "bilstm_elmo.py",
    "configuration_elmo.py",
    "packed_linear.py",
    "elmo_options.json",
    "model.safetensors",
    "modeling_elmo.py",
    "tokenization_elmo.py",
    "tokenizer_config.json",
    "vocab.txt",
})

# What a saved AWD-LSTM folder of the ULMFiT recipe holds, and so what one push commits (a language model's folder
# also holds generation_config.json).
AWD_LSTM_FOLDER_FILES = frozenset({
    "README.md",
    "config.json",
    "configuration_awd_lstm.py",
    "cpu_lstm.py",
    "english_splitter.py",
    "model.safetensors",
    "modeling_awd_lstm.py",
    "packed_linear.py",
    "tokenization_awd_lstm.py",
    "tokenizer_config.json",
    "vocab.json",
})

# Tests run on a 2-core machine: keep torch from oversubscribing it.
torch.set_num_threads(min(torch.get_num_threads(), 2))


def require_elmo_fixture() -> Path:
    """The bilm-tf fixture folder, or skip the calling test."""
    if not (ELMO_FIXTURE / "options.json").is_file() or not (ELMO_FIXTURE / "lm_weights.hdf5").is_file():
        pytest.skip(SKIP_REASON)
    return ELMO_FIXTURE


@pytest.fixture(scope="session")
def elmo_fixture_dir() -> Path:
    return require_elmo_fixture()


@pytest.fixture(scope="session")
def fixture_sentences(elmo_fixture_dir: Path) -> list[list[str]]:
    """3 lists of 10 pre-tokenised sentences (split on spaces to get the words)."""
    with open(elmo_fixture_dir / "lm_embeddings_sentences.json", encoding="utf-8") as f:
        return json.load(f)


def load_fixture_model(fixture_dir: Path, **overrides) -> ElmoModel:
    """The converted bilm-tf test model (``overrides`` change config fields, e.g. ``use_skip_connections``)."""
    cfg = ElmoConfig.from_options_json(fixture_dir / "options.json", **overrides)
    model = ElmoModel(cfg).eval()
    load_elmo_weights(model, fixture_dir / "lm_weights.hdf5")
    return model


@pytest.fixture(scope="session")
def fixture_model(elmo_fixture_dir: Path) -> ElmoModel:
    """The converted bilm-tf test model, in eval mode. Session-scoped: tests must not modify it."""
    return load_fixture_model(elmo_fixture_dir)


@pytest.fixture(scope="session")
def tokenizer() -> ElmoTokenizer:
    return ElmoTokenizer()


def tiny_config(**overrides) -> ElmoConfig:
    """A tiny random-model configuration (few filters, small dims, skip connections on) for fast tests."""
    fields = dict(
        char_cnn_filters=[[1, 4], [2, 4], [3, 8]],
        n_highway=1,
        char_embedding_dim=4,
        lstm_dim=12,
        projection_dim=6,
        n_layers=2,
        cell_clip=3.0,
        proj_clip=3.0,
        use_skip_connections=True,
        dropout=0.0,
    )
    fields.update(overrides)
    return ElmoConfig(**fields)


def randomize_(model: torch.nn.Module, seed: int = 0, std: float = 0.5) -> torch.nn.Module:
    """Fills every parameter with seeded N(0, std²) values (the default init is tiny, which would make output
    comparisons weak); keeps the character embedding's padding row at zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "scalar_parameters" in name or name.endswith("gamma"):
                continue
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.dtype) * std)
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
    return model


def tiny_model(seed: int = 0, **overrides) -> ElmoModel:
    """A randomly initialised (seeded) ElmoModel of ``tiny_config``, in eval mode."""
    torch.manual_seed(seed)
    return randomize_(ElmoModel(tiny_config(**overrides)), seed).eval()


# --------------------------------------------------------------------------------------------------------------------
# A stand-in for the Hub: nothing leaves the machine
# --------------------------------------------------------------------------------------------------------------------
COMMIT_URL = "https://huggingface.co/user/elmo-test/commit/0123abc"


class FakeHub:
    """Stands in for the Hub behind HfApi: records each call with the token of the HfApi it was made through."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def only(self, name: str) -> dict:
        found = [kwargs for n, kwargs in self.calls if n == name]
        assert len(found) == 1, f"{name} called {len(found)} times: {self.calls}"
        return found[0]

    def all(self, name: str) -> list[dict]:
        return [kwargs for n, kwargs in self.calls if n == name]


def install_fake_hub(monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """Replaces the HfApi methods push_folder calls (on the class) with recorders; the methods that would upload by
    another route fail the test if they are reached."""
    fake = FakeHub()

    def create_repo(self, repo_id, **kwargs):
        fake.calls.append(("create_repo", {"repo_id": repo_id, "token": self.token, **kwargs}))
        return SimpleNamespace(repo_id=repo_id, url=f"https://huggingface.co/{repo_id}")

    def create_branch(self, repo_id, **kwargs):
        fake.calls.append(("create_branch", {"repo_id": repo_id, "token": self.token, **kwargs}))

    def create_commit(self, repo_id, operations, **kwargs):
        operations = list(operations)
        # Read the files now, as the real upload would: the folder may be a temporary one.
        contents = {op.path_in_repo: Path(op.path_or_fileobj).read_bytes() for op in operations}
        fake.calls.append(("create_commit", {"repo_id": repo_id, "operations": operations, "contents": contents,
                                             "token": self.token, **kwargs}))
        return SimpleNamespace(commit_url=COMMIT_URL, oid="0123abc")

    def forbidden(self, *args, **kwargs):
        raise AssertionError("push_folder must upload through one create_commit only")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_branch", create_branch)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit", create_commit)
    for name in ("upload_folder", "upload_file", "upload_large_folder", "preupload_lfs_files"):
        if hasattr(huggingface_hub.HfApi, name):  # not every huggingface_hub version has them all
            monkeypatch.setattr(huggingface_hub.HfApi, name, forbidden)
    return fake


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    return install_fake_hub(monkeypatch)


# --------------------------------------------------------------------------------------------------------------------
# Model cards
# --------------------------------------------------------------------------------------------------------------------
def card_snippet(text: str) -> str:
    """The first Python code block of a model card (its usage snippet)."""
    import re

    found = re.search(r"```python\n(.*?)```", text, re.S)
    assert found, "the card has no Python code block"
    return found.group(1)


def run_card_snippets(text: str) -> list[dict]:
    """Runs every Python code block of a card (e.g. an ONNX card's hf-elmo and plain-ONNX-Runtime snippets), each
    in a fresh namespace, as written; returns the namespaces."""
    import re

    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the card has no Python code block"
    namespaces = []
    for block in blocks:
        namespaces.append({})
        exec(compile(block, "README.md", "exec"), namespaces[-1])
    return namespaces


def run_card_snippet(text: str, replace: dict[str, str] | None = None) -> dict:
    """Runs a card's usage snippet as written (after the literal replacements ``replace``, e.g. a Hub id by the
    folder that will be pushed there); returns its namespace."""
    snippet = card_snippet(text)
    for old, new in (replace or {}).items():
        assert old in snippet, old
        snippet = snippet.replace(old, new)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    return namespace
