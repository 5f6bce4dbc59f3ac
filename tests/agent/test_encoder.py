"""The lean encoder matches the reference BERT + mean pooling + L2 normalisation."""

from __future__ import annotations

import numpy as np
import torch

from agent.embeddings import Encoder

from .conftest import CORPUS


def _reference(model_path, texts: list[str]) -> np.ndarray:
    """transformers' BertModel with sentence-transformers' pooling for this model, one text at a time."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path).eval()
    out = []
    with torch.inference_mode():
        for text in texts:
            batch = tokenizer([text], truncation=True, max_length=256, return_tensors="pt")
            hidden = model(**batch).last_hidden_state[0]
            out.append(torch.nn.functional.normalize(hidden.mean(0), dim=0).numpy())
    return np.stack(out)


def test_matches_reference_in_any_batch_composition(encoder: Encoder) -> None:
    long_text = " ".join(CORPUS.values())                      # > 256 tokens: truncated like the reference
    texts = [*CORPUS.values(), "short", long_text, "Émile's café — naïve façade", "x" * 5]
    expected = _reference(encoder.model_path, texts)
    for batch_size in (1, 3, 64):
        got = encoder.encode(texts, batch_size=batch_size)
        assert got.shape == (len(texts), 384)
        assert got.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
        cosine = (got * expected).sum(axis=1)
        assert cosine.min() > 0.9999, cosine


def test_empty_input(encoder: Encoder) -> None:
    assert encoder.encode([]).shape == (0, 384)


def test_cpu_quota_follows_the_cgroup_limit(tmp_path) -> None:
    from agent.embeddings import cpu_quota

    assert cpu_quota(tmp_path) is None                       # no cgroup file: unlimited
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")     # 1.5 CPUs -> 2 threads
    assert cpu_quota(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert cpu_quota(tmp_path) == 1
