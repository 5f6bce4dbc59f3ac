"""Pulumi program entry (`main: infra/` in Pulumi.yaml): read config, build the platform, export.

The Python language host runs this file with `runpy.run_path("infra/")`, which puts infra/ (not
the repository root) on sys.path; the root is added so `infra.*` imports resolve either way.
"""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pulumi  # noqa: E402

from infra.config import load_stack_config  # noqa: E402
from infra.program import build_platform  # noqa: E402

for _key, _value in build_platform(load_stack_config()).items():
    pulumi.export(_key, _value)
