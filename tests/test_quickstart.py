"""``hf-elmo quickstart`` runs end to end on the standard library's docstrings and keeps a loadable folder."""

from __future__ import annotations

import re

import torch

from hf_elmo.cli import main
from hf_elmo.data.stdlib_corpus import prose_sentences, stdlib_sentences
from transformers import AutoModel, AutoTokenizer


def test_stdlib_corpus_is_prose():
    sentences = stdlib_sentences(limit=200)
    assert len(sentences) == 200 and len(set(sentences)) == 200
    assert all(s[0].isupper() and s[-1] in ".!?" and ">>>" not in s for s in sentences)
    doc = "Return the sum.\n\n    >>> add(1, 2)\n    3\n\nThe values are added in order. Both must be numbers here."
    assert list(prose_sentences(doc, min_words=3)) == [
        "Return the sum.", "The values are added in order.", "Both must be numbers here."]
    assert list(prose_sentences(doc, min_words=6)) == ["The values are added in order."]


def test_quickstart_pretrains_and_keeps_the_folder(tmp_path, capsys):
    assert main(["quickstart", "--limit", "400", "--elmo-steps", "40", "--output", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "valid perplexity after" in printed and "inference tokens/s" in printed
    figures = dict(re.match(r"\s*(.*?)\s{2,}(\S+)$", line).groups() for line in printed.splitlines() if "perplexity" in line)
    before, after = (float(figures[k]) for k in ("valid perplexity before", "valid perplexity after"))
    assert after < before / 2, f"pretraining did not lower the validation perplexity enough: {before} -> {after}"
    folder = tmp_path / "elmo"
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    with torch.no_grad():
        out = model(**tokenizer(["Return the value of the named attribute."], return_tensors="pt"))
    assert out.last_hidden_state.shape[-1] == model.config.hidden_size
    assert torch.isfinite(out.last_hidden_state).all()
