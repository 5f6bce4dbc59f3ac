"""Render another checkout (the base of a change) with this checkout's preview tool.

    python -m infra.preview.base SOURCE OUT      # SOURCE: a checkout of the base (worktree or clone)

The base's program, stack files and policy pack are what get rendered; the preview tool itself
(infra/preview/ and infra/sdk_adapter.py) is this checkout's, copied over the base's in a temporary
copy of SOURCE (SOURCE is not modified). Otherwise a change to the tool (how files are sorted or
redacted) would show up as a change of every resource. Exit code: the base preview's (0, 1 or 2).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TOOL = Path(__file__).resolve().parent
ADAPTER = TOOL.parent / "sdk_adapter.py"
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "__pycache__", "*.pyc", ".pytest_cache", ".agent-data")


def overlay_tool(tree: Path) -> None:
    infra = tree / "infra"
    if not (infra / "__main__.py").is_file():
        raise SystemExit(f"error: {tree}: no infra/__main__.py; is it a checkout of this project?")
    (infra / "preview.py").unlink(missing_ok=True)  # the single-module tool of older commits
    shutil.rmtree(infra / "preview", ignore_errors=True)
    shutil.copytree(TOOL, infra / "preview", ignore=SKIP)
    shutil.copy2(ADAPTER, infra / "sdk_adapter.py")


def render_base(source: Path, out: Path) -> int:
    source, out = source.resolve(), out.resolve()
    with tempfile.TemporaryDirectory(prefix="preview-base-") as tmp:
        tree = Path(tmp) / "src"
        shutil.copytree(source, tree, ignore=SKIP, symlinks=True)
        overlay_tool(tree)
        env = dict(os.environ, PYTHONPATH=str(tree))
        proc = subprocess.run([sys.executable, "-m", "infra.preview", "--all", "--out", str(out),
                               "--stacks-dir", str(tree / "stacks"), "--program", str(tree / "infra")],
                              cwd=tree, env=env, timeout=900)
        return proc.returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m infra.preview.base", description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="a checkout of the base commit")
    ap.add_argument("out", type=Path, help="where to write the base preview")
    args = ap.parse_args(argv)
    if not args.source.is_dir():
        print(f"error: {args.source}: no such directory", file=sys.stderr)
        return 2
    return render_base(args.source, args.out)


if __name__ == "__main__":
    sys.exit(main())
