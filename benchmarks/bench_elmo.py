"""ElmoModel inference speed: tokens/s in eval/no-grad over batches of 32 real sentences, tokenizer included.

Mirrors the reference measurement of ../shared/REFERENCE.md (AllenNLP 2.10.1 ``Elmo(options, weights, 1,
dropout=0)`` on the bilm-tf fixture's news sentences, after one warm-up batch): random weights in the original HDF5
layout are written by ../shared/tools/make_elmo_weights.py, converted, and timed. A token is a word of the input
sentences (the boundary tokens the model adds are not counted).

    python benchmarks/bench_elmo.py --size original --dtype float32 bfloat16
    python benchmarks/bench_elmo.py --token-cache all --rounds 4     # every setting, 4 alternating rounds
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import cpu_name, reference_kind_warning

from hf_elmo import ElmoConfig, ElmoModel, ElmoTokenizer
from hf_elmo.conversion.allennlp_elmo import load_elmo_weights

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
# REFERENCE.md: AllenNLP 2.10.1 on this machine kind (2-core Zen 4), the two quietest rounds' range, tokens/s
ALLENNLP_TOKENS_PER_S = {("original", "float32"): (127.0, 129.0), ("original", "bfloat16"): (238.0, 263.0)}


def sentences() -> list[list[str]]:
    """The bilm-tf fixture's 30 news sentences (~25 words), pre-tokenised."""
    path = SHARED / "fixtures/elmo/bilm-tf/lm_embeddings_sentences.json"
    if not path.is_file():
        sys.exit(f"{path} not found: the benchmark uses the reference sentences from ../shared")
    groups = json.loads(path.read_text())
    return [s.split(" ") for group in groups for s in group]


def weights(size: str, cache: Path) -> Path:
    folder = cache / size
    if not (folder / "weights.hdf5").is_file():
        tool = SHARED / "tools/make_elmo_weights.py"
        subprocess.run([sys.executable, str(tool), size, str(folder)], check=True)
    return folder


def load(size: str, dtype: torch.dtype, cache: Path) -> ElmoModel:
    folder = weights(size, cache)
    config = ElmoConfig.from_options_json(folder / "options.json")
    model = ElmoModel(config)
    load_elmo_weights(model, folder / "weights.hdf5")
    if dtype != torch.float32:
        saved = cache / f"{size}-hf"
        if not (saved / "config.json").is_file():
            model.save_pretrained(saved)
        model = ElmoModel.from_pretrained(saved, dtype=dtype)
    return model.eval()


class Timer:
    """Times one model over the same batches again and again (a round per call), so that several precisions and
    token-cache settings can be measured in alternating rounds rather than one after the other."""

    def __init__(self, model: ElmoModel, batches: int, batch_size: int) -> None:
        self.model = model
        self.tokenizer = ElmoTokenizer()
        self.pool = sentences()
        self.plan = [[self.pool[(b * batch_size + i) % len(self.pool)] for i in range(batch_size)]
                     for b in range(batches + 1)]

    def __call__(self, token_cache: bool = False, input_products: bool = False) -> float:
        model, tokenizer = self.model, self.tokenizer
        if hasattr(model, "clear_token_cache"):  # (a version before the token cache times its own)
            model.clear_token_cache()
        if token_cache:
            model.cache_token_embeddings({word for sentence in self.pool for word in sentence},
                                         input_products=input_products)
        with torch.inference_mode():
            model(**tokenizer(self.plan[0], is_split_into_words=True, padding=True, return_tensors="pt"))  # warm-up
            n_tokens = 0
            start = time.perf_counter()
            for batch in self.plan[1:]:
                enc = tokenizer(batch, is_split_into_words=True, padding=True, return_tensors="pt")
                model(**enc)
                n_tokens += sum(len(s) for s in batch)
            elapsed = time.perf_counter() - start
        if token_cache:
            model.clear_token_cache()
        return n_tokens / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["small", "medium", "original"], default="original")
    ap.add_argument("--dtype", nargs="+", choices=["float32", "bfloat16"], default=["float32", "bfloat16"])
    ap.add_argument("--batches", type=int, default=5, help="timed batches after one warm-up batch")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternating rounds over the precisions and token-cache settings; the range is printed")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hf-elmo-bench")
    ap.add_argument("--token-cache", choices=["off", "on", "products", "all"], default="off",
                    help="time with the benchmark's vocabulary in the token cache: on (representations), products "
                         "(and the first layer's input products), all (off, on and products in turn)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = cpu_name()
    print(f"# ElmoModel {args.size}, batch {args.batch_size}, {args.batches} batches, {args.rounds} round(s), "
          f"torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {cpu}")
    if warning := reference_kind_warning():
        print(warning)
    modes = ["off", "on", "products"] if args.token_cache == "all" else [args.token_cache]
    timers = {name: Timer(load(args.size, getattr(torch, name), args.cache), args.batches, args.batch_size)
              for name in args.dtype}
    results: dict[tuple[str, str], list[float]] = {(name, mode): [] for name in args.dtype for mode in modes}
    for _ in range(args.rounds):  # alternating rounds: every setting once a round
        for name, mode in results:
            results[name, mode].append(timers[name](token_cache=mode != "off", input_products=mode == "products"))
    for (name, mode), figures in results.items():
        low, high = min(figures), max(figures)
        reference = ALLENNLP_TOKENS_PER_S.get((args.size, name))
        ratio = ""
        if reference:  # AllenNLP under the same precision (bfloat16: the same autocast)
            ref_low, ref_high = reference
            ratio = (f"  ({low / ref_high:.2f}-{high / ref_low:.2f}x AllenNLP's {ref_low:.0f}-{ref_high:.0f} "
                     "tokens/s)")
        label = {"off": "", "on": " + token cache", "products": " + token cache and input products"}[mode]
        span = f"{low:8.0f}" if len(figures) == 1 else f"{low:5.0f}-{high:<5.0f}"
        print(f"{args.size:9s} {name:9s} {span} tokens/s{ratio}{label}")


if __name__ == "__main__":
    main()
