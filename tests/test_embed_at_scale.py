"""`hf-elmo embed` at scale (issue 13): the input streamed a window at a time, sorted by length inside each window,
written as it goes, and split across processes under torchrun with one HDF5 file of AllenNLP's layout at the end.

A tiny random ELMo folder (seeded) and a few hundred generated sentences, with windows small enough that the run
goes through many of them; the distributed runs use gloo on CPU with two processes.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.distributed as dist
from conftest import tiny_model

from hf_elmo import ElmoModel, ElmoTokenizer
from hf_elmo.cli import main
from hf_elmo.commands import embed
from hf_elmo.commands.embed_input import iter_sentences, scan_sentences
from hf_elmo.commands.embed_shard import Shard, shard_from_env

N_SENTENCES = 300
WINDOW, BATCH = 30, 8  # 10 windows of 4 batches (8, 8, 8, 6)
OPTIONS = ["--window", str(WINDOW), "--batch-size", str(BATCH), "--layers", "all"]
TIMEOUT = 180
DISTRIBUTED_VARS = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                    "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID"}
needs_gloo = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with the gloo backend is not in this torch build")


def make_sentences(n: int = N_SENTENCES, seed: int = 0) -> list[str]:
    """``n`` sentences of 1-25 words (punctuation the tokenizer splits off), a few repeated on later lines."""
    rng = random.Random(seed)
    vocab = ["the", "cat", "sat", "on", "a", "mat", "Zoë's", "café", "didn't", "(12.50", "€)", "Kraków!", "ELMo",
             "москва", "東京", "dog.", "run,", "3.14", "x"]
    sentences = [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 25))) for _ in range(n)]
    for later, earlier in ((n - 1, 3), (n // 2, 3), (n // 3, 1)):
        sentences[later] = sentences[earlier]  # the index maps a repeated sentence to its last line
    return sentences


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scale") / "elmo"
    tiny_model(seed=3).save_pretrained(folder)
    ElmoTokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> tuple[ElmoModel, ElmoTokenizer]:
    return ElmoModel.from_pretrained(model_dir).eval(), ElmoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def input_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sentences, some lines ending in \r\n and one holding a \r inside (whitespace, not a line break)."""
    sentences = make_sentences()
    lines = [s.replace(" ", "\r", 1) if i == 7 else s for i, s in enumerate(sentences)]
    path = tmp_path_factory.mktemp("input") / "sentences.txt"
    path.write_bytes(b"".join((line + ("\r\n" if i % 5 == 0 else "\n")).encode("utf-8")
                              for i, line in enumerate(lines)))
    return path


@pytest.fixture(scope="module")
def one_process(model_dir: Path, input_file: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> tuple[Path, list[tuple[int, int]]]:
    """``hf-elmo embed`` in this process with windows of 30 and batches of 8: the file, and the (rows, positions)
    of each batch the model ran."""
    batches: list[tuple[int, int]] = []
    real_forward = ElmoModel.forward

    def recording_forward(self, input_ids=None, *args, **kwargs):
        batches.append(tuple(input_ids.shape[:2]))
        return real_forward(self, input_ids, *args, **kwargs)

    out = tmp_path_factory.mktemp("one") / "one.hdf5"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ElmoModel, "forward", recording_forward)
        assert main(["embed", str(model_dir), str(input_file), str(out), *OPTIONS]) == 0
    return out, batches


def alone(reference: tuple[ElmoModel, ElmoTokenizer], sentence: str) -> np.ndarray:
    """(n_layers + 1, n_words, 2P) of one sentence by a direct model call, without its boundary tokens."""
    model, tokenizer = reference
    enc = tokenizer([tokenizer.tokenize(sentence)], is_split_into_words=True, return_tensors="pt")
    with torch.inference_mode():
        return torch.stack(model(**enc).hidden_states)[:, 0, 1:-1].numpy()


def read(path: Path) -> tuple[dict[str, np.ndarray], str]:
    with h5py.File(path, "r") as f:
        return {k: f[k][...] for k in f if k != "sentence_to_index"}, f["sentence_to_index"].asstr()[0]


def partials(output: Path) -> list[str]:
    return sorted(p.name for p in output.parent.glob(f".{output.name}.partial-*"))


# --------------------------------------------------------------------------------------------------------------------
# Streamed, windowed, bucketed
# --------------------------------------------------------------------------------------------------------------------
def test_streamed_windows_equal_each_sentence_run_alone(one_process, input_file: Path, reference) -> None:
    out, batches = one_process
    # ten windows of 30 sentences, each cut into batches longest first: windows bound the sort (a sort of the
    # whole file would give 37 batches of 8 and one of 4)
    assert [rows for rows, _ in batches] == [8, 8, 8, 6] * (N_SENTENCES // WINDOW)
    for w in range(0, len(batches), 4):
        widths = [width for _, width in batches[w : w + 4]]
        assert widths == sorted(widths, reverse=True), widths

    arrays, index_json = read(out)
    sentences = list(iter_sentences(input_file))
    assert "\r" in sentences[7] and not any(s.endswith("\r") for s in sentences)
    assert set(arrays) == {str(i) for i in range(N_SENTENCES)}
    for i, sentence in enumerate(sentences):
        want = alone(reference, sentence)
        assert arrays[str(i)].dtype == np.float32 and arrays[str(i)].shape == want.shape
        np.testing.assert_allclose(arrays[str(i)], want, atol=1e-5, rtol=0, err_msg=f"sentence {i}")
    # AllenNLP's index: each sentence → its (last) line's dataset, the JSON in dataset order
    assert json.loads(index_json) == {s: str(i) for i, s in enumerate(sentences)}
    assert json.loads(index_json)[sentences[3]] == str(N_SENTENCES - 1)
    assert [int(v) for v in json.loads(index_json).values()] == sorted(int(v) for v in json.loads(index_json).values())
    assert partials(out) == []


def test_sentences_are_read_a_window_at_a_time(reference, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sentences come from a generator that checks, at each one it hands out, how many have been handed out
    but not yet written: never more than a window (a reader that took them all first fails at the window's end)."""
    model, tokenizer = reference
    sentences = make_sentences(120)
    window = 16
    written = {"n": 0}
    outstanding: list[int] = []
    real_select = embed.select_layers

    def counting_select(layers, mode):
        written["n"] += 1
        return real_select(layers, mode)

    def source():
        for pulled, sentence in enumerate(sentences):
            outstanding.append(pulled - written["n"])
            assert outstanding[-1] < window, f"sentence {pulled} read with {outstanding[-1]} not yet written"
            yield sentence

    monkeypatch.setattr(embed, "select_layers", counting_select)
    out = tmp_path / "out.hdf5"
    n = embed.embed_to_hdf5(model, tokenizer, source(), out, batch_size=4, window=window, progress=False)
    assert n == written["n"] == len(sentences)
    assert max(outstanding) == window - 1  # a whole window is read ahead, no more
    assert len(read(out)[0]) == len(sentences)


def test_input_file_is_read_lazily(tmp_path: Path) -> None:
    """iter_sentences hands out line 1 before it has read line 1000, which is not UTF-8; the scan before the run
    names that line."""
    path = tmp_path / "in.txt"
    path.write_bytes(b"first line\n" + b"more words\n" * 998 + b"bad \xff byte\nlast\n")
    sentences = iter_sentences(path)
    assert next(sentences) == "first line"
    with pytest.raises(ValueError, match=r"is not UTF-8 text: line 1000: "):
        scan_sentences(path)
    with pytest.raises(ValueError, match=r"line 1000"):
        list(sentences)
    path.write_bytes(b"\xef\xbb\xbfone\n\n two \n\n")
    with pytest.raises(ValueError, match=r"empty lines at line numbers 2, 4: "):
        scan_sentences(path)


@pytest.mark.parametrize("takes_kwargs", [False, True])
def test_the_model_gets_every_encoding_key_it_takes(reference, tmp_path: Path, takes_kwargs: bool) -> None:
    """A tokenizer that emits an input beside the characters (as a word-id tokenizer does) feeds a model that
    takes it, by name in forward's signature or, for a forward with **kwargs, by the tokenizer's
    model_input_names; keys the model does not take stay out (ElmoModel refuses unknown keywords)."""
    model, _ = reference
    seen: list[set[str]] = []

    class WordIdTokenizer(ElmoTokenizer):
        model_input_names = ["input_ids", "attention_mask"] + (["word_hash_ids"] if takes_kwargs else [])

        def __call__(self, *args, **kwargs):
            enc = super().__call__(*args, **kwargs)
            enc["word_hash_ids"] = enc["attention_mask"] * 7
            enc["special_tokens_mask"] = torch.zeros_like(enc["attention_mask"])
            return enc

    class NamedInput(ElmoModel):
        def forward(self, input_ids=None, attention_mask=None, word_hash_ids=None, **kwargs):
            seen.append({"word_hash_ids"} if word_hash_ids is not None else set())
            return super().forward(input_ids, attention_mask, **kwargs)

    class KeywordInput(ElmoModel):
        def forward(self, input_ids=None, attention_mask=None, **kwargs):
            assert torch.equal(kwargs.pop("word_hash_ids"), attention_mask * 7)
            seen.append({"word_hash_ids"})
            return super().forward(input_ids, attention_mask, **kwargs)

    wrapped = (KeywordInput if takes_kwargs else NamedInput)(model.config).eval()
    wrapped.load_state_dict(model.state_dict())
    tokenizer = WordIdTokenizer()
    assert embed.model_input_keys(wrapped, tokenizer) >= {"input_ids", "attention_mask", "word_hash_ids"}
    assert "special_tokens_mask" not in embed.model_input_keys(wrapped, tokenizer)
    sentences = make_sentences(10)
    out = tmp_path / "out.hdf5"
    assert embed.embed_to_hdf5(wrapped, tokenizer, sentences, out, batch_size=4, progress=False) == 10
    assert seen == [{"word_hash_ids"}] * 3
    arrays, _ = read(out)
    np.testing.assert_allclose(arrays["9"], alone(reference, sentences[9]), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------------------------------
# Sharded under torchrun
# --------------------------------------------------------------------------------------------------------------------
def test_shard_from_env() -> None:
    assert shard_from_env({}) is None
    assert shard_from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None  # one process: as without torchrun
    shard = shard_from_env({"RANK": "1", "WORLD_SIZE": "3", "LOCAL_RANK": "1"}, timeout_s=5)
    assert shard == Shard(rank=1, world_size=3, local_rank=1, timeout_s=5)
    with pytest.raises(ValueError, match=r"WORLD_SIZE='two' is not an integer"):
        shard_from_env({"RANK": "0", "WORLD_SIZE": "two"})
    with pytest.raises(ValueError, match=r"RANK=None is not an integer"):
        shard_from_env({"WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match=r"RANK=2, WORLD_SIZE=2, LOCAL_RANK=0 do not describe"):
        shard_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    # the ranks' shares partition the input, and share() counts take()'s
    items = [f"s{i}" for i in range(11)]
    taken = [list(Shard(r, 3).take(items)) for r in range(3)]
    assert sorted(i for t in taken for i, _ in t) == list(range(11))
    assert all(items[i] == s for t in taken for i, s in t)
    assert [len(t) for t in taken] == [Shard(r, 3).share(11) for r in range(3)] == [4, 4, 3]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_embed(argv: list[str], launcher: str = "torchrun") -> subprocess.CompletedProcess:
    """``hf-elmo embed ARGV`` in two fresh processes (gloo, CPU) started by ``torchrun --nproc-per-node 2`` or by
    ``accelerate launch --multi_gpu --num_processes 2`` (which runs torchrun; accelerate's ``--cpu`` would start one
    process)."""
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_VARS}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", TOKENIZERS_PARALLELISM="false", TQDM_DISABLE="1")
    port = str(_free_port())
    if launcher == "torchrun":
        start = ["torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", port]
    else:
        start = ["accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                 "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", port]
    command = [sys.executable, "-m", *start, "-m", "hf_elmo.cli", "embed", *argv]
    try:
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(command)} ran past {TIMEOUT} s (a rank hangs?):\n{e.stdout}\n{e.stderr}")


@needs_gloo
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_processes_write_the_file_one_process_writes(model_dir: Path, input_file: Path, one_process,
                                                         tmp_path: Path, launcher: str) -> None:
    if launcher == "accelerate":
        pytest.importorskip("accelerate")
    one, two = one_process[0], tmp_path / "two.hdf5"
    proc = torchrun_embed([str(model_dir), str(input_file), str(two), *OPTIONS], launcher)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("Wrote ELMo vectors") == 1 and f"of {N_SENTENCES} sentences" in proc.stdout
    assert "in 2 processes" in proc.stdout

    single, single_index = read(one)
    sharded, sharded_index = read(two)
    assert sharded_index == single_index  # the same JSON string, not only the same mapping
    assert sorted(sharded) == sorted(single) and len(single) == N_SENTENCES
    for name, want in single.items():
        assert sharded[name].dtype == want.dtype and sharded[name].shape == want.shape, name
        np.testing.assert_allclose(sharded[name], want, atol=1e-5, rtol=0, err_msg=f"dataset {name}")
    assert partials(two) == []  # both ranks' parts are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.hdf5"]


@needs_gloo
def test_a_failing_rank_stops_every_rank_with_its_message(model_dir: Path, tmp_path: Path) -> None:
    """Line 2 (index 1, rank 1's) holds no word once tokenised: rank 1 fails, rank 0 learns it at the merge instead
    of waiting for its timeout, both exit 1 with one line, and no output or part file is left."""
    path = tmp_path / "in.txt"
    path.write_text("a sentence\n\x00\n" + "more words here\n" * 40, encoding="utf-8")
    out = tmp_path / "out.hdf5"
    proc = torchrun_embed([str(model_dir), str(path), str(out), "--batch-size", "4", "--timeout", str(TIMEOUT * 10)])
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("hf-elmo embed: error: ")]
    assert len(errors) == 2, proc.stderr[-4000:]
    assert any(line.endswith("the sentences on lines [2] hold no words once tokenised (empty lines?)")
               for line in errors), errors
    assert any("rank 0 of 2: stopped: rank 1 failed: the sentences on lines [2]" in line for line in errors), errors
    assert not out.exists() and partials(out) == []


@needs_gloo
def test_a_rank_without_sentences_still_takes_part(model_dir: Path, tmp_path: Path, reference) -> None:
    """One sentence, two processes: rank 1's part is empty, and the merged file is the one sentence's."""
    path = tmp_path / "in.txt"
    path.write_text("only one line here\n", encoding="utf-8")
    out = tmp_path / "out.hdf5"
    proc = torchrun_embed([str(model_dir), str(path), str(out), "--layers", "all"])
    assert proc.returncode == 0, proc.stderr[-4000:]
    arrays, index_json = read(out)
    assert list(arrays) == ["0"] and json.loads(index_json) == {"only one line here": "0"}
    np.testing.assert_allclose(arrays["0"], alone(reference, "only one line here"), atol=1e-5, rtol=0)
    assert partials(out) == []
