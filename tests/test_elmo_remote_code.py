"""Saved ELMo folders load as remote code (``trust_remote_code=True``) where hf_elmo is not installed, with this
transformers and with transformers 4.57 (the oldest supported), and give the same outputs."""

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
import transformers
from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification, AutoTokenizer

from clean_process import BLOCK_HF_ELMO, flat_outputs
from conftest import REPO, randomize_, tiny_config
from hf_elmo import (
    ElmoForLanguageModeling,
    ElmoForSequenceClassification,
    ElmoForTokenClassification,
    ElmoModel,
    ElmoTokenizer,
)

TF457_PYTHON = Path(__file__).parents[1] / ".venv-tf457/bin/python"
SENTENCES = ["The quick brown fox didn't jump.", "Zoë's café (12.50 €)!", "ELMo"]
ATOL = 1e-6

# name -> (class, Auto class to load it with, config overrides, output fields compared)
CLASSES = {
    "base": (ElmoModel, "AutoModel", {}, ["last_hidden_state", "hidden_states"]),
    "seqcls": (ElmoForSequenceClassification, "AutoModelForSequenceClassification", {"num_labels": 3}, ["logits"]),
    "tokcls": (ElmoForTokenClassification, "AutoModelForTokenClassification", {"num_labels": 4}, ["logits"]),
    "lm": (ElmoForLanguageModeling, "AutoModelForPreTraining", {"vocab_size": 11}, ["logits"]),
}
ALWAYS_MAPPED = {"AutoConfig", "AutoModel", "AutoModelForSequenceClassification", "AutoModelForTokenClassification"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Every class saved with its tokenizer; returns {name: (folder, in-process outputs)}."""
    root = tmp_path_factory.mktemp("saved")
    vocab = root / "vocab_src.txt"
    vocab.write_text("<S>\n</S>\n<UNK>\nthe\nquick\nbrown\nfox\n.\njump\nELMo\n!\n", encoding="utf-8")
    result = {}
    for name, (cls, _, overrides, fields) in CLASSES.items():
        torch.manual_seed(0)
        model = randomize_(cls(tiny_config(**overrides)), seed=1).eval()
        tokenizer = ElmoTokenizer(vocab_file=str(vocab)) if name == "lm" else ElmoTokenizer()
        folder = root / name
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
        with torch.no_grad():
            out = model(**enc)
        result[name] = (folder, flat_outputs(out, fields))
    return result


# ----------------------------------------------------------------------------------------------------------------
# What save_pretrained writes
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CLASSES))
def test_saved_folder_layout(saved, name):
    folder, _ = saved[name]
    cls, auto_name, overrides, _ = CLASSES[name]
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    auto_map = config["auto_map"]
    assert ALWAYS_MAPPED <= set(auto_map), auto_map
    assert auto_map["AutoConfig"] == "configuration_elmo.ElmoConfig"
    assert auto_map["AutoModel"] == "modeling_elmo.ElmoModel"
    assert auto_map["AutoModelForSequenceClassification"] == "modeling_elmo.ElmoForSequenceClassification"
    assert auto_map["AutoModelForTokenClassification"] == "modeling_elmo.ElmoForTokenClassification"
    assert auto_map[auto_name] == f"modeling_elmo.{cls.__name__}"
    # the LM head needs a word vocabulary: listed exactly when the config has one
    if overrides.get("vocab_size", 0) > 0:
        assert auto_map["AutoModelForPreTraining"] == "modeling_elmo.ElmoForLanguageModeling"
    else:
        assert "AutoModelForPreTraining" not in auto_map
    assert config["model_type"] == "elmo"

    tok_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert tok_config["auto_map"]["AutoTokenizer"][0] == "tokenization_elmo.ElmoTokenizer"

    for py in ("bilstm_elmo.py", "configuration_elmo.py", "modeling_elmo.py", "packed_linear.py", "tokenization_elmo.py"):
        assert (folder / py).is_file(), py
        assert "hf_elmo" not in [line.split()[1].split(".")[0] for line in (folder / py).read_text().splitlines()
                                 if line.startswith(("import ", "from "))], f"{py} imports hf_elmo"
    assert (folder / "model.safetensors").is_file()
    assert not (folder / "pytorch_model.bin").exists()
    assert (folder / "vocab.txt").is_file()


def test_pretraining_is_mapped_for_a_biLM_with_a_vocabulary(tmp_path):
    ElmoModel(tiny_config(vocab_size=5)).save_pretrained(tmp_path)
    auto_map = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))["auto_map"]
    assert auto_map["AutoModelForPreTraining"] == "modeling_elmo.ElmoForLanguageModeling"
    assert auto_map["AutoModel"] == "modeling_elmo.ElmoModel"


def test_in_process_auto_classes_load_the_folders(saved):
    folder, want = saved["base"]
    assert type(AutoConfig.from_pretrained(folder)).__name__ == "ElmoConfig"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    assert isinstance(model, ElmoModel)
    with torch.no_grad():
        got = flat_outputs(model(**tokenizer(SENTENCES, padding=True, return_tensors="pt")),
                           CLASSES["base"][3])
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=ATOL, rtol=0)


# ----------------------------------------------------------------------------------------------------------------
# Loading in a process that cannot import hf_elmo
# ----------------------------------------------------------------------------------------------------------------
CHILD = BLOCK_HF_ELMO + textwrap.dedent(
    r'''

    import numpy as np
    import torch
    import transformers

    spec = json.loads(Path(sys.argv[1]).read_text())
    out_dir = Path(sys.argv[2])
    major = int(transformers.__version__.split(".")[0])
    dtype_kw = "dtype" if major >= 5 else "torch_dtype"
    report = {"transformers": transformers.__version__, "modules": {}}
    for name, job in spec["jobs"].items():
        folder = job["folder"]
        config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=True)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        auto = getattr(transformers, job["auto"])
        model = auto.from_pretrained(folder, trust_remote_code=True).eval()
        report["modules"][name] = [type(config).__module__, type(tokenizer).__module__, type(model).__module__,
                                   type(model).__name__]
        enc = tokenizer(spec["sentences"], padding=True, return_tensors="pt")
        with torch.no_grad():
            out = model(**enc)
            arrays = {}
            for field in job["fields"]:
                value = getattr(out, field)
                if isinstance(value, (tuple, list)):
                    for i, v in enumerate(value):
                        arrays[f"{field}.{i}"] = v.float().numpy()
                else:
                    arrays[field] = value.float().numpy()
            if job.get("cross"):  # the base folder read with a task head: its biLM gives the base outputs
                head = transformers.AutoModelForTokenClassification.from_pretrained(
                    folder, trust_remote_code=True, num_labels=2).eval()
                report["modules"][name + "-cross"] = [type(head).__module__, type(head).__name__]
                arrays["cross.last_hidden_state"] = head.elmo(**enc).last_hidden_state.float().numpy()
                half = auto.from_pretrained(folder, trust_remote_code=True, **{dtype_kw: torch.bfloat16}).eval()
                report["bf16_dtypes"] = {n: str(p.dtype) for n, p in half.named_parameters()}
                arrays["bf16.last_hidden_state"] = half(**enc).last_hidden_state.float().numpy()
        np.savez(out_dir / f"{name}.npz", **arrays)
    leaked = sorted(m for m in sys.modules if m == "hf_elmo" or m.startswith("hf_elmo."))
    report["leaked"] = leaked
    (out_dir / "report.json").write_text(json.dumps(report))
    '''
)


def run_clean(python: Path | str, saved, tmp_path: Path) -> dict:
    spec = {
        "sentences": SENTENCES,
        "jobs": {
            name: {"folder": str(folder), "auto": CLASSES[name][1], "fields": CLASSES[name][3],
                   "cross": name == "base"}
            for name, (folder, _) in saved.items()
        },
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "child.py").write_text(CHILD)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_MODULES_CACHE=str(tmp_path / "hf_modules"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="2", TOKENIZERS_PARALLELISM="false",
               PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([str(python), str(tmp_path / "child.py"), str(tmp_path / "spec.json"), str(out_dir)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"clean process failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    report = json.loads((out_dir / "report.json").read_text())
    assert report["leaked"] == []
    for name, modules in report["modules"].items():
        for module in modules[:-1]:
            assert module.startswith("transformers_modules."), (name, modules)
    return report | {"out_dir": out_dir}


def check_against_in_process(report: dict, saved) -> None:
    out_dir = report["out_dir"]
    for name, (_, want) in saved.items():
        cls = CLASSES[name][0]
        assert report["modules"][name][-1] == cls.__name__
        got = dict(np.load(out_dir / f"{name}.npz"))
        for key, value in want.items():
            assert got[key].shape == value.shape, (name, key)
            err = float(np.abs(got[key] - value).max())
            assert err <= ATOL, f"{name}.{key}: remote code differs from in-process by {err:.3g}"
    got = dict(np.load(out_dir / "base.npz"))
    base = saved["base"][1]["last_hidden_state"]
    assert report["modules"]["base-cross"][-1] == "ElmoForTokenClassification"
    np.testing.assert_allclose(got["cross.last_hidden_state"], base, atol=ATOL, rtol=0)
    # the weights that do the work are bfloat16 (that *every* parameter is: test_from_pretrained_bfloat16)
    dtypes = report["bf16_dtypes"]
    for name in ("char_encoder.char_embedding.weight", "char_encoder.convolutions.0.weight",
                 "char_encoder.highways.0.weight", "bilm.layers.0.weight_ih", "bilm.layers.1.weight_hh",
                 "bilm.layers.1.weight_proj"):
        assert dtypes[name] == "torch.bfloat16", (name, dtypes[name])
    bf16 = got["bf16.last_hidden_state"]
    assert np.isfinite(bf16).all()
    assert np.abs(bf16 - base).max() < 0.05 * max(1.0, np.abs(base).max())
    assert np.abs(bf16 - base).max() > 0  # it really ran in bfloat16


def test_remote_code_in_clean_process(saved, tmp_path):
    report = run_clean(sys.executable, saved, tmp_path)
    assert report["transformers"] == transformers.__version__  # the same transformers as this process
    check_against_in_process(report, saved)


def test_remote_code_with_transformers_4_57(saved, tmp_path):
    if not TF457_PYTHON.exists():
        pytest.skip(f"{TF457_PYTHON.relative_to(REPO)} not found: the set-up script builds the transformers 4.57 "
                    "environment for this test")
    report = run_clean(TF457_PYTHON, saved, tmp_path)
    assert report["transformers"].startswith("4.57"), report["transformers"]
    check_against_in_process(report, saved)


# ----------------------------------------------------------------------------------------------------------------
# Reduced precision from from_pretrained
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", ["dtype", "torch_dtype"])
def test_from_pretrained_bfloat16(saved, kw):
    folder, want = saved["base"]
    model = AutoModel.from_pretrained(folder, **{kw: torch.bfloat16}).eval()
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    tokenizer = ElmoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        out = model(**tokenizer(SENTENCES, padding=True, return_tensors="pt"))
    got = out.last_hidden_state
    assert got.dtype == torch.bfloat16
    ref = torch.from_numpy(want["last_hidden_state"])
    mask = tokenizer(SENTENCES, padding=True, return_tensors="pt")["attention_mask"].bool()
    cos = torch.nn.functional.cosine_similarity(got.float()[mask], ref[mask], dim=-1)
    assert float(cos.min()) > 0.99, f"minimum cosine similarity {float(cos.min()):.5f}"


def test_task_head_reads_a_saved_bilm(saved):
    """A saved biLM fine-tunes with a task head: its weights land in ``.elmo`` (in-process, no remote code)."""
    folder, want = saved["base"]
    head = AutoModelForTokenClassification.from_pretrained(folder, num_labels=2).eval()
    tokenizer = ElmoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        got = head.elmo(**tokenizer(SENTENCES, padding=True, return_tensors="pt")).last_hidden_state
    np.testing.assert_allclose(got.numpy(), want["last_hidden_state"], atol=ATOL, rtol=0)
