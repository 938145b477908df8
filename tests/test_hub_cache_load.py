"""Saved folders load BY REPO ID from a Hub cache (offline), as remote code, where hf_elmo is not installed.

An ELMo biLM and an AWD-LSTM classifier are saved with ``save_pretrained`` and their files laid out exactly as
``huggingface_hub`` caches a download (``models--user--name/{blobs,snapshots/<commit>,refs/main}``); a fresh process
with ``HF_HUB_OFFLINE=1`` that cannot import hf_elmo then loads ``"user/elmo-tiny"`` and ``"user/awd-lstm-clas"``
with the Auto classes and ``trust_remote_code=True``, and must give the in-process outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import scan_cache_dir, try_to_load_from_cache

from clean_process import BLOCK_HF_ELMO, flat_outputs
import awd_lstm_testing
from conftest import randomize_ as elmo_randomize_
from conftest import tiny_config as elmo_tiny_config
from hf_elmo import AWDLSTMConfig, AWDLSTMForSequenceClassification, AWDLSTMTokenizer, ElmoModel, ElmoTokenizer
from hf_elmo.models.awd_lstm.tokenization_awd_lstm import SPECIAL_TOKENS

ATOL = 1e-6
CACHED_WORDS = ["The", "cat", "jump", "."]  # some of ELMO_SENTENCES' words: the others go through the CNN
ELMO_SENTENCES = ["The cat didn't jump.", "Zoë's café!"]
AWD_TEXTS = ["The cat.", "the cat sat on THE mat, the cat"]
LFS_SUFFIXES = (".safetensors", ".bin", ".h5", ".pt")

# name -> (repo id, Auto class of the model, output fields compared)
REPOS = {
    "elmo": ("user/elmo-tiny", "AutoModel", ["last_hidden_state", "hidden_states"]),
    # the same biLM saved with a token cache (save_token_cache=True): from_pretrained by repo id loads it too
    "elmo_cached": ("user/elmo-cached", "AutoModel", ["last_hidden_state", "hidden_states"]),
    "awd": ("user/awd-lstm-clas", "AutoModelForSequenceClassification", ["logits"]),
}


def blob_name(path: Path) -> str:
    """What the Hub names a file's blob: the sha256 of an LFS file, the git blob sha1 of a regular one."""
    data = path.read_bytes()
    if path.name.endswith(LFS_SUFFIXES):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lay_out_as_hub_cache(folder: Path, hub_cache: Path, repo_id: str) -> str:
    """Copies ``folder`` into ``hub_cache`` as ``huggingface_hub`` stores a download of ``repo_id`` at a commit;
    returns the commit hash."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    commit = hashlib.sha1(repo_id.encode() + b"".join(blob_name(p).encode() for p in files)).hexdigest()
    repo_dir = hub_cache / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "blobs").mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)  # no trailing newline, as huggingface_hub writes it
    snapshot = repo_dir / "snapshots" / commit
    for path in files:
        rel = path.relative_to(folder)
        blob = repo_dir / "blobs" / blob_name(path)
        if not blob.exists():
            blob.write_bytes(path.read_bytes())
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return commit


CHILD = BLOCK_HF_ELMO + textwrap.dedent(
    r'''

    import traceback

    import numpy as np
    import torch
    import transformers

    torch.set_num_threads(1)
    spec = json.loads(Path(sys.argv[1]).read_text())
    out_dir = Path(sys.argv[2])
    report = {"transformers": transformers.__version__, "jobs": {}}
    for name, job in spec["jobs"].items():
        entry = report["jobs"][name] = {}
        try:
            repo = job["repo"]
            config = transformers.AutoConfig.from_pretrained(repo, trust_remote_code=True)
            tokenizer = transformers.AutoTokenizer.from_pretrained(repo, trust_remote_code=True)
            model = getattr(transformers, job["auto"]).from_pretrained(repo, trust_remote_code=True).eval()
            cache = getattr(model, "token_cache", None)
            entry["token_cache_words"] = None if cache is None else len(cache)
            entry["classes"] = {kind: [type(obj).__module__, type(obj).__name__]
                                for kind, obj in (("config", config), ("tokenizer", tokenizer), ("model", model))}
            enc = tokenizer(job["texts"], padding=True, return_tensors="pt")
            with torch.no_grad():
                out = model(**enc)
            for field in job["fields"]:
                value = getattr(out, field)
                values = list(enumerate(value)) if isinstance(value, (tuple, list)) else [(None, value)]
                for i, v in values:
                    key = field if i is None else f"{field}.{i}"
                    np.save(out_dir / f"{name}.{key}.npy", v.float().numpy())
        except Exception:
            entry["error"] = traceback.format_exc()
    report["blocked"] = BLOCKED
    report["leaked"] = sorted(m for m in sys.modules if m == "hf_elmo" or m.startswith("hf_elmo."))
    (out_dir / "report.json").write_text(json.dumps(report))
    '''
)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """Both models saved, laid out in a Hub cache and loaded by a clean child process.

    Returns ``{"hub_cache", "commits", "want", "report", "out_dir"}``."""
    root = tmp_path_factory.mktemp("hub")
    hub_cache = root / "hf_home" / "hub"
    want, commits = {}, {}

    # (a) ELMo biLM
    torch.manual_seed(0)
    elmo = elmo_randomize_(ElmoModel(elmo_tiny_config()), seed=1).eval()
    elmo_tok = ElmoTokenizer()
    folder = root / "saved" / "elmo"
    elmo.save_pretrained(folder)
    elmo_tok.save_pretrained(folder)
    with torch.no_grad():
        want["elmo"] = flat_outputs(elmo(**elmo_tok(ELMO_SENTENCES, padding=True, return_tensors="pt")),
                                    REPOS["elmo"][2])
    elmo.cache_token_embeddings(CACHED_WORDS)
    elmo.save_pretrained(root / "saved" / "elmo_cached", save_token_cache=True)
    elmo_tok.save_pretrained(root / "saved" / "elmo_cached")
    want["elmo_cached"] = want["elmo"]

    # (b) AWD-LSTM classifier
    itos = list(SPECIAL_TOKENS) + ["the", "cat"]
    awd_tok = AWDLSTMTokenizer(itos=itos)
    config = AWDLSTMConfig.for_classifier(vocab_size=len(itos), emb_size=8, hidden_size=16, num_layers=2,
                                          num_labels=2)
    torch.manual_seed(0)
    awd = awd_lstm_testing.randomize_(AWDLSTMForSequenceClassification(config), seed=2).eval()
    folder = root / "saved" / "awd"
    awd.save_pretrained(folder)
    awd_tok.save_pretrained(folder)
    with torch.no_grad():
        want["awd"] = flat_outputs(awd(**awd_tok(AWD_TEXTS, padding=True, return_tensors="pt")), REPOS["awd"][2])

    for name, (repo_id, _, _) in REPOS.items():
        commits[name] = lay_out_as_hub_cache(root / "saved" / name, hub_cache, repo_id)

    texts = {"elmo": ELMO_SENTENCES, "elmo_cached": ELMO_SENTENCES, "awd": AWD_TEXTS}
    spec = {"jobs": {name: {"repo": repo_id, "auto": auto, "fields": fields, "texts": texts[name]}
                     for name, (repo_id, auto, fields) in REPOS.items()}}
    (root / "spec.json").write_text(json.dumps(spec))
    (root / "child.py").write_text(CHILD)
    out_dir = root / "out"
    out_dir.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP") and not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(root / "hf_home"), HF_HUB_CACHE=str(hub_cache),
               HF_MODULES_CACHE=str(root / "hf_modules"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PYTHONNOUSERSITE="1",
               PYTHONDONTWRITEBYTECODE="1")
    # cwd is an empty folder, so that "user/..." cannot be read as a local path
    cwd = root / "cwd"
    cwd.mkdir()
    proc = subprocess.run([sys.executable, str(root / "child.py"), str(root / "spec.json"), str(out_dir)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"clean process failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    report = json.loads((out_dir / "report.json").read_text())
    return {"hub_cache": hub_cache, "commits": commits, "want": want, "report": report, "out_dir": out_dir}


def test_cache_is_a_valid_hub_cache(hub):
    """huggingface_hub itself reads the layout as two cached repos, each at its commit on main."""
    info = scan_cache_dir(hub["hub_cache"])
    assert not info.warnings, info.warnings
    repos = {r.repo_id: r for r in info.repos}
    assert set(repos) == {repo_id for repo_id, _, _ in REPOS.values()}
    for name, (repo_id, _, _) in REPOS.items():
        repo = repos[repo_id]
        assert repo.repo_type == "model"
        (revision,) = repo.revisions
        assert revision.commit_hash == hub["commits"][name]
        assert revision.refs == frozenset({"main"})
        files = {f.file_name for f in revision.files}
        assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= files
        cached = try_to_load_from_cache(repo_id, "config.json", cache_dir=hub["hub_cache"])
        assert isinstance(cached, str) and f"/snapshots/{hub['commits'][name]}/" in cached
        assert os.path.islink(cached)
        # the remote code is in the snapshot (save_pretrained copied it there)
        assert any(f.endswith(".py") and f.startswith("modeling_") for f in files), files


@pytest.mark.parametrize("name", list(REPOS))
def test_loads_by_repo_id_as_remote_code(hub, name):
    entry = hub["report"]["jobs"][name]
    assert "error" not in entry, entry["error"]
    commit = hub["commits"][name]
    for kind, (module, cls_name) in entry["classes"].items():
        # remote code of the cached snapshot: transformers_modules.user.<repo name>.<commit>.<file>
        assert module.startswith("transformers_modules.user."), (kind, module, cls_name)
        assert f".{commit}." in module, (kind, module, commit)
    expected = {"elmo": ("ElmoConfig", "ElmoTokenizer", "ElmoModel"),
                "elmo_cached": ("ElmoConfig", "ElmoTokenizer", "ElmoModel"),
                "awd": ("AWDLSTMConfig", "AWDLSTMTokenizer", "AWDLSTMForSequenceClassification")}[name]
    assert tuple(entry["classes"][k][1] for k in ("config", "tokenizer", "model")) == expected

    want = hub["want"][name]
    got_files = sorted(p.name for p in hub["out_dir"].glob(f"{name}.*.npy"))
    assert got_files == sorted(f"{name}.{key}.npy" for key in want)
    for key, value in want.items():
        got = np.load(hub["out_dir"] / f"{name}.{key}.npy")
        assert got.shape == value.shape, (key, got.shape, value.shape)
        err = float(np.abs(got - value).max())
        assert err <= ATOL, f"{name}.{key}: loaded from the Hub cache differs from in-process by {err:.3g}"


def test_hf_elmo_never_imported(hub):
    report = hub["report"]
    assert report["leaked"] == []
    assert report["blocked"] == [], f"the remote code tried to import {report['blocked']}"


def test_the_token_cache_loads_by_repo_id(hub):
    """The repository saved with its token cache gives it to the loaded model (the boundaries and CACHED_WORDS), with
    the same outputs (test_loads_by_repo_id_as_remote_code); one without a cache file loads without one, offline."""
    jobs = hub["report"]["jobs"]
    assert jobs["elmo_cached"]["token_cache_words"] == len(CACHED_WORDS) + 2
    assert jobs["elmo"]["token_cache_words"] is None
