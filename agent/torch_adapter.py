"""The one private torch call the encoder makes, behind a name (tests/infra/test_sdk_adapters.py).

`torch._C._nn.gelu_` is the in-place, exact (erf) GELU kernel; torch has no public in-place GELU
(`F.gelu` allocates a new tensor, and the encoder reuses its hidden buffer in every layer). It is
resolved at import, so a torch release without it fails here by name; torch is pinned exactly in
pyproject.toml.
"""

from __future__ import annotations

import torch

try:
    _gelu_ = torch._C._nn.gelu_
except AttributeError:  # pragma: no cover - only on a torch that dropped it
    raise ImportError(f"torch._C._nn.gelu_ is gone in torch {torch.__version__}; agent/torch_adapter.py relies on "
                      "it: pin torch back (pyproject.toml) or use `h.copy_(F.gelu(h))`") from None


def gelu_(tensor: torch.Tensor) -> torch.Tensor:
    """Exact (erf) GELU, in place: `tensor` is overwritten and returned."""
    return _gelu_(tensor)
