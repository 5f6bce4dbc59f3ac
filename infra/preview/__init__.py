"""Credential-free preview: the real program under the Pulumi SDK's mock engine (docs/platform.md).

One job per module: `stackfile` (stack files read as the CLI reads them), `engine` (the recording mock
engine), `outputs` (redacted, deterministic files and the policy run), `diff` (a preview against its
base, for code review), `base` (render another checkout with this preview tool), `cli`
(`python -m infra.preview`).
"""

from .engine import FAKE_SECRET_PREFIX
from .stackfile import PLACEHOLDER_PREFIX, PROJECT, PreviewError, load_stack_file, stack_names

__all__ = ["FAKE_SECRET_PREFIX", "PLACEHOLDER_PREFIX", "PROJECT", "PreviewError", "load_stack_file", "stack_names"]
