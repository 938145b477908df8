"""``hf-elmo embed`` at scale: peak memory and sentences/s over 10k and 100k sentences of one synthetic file.

The file is generated from a seed: sentences of 3-20 words (mean ~11.5) drawn from 20,000 made-up words with some
punctuation, one per line; the 10k run reads its first 10,000 lines. The model is a SMALL RANDOM ELMo (char CNN of
32 filters, one highway layer, 2 layers of LSTM 32 with projection 16; weights random, seeded): the published
original size embeds 550-920 words/s on the 2-core machine, about half an hour for these 100k sentences. The
figures are of the pipeline (reading, tokenising, bucketing, writing HDF5) with a model that does not dominate. The
pipeline itself holds one window of sentences and the sentence index (~100 bytes a sentence); what else grows
between 10k and 100k is below it, in bounded caches (oneDNN's compiled kernel per matrix shape, the tokenizer's
character ids per distinct word: README, "Embedding a corpus").

Each size runs ``hf-elmo embed`` in a fresh process, which reports its own peak resident memory (VmHWM, as
bench_awd_lstm.py reads it) before the run and at the end.

    python benchmarks/bench_embed.py --threads 1       # 10,000 and 100,000 sentences
    python benchmarks/bench_embed.py --sizes 2000      # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_awd_lstm import peak_rss_mb
from machine import cpu_name

from hf_elmo import ElmoConfig, ElmoModel, ElmoTokenizer

PUNCTUATION = [".", ",", "!", "?", ";", "'s", "n't"]


def make_corpus(path: Path, n: int, seed: int) -> None:
    """``n`` seeded sentences, one per line."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyzéèüö"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 12))) for _ in range(20_000)]
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n):
            words = [rng.choice(vocab) for _ in range(rng.randint(3, 20))]
            words = [w + rng.choice(PUNCTUATION) if rng.random() < 0.1 else w for w in words]
            f.write(" ".join(words).capitalize() + ".\n")


def make_model(folder: Path, seed: int) -> None:
    config = ElmoConfig(char_cnn_filters=[[1, 8], [2, 8], [3, 16]], n_highway=1, char_embedding_dim=4,
                        lstm_dim=32, projection_dim=16, n_layers=2, use_skip_connections=True)
    torch.manual_seed(seed)
    ElmoModel(config).save_pretrained(folder)
    ElmoTokenizer().save_pretrained(folder)


def child(argv: list[str]) -> None:
    """Runs ``hf-elmo embed ARGV`` in this process and prints its figures as JSON."""
    from hf_elmo.cli import main

    before = peak_rss_mb()  # the interpreter, torch and hf_elmo imported
    start = time.perf_counter()
    status = main(["embed", *argv])
    seconds = time.perf_counter() - start
    if status:
        sys.exit(status)
    print(json.dumps({"seconds": seconds, "before_mb": before, "peak_mb": peak_rss_mb()}))


def run_size(model: Path, corpus: Path, n: int, work: Path, extra: list[str]) -> dict:
    lines = work / f"in-{n}.txt"
    with open(corpus, encoding="utf-8") as fin, open(lines, "w", encoding="utf-8") as fout:
        for _, line in zip(range(n), fin):
            fout.write(line)
    out = work / f"out-{n}.hdf5"
    proc = subprocess.run([sys.executable, __file__, "--child", str(model), str(lines), str(out), *extra],
                          capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if proc.returncode:
        sys.exit(f"embed of {n} sentences failed:\n{proc.stderr[-3000:]}")
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["file_mb"] = out.stat().st_size / 2**20
    out.unlink()
    return figures


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=256, help="larger than embed's 64: a tiny model's batch is "
                    "mostly per-step overhead")
    ap.add_argument("--window", type=int, default=2560,
                    help="embed's --window (below 10k: several windows in each run)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the embedding process")
    ap.add_argument("--layers", default="top", help="what each dataset holds (top: the usual features)")
    args = ap.parse_args()
    extra = ["--batch-size", str(args.batch_size), "--window", str(args.window), "--layers", args.layers]
    if args.threads:
        extra += ["--threads", str(args.threads)]
    threads = args.threads or torch.get_num_threads()
    print(f"# hf-elmo embed, small random ELMo (CNN 32 filters, LSTM 32, projection 16), batch {args.batch_size}, "
          f"window {args.window}, --layers {args.layers}; torch {torch.__version__}, {threads} threads, "
          f"{cpu_name()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_model(work / "elmo", args.seed)
        make_corpus(work / "corpus.txt", max(args.sizes), args.seed)
        for n in sorted(args.sizes):
            f = run_size(work / "elmo", work / "corpus.txt", n, work, extra)
            print(f"{n:>8,} sentences: {n / f['seconds']:6.0f} sentences/s ({f['seconds']:.1f} s), peak RSS "
                  f"{f['peak_mb']:,.0f} MB ({f['before_mb']:,.0f} MB before the run), "
                  f"HDF5 {f['file_mb']:,.0f} MB")


if __name__ == "__main__":
    main()
