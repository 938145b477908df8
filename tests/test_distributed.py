"""LM pretraining runs unchanged under torchrun: DDP (gloo, CPU) with two processes trains the same model as one.

The ELMo biLM with the plain transformers Trainer and ``DataCollatorWithPadding(ElmoTokenizer(...))``: one process
with batches of 2B against ``torchrun --nproc_per_node 2`` with batches of B. Same seed, no dropout, and every
sentence of the same length, so each rank's mean loss is over the same number of tokens and DDP's averaged gradient is
the gradient of the global batch's mean loss. The accelerate-prepared sampler gives rank r the r-th B rows of each
global batch of the same seeded permutation, so the global batches coincide (checked, not assumed).
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

SCRIPT = Path(__file__).resolve().parent / "ddp_scripts" / "train_elmo_lm.py"
B = 2
STEPS = 6
TIMEOUT = 180


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                        "ACCELERATE_USE_CPU", "CUDA_VISIBLE_DEVICES"}}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", TOKENIZERS_PARALLELISM="false")
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else root
    return env


def _run(cmd: list[str], out: Path) -> dict:
    try:
        proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} ran past {TIMEOUT}s:\n{e.stdout}\n{e.stderr}")
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return json.loads((out / "losses.json").read_text())


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                    reason="torch.distributed with the gloo backend is not available in this torch build")
def test_elmo_lm_trains_the_same_under_torchrun_ddp(tmp_path):
    single_out, ddp_out = tmp_path / "single", tmp_path / "ddp"
    common = ["--max-steps", str(STEPS), "--seed", "0"]
    single = _run([sys.executable, str(SCRIPT), str(single_out), "--batch-size", str(2 * B), *common], single_out)
    ddp = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                str(SCRIPT), str(ddp_out), "--batch-size", str(B), *common], ddp_out)

    assert single["world_size"] == 1 and ddp["world_size"] == 2

    # the global batches coincide: step s of the single run saw rank 0's rows then rank 1's rows of step s
    rows = json.loads((single_out / "rows_rank0.json").read_text())
    rank0 = json.loads((ddp_out / "rows_rank0.json").read_text())
    rank1 = json.loads((ddp_out / "rows_rank1.json").read_text())
    assert len(rows) == len(rank0) == len(rank1) == STEPS
    assert all(len(r0) == len(r1) == B for r0, r1 in zip(rank0, rank1))
    assert rows == [r0 + r1 for r0, r1 in zip(rank0, rank1)], "the two runs trained on different global batches"

    # the same loss curve (and gradient norms): DDP averages the ranks' gradients of equal-token-count mean losses
    a, b = single["losses"], ddp["losses"]
    assert len(a) == len(b) == STEPS and all(math.isfinite(x) for x in a + b)
    assert a[-1] < a[0] - 0.01, f"the loss barely moved ({a}): the comparison would be vacuous"
    for step, (x, y) in enumerate(zip(a, b), 1):
        assert math.isclose(x, y, rel_tol=1e-5), f"step {step}: single-process loss {x} vs DDP loss {y}\n{a}\n{b}"
    for step, (x, y) in enumerate(zip(single["grad_norms"], ddp["grad_norms"]), 1):
        assert math.isclose(x, y, rel_tol=1e-4), f"step {step}: grad norm {x} vs {y}"


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                    reason="torch.distributed with the gloo backend is not available in this torch build")
def test_stateful_awd_lstm_stream_trains_the_same_under_torchrun_ddp(tmp_path):
    """StatefulLMTrainer under DDP: each process continues its own rows of the stream (state carried), and the
    result is the one-process run's."""
    script = SCRIPT.parent / "train_awd_lm_stream.py"
    single_out, ddp_out = tmp_path / "single", tmp_path / "ddp"
    single = _run([sys.executable, str(script), str(single_out), "--batch-size", str(2 * B)], single_out)
    ddp = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
                str(script), str(ddp_out), "--batch-size", str(B)], ddp_out)
    assert single["world_size"] == 1 and ddp["world_size"] == 2
    a, b = single["losses"], ddp["losses"]
    assert len(a) == len(b) > 2 and a[-1] < a[0]
    for step, (x, y) in enumerate(zip(a, b), 1):
        assert math.isclose(x, y, rel_tol=1e-5), f"step {step}: single-process loss {x} vs DDP loss {y}\n{a}\n{b}"
