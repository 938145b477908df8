"""The start of a child-process script that runs as if hf_elmo were not installed (the development install is an
editable one that every interpreter of its virtualenv would find), for the remote-code tests.

``BLOCK_HF_ELMO`` refuses every ``hf_elmo`` import, checks that ``import hf_elmo`` fails, and then records in
``BLOCKED`` any later attempt to import it (a test can assert the list stays empty). ``flat_outputs`` gives a
model's outputs as the flat name → array dict that the child processes save, for the comparison.
"""

from __future__ import annotations

import textwrap

import numpy as np


def flat_outputs(out, fields: list[str]) -> dict[str, np.ndarray]:
    """``fields`` of a model output as float32 arrays; a tuple field ``f`` becomes ``f.0``, ``f.1``, ..."""
    arrays = {}
    for field in fields:
        value = getattr(out, field)
        if isinstance(value, (tuple, list)):
            for i, v in enumerate(value):
                arrays[f"{field}.{i}"] = v.detach().float().numpy()
        else:
            arrays[field] = value.detach().float().numpy()
    return arrays

BLOCK_HF_ELMO = textwrap.dedent(
    r'''
    import importlib.abc, json, sys
    from pathlib import Path

    BLOCKED = []


    class _NotInstalled(importlib.abc.MetaPathFinder):
        """Makes this process one where hf_elmo is not installed, however this machine has it installed."""

        def find_spec(self, name, path=None, target=None):
            if name == "hf_elmo" or name.startswith("hf_elmo."):
                BLOCKED.append(name)
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, _NotInstalled())
    try:
        import hf_elmo  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("hf_elmo is importable in the clean process")
    BLOCKED.clear()
    '''
)


def run_child(python: str, script: str, workdir, *args: str) -> dict:
    """Runs ``script`` (a ``BLOCK_HF_ELMO`` script that prints one JSON report as its last line) with ``python``
    in ``workdir``, offline and with fresh Hugging Face caches there; returns the report. Fails the test, with the
    child's stderr, when the child fails."""
    import json
    import os
    import subprocess
    from pathlib import Path

    workdir = Path(workdir)
    (workdir / "child.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(HF_HOME=str(workdir / "hf_home"), HF_MODULES_CACHE=str(workdir / "hf_modules"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", PYTHONNOUSERSITE="1", OMP_NUM_THREADS="2")
    done = subprocess.run([str(python), str(workdir / "child.py"), *args], capture_output=True, text=True,
                          cwd=workdir, env=env, timeout=300)
    assert done.returncode == 0, f"child process failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])
