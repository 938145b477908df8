"""Pushing a converted folder to the Hub: one commit holding exactly the folder's files.

Nothing leaves the machine: the HfApi methods that push_folder calls are replaced on the class, every call is
recorded, and the methods that would upload by another route fail the test if they are reached.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, ModelCard

from hf_elmo.conversion.allennlp_elmo import convert_allennlp_elmo
from hf_elmo.hub import push_folder
from conftest import COMMIT_URL, CONVERTED_ELMO_FILES, FakeHub

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared/fixtures/elmo/bilm-tf"

pytestmark = pytest.mark.skipif(
    not (FIXTURE / "lm_weights.hdf5").is_file(),
    reason=f"the bilm-tf ELMo fixture is not at {FIXTURE} (../shared is not part of a fresh clone)",
)

# What a converted folder holds, and so what one push commits: the weights, the config, the tokenizer, the model's
# code (remote code), the card and the original options.
CONVERTED_FILES = set(CONVERTED_ELMO_FILES)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hub") / "elmo"
    return convert_allennlp_elmo(FIXTURE / "options.json", FIXTURE / "lm_weights.hdf5", out)


def test_push_folder_is_one_commit_of_exactly_the_folder(hub: FakeHub, converted: Path) -> None:
    url = push_folder(converted, "user/elmo-test", token="hf_test_token")
    assert url == COMMIT_URL
    assert hub.names() == ["create_repo", "create_commit"]  # no branch without a revision
    repo = hub.only("create_repo")
    assert repo["repo_id"] == "user/elmo-test" and repo["private"] is False and repo["exist_ok"] is True
    assert repo["token"] == "hf_test_token"
    commit = hub.only("create_commit")
    assert commit["repo_id"] == "user/elmo-test" and commit["revision"] is None and commit["token"] == "hf_test_token"
    assert commit["commit_message"]
    assert all(isinstance(op, CommitOperationAdd) for op in commit["operations"])
    paths = [op.path_in_repo for op in commit["operations"]]
    assert len(paths) == len(set(paths))
    assert set(paths) == CONVERTED_FILES
    for path, data in commit["contents"].items():
        assert data == (converted / path).read_bytes(), path


def test_push_folder_to_a_branch_of_a_private_repo(hub: FakeHub, converted: Path) -> None:
    push_folder(converted, "user/elmo-test", private=True, revision="v1", commit_message="Add ELMo")
    assert hub.names() == ["create_repo", "create_branch", "create_commit"]
    assert hub.only("create_repo")["private"] is True
    branch = hub.only("create_branch")
    assert branch["repo_id"] == "user/elmo-test" and branch["branch"] == "v1" and branch["exist_ok"] is True
    commit = hub.only("create_commit")
    assert commit["revision"] == "v1" and commit["commit_message"] == "Add ELMo"


def test_push_folder_leaves_out_hidden_files_and_caches(hub: FakeHub, converted: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(converted, folder)
    (folder / ".cache/huggingface").mkdir(parents=True)
    (folder / ".cache/huggingface/upload.lock").write_text("x")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__/modeling_elmo.cpython-311.pyc").write_bytes(b"\0")
    (folder / ".DS_Store").write_bytes(b"\0")
    (folder / "extra").mkdir()
    (folder / "extra/notes.txt").write_text("kept, with its folder")
    push_folder(folder, "user/elmo-test")
    paths = {op.path_in_repo for op in hub.only("create_commit")["operations"]}
    assert paths == CONVERTED_FILES | {"extra/notes.txt"}


def test_push_folder_errors(hub: FakeHub, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="folder to push not found"):
        push_folder(tmp_path / "missing", "user/elmo-test")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        push_folder(tmp_path / "empty", "user/elmo-test")
    assert hub.calls == []


def test_convert_with_push_to_hub(hub: FakeHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`hf-elmo convert-elmo --push-to-hub` converts, then pushes the finished folder in one commit; the card's
    snippet then loads the Hub repository (and the branch) rather than the local folder."""
    from hf_elmo.cli import main

    out = tmp_path / "elmo"
    code = main(["convert-elmo", "--options", str(FIXTURE / "options.json"), "--weights",
                 str(FIXTURE / "lm_weights.hdf5"), "--output", str(out), "--push-to-hub", "user/elmo-test",
                 "--private", "--revision", "v1"])
    assert code == 0
    stdout = capsys.readouterr().out
    assert f"Pushed to {COMMIT_URL}" in stdout and f"Wrote the converted ELMo to {out}" in stdout
    assert hub.names() == ["create_repo", "create_branch", "create_commit"]
    assert hub.only("create_repo")["private"] is True
    commit = hub.only("create_commit")
    assert commit["revision"] == "v1"
    assert set(commit["contents"]) == CONVERTED_FILES
    card = ModelCard(commit["contents"]["README.md"].decode("utf-8"))
    assert '"user/elmo-test"' in card.text and "revision='v1'" in card.text
    assert card.data.library_name == "transformers"


@pytest.mark.parametrize("command", ["convert-elmo", "convert-awd-lstm", "export"])
def test_push_options_need_a_repository(command: str, tmp_path: Path, hub: FakeHub,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """--private and --revision without --push-to-hub are refused before any work, by every command that pushes
    (as by `hf-elmo ulmfit`): they would otherwise be silently ignored."""
    from hf_elmo.cli import main

    inputs = {"convert-elmo": ["--options", str(tmp_path / "options.json"), "--weights", str(tmp_path / "w.hdf5"),
                               "--output", str(tmp_path / "out")],
              "convert-awd-lstm": ["--weights", str(tmp_path / "model.pth"), "--vocab", str(tmp_path / "itos.pkl"),
                                   "--output", str(tmp_path / "out")],
              "export": [str(tmp_path / "model"), str(tmp_path / "out")]}[command]
    for flag in (["--revision", "v1"], ["--private"]):
        assert main([command, *inputs, *flag]) != 0
        assert f"{flag[0]} only applies with --push-to-hub" in capsys.readouterr().err
    assert hub.calls == [] and not (tmp_path / "out").exists()
