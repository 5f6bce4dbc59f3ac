"""Build the real engines the engine-tier tests run, from Go modules, cached outside the clone.

    python tools/engine/build.py [--only NAME ...] [--list]

Each engine is one main package of a published module, built with the ordinary `go` client in a
throwaway wrapper module: `require <module> <version>` plus the module's own `replace` directives,
since a dependency's replaces are ignored by Go. Path replaces (`=> ./staging/src/k8s.io/api`,
`=> ../sdk`) point into the monorepo the module was cut from; they are turned into the sibling
module at the matching published version. Nothing from these modules is committed: the versions
live in `infra/versions.py` (ENGINES) and binaries land in

    $RAG_ENGINE_DIR (default ~/.cache/rag-platform/engine)/<name>-<version>/<binary>

so a second clone (CI's) links nothing. The last line printed is the directory of binaries for this
set of versions (`bin/`, symlinks into the cache). Exit codes: 0 built or cached, 1 a build failed
(the go command's output is shown), 2 bad arguments or no `go` on PATH.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from infra.versions import ENGINES, Engine  # noqa: E402

_REPLACE_LINE = re.compile(r"^\s*(?:replace\s+)?(\S+)(?:\s+(\S+))?\s+=>\s+(\S+)(?:\s+(\S+))?\s*$")


def cache_root() -> Path:
    return Path(os.environ.get("RAG_ENGINE_DIR") or Path.home() / ".cache" / "rag-platform" / "engine")


@dataclass(frozen=True)
class Replace:
    old: str
    new: str
    new_version: str | None


def parse_replaces(gomod: str) -> list[Replace]:
    """Every `replace` directive of a go.mod, single-line and block form."""
    out: list[Replace] = []
    in_block = False
    for raw in gomod.splitlines():
        line = raw.split("//", 1)[0].rstrip()
        if not line.strip():
            continue
        if re.match(r"^replace\s*\($", line.strip()):
            in_block = True
            continue
        if in_block and line.strip() == ")":
            in_block = False
            continue
        if in_block or line.lstrip().startswith("replace "):
            m = _REPLACE_LINE.match(line)
            if m:
                out.append(Replace(old=m.group(1), new=m.group(3), new_version=m.group(4)))
    return out


def sibling_version(engine: Engine, module: str) -> str:
    """The published version of a monorepo sibling that a path replace points at."""
    if module.startswith("k8s.io/") and engine.module == "k8s.io/kubernetes":
        # Staging modules are published as v0.<minor>.<patch> beside kubernetes v1.<minor>.<patch>.
        return "v0" + engine.version[2:]
    return engine.version


def required_versions(gomod: str) -> dict[str, str]:
    """module -> version of every `require` of a go.mod (block and single-line form)."""
    out: dict[str, str] = {}
    in_block = False
    for raw in gomod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if line == "require (":
            in_block = True
            continue
        if in_block and line == ")":
            in_block = False
            continue
        parts = line.split()
        if in_block and len(parts) == 2:
            out[parts[0]] = parts[1]
        elif len(parts) == 3 and parts[0] == "require":
            out[parts[1]] = parts[2]
    return out


def wrapper_gomod(engine: Engine, upstream_gomod: str) -> str:
    lines = [f"module rag-platform.local/engine/{engine.name}", "", f"go {engine.go}", "",
             f"require {engine.module} {engine.version}", ""]
    required = required_versions(upstream_gomod)
    for r in parse_replaces(upstream_gomod):
        if r.new.startswith((".", "/")):
            # A sibling the module requires at a published version (etcd's api/v3, client/v2) needs
            # no replace, nor does one it does not require; a placeholder v0.0.0 (Kubernetes' staging
            # modules) does.
            if required.get(r.old) != "v0.0.0":
                continue
            lines.append(f"replace {r.old} => {r.old} {sibling_version(engine, r.old)}")
        else:
            lines.append(f"replace {r.old} => {r.new} {r.new_version}")
    return "\n".join(lines) + "\n"


def go(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["go", *args], cwd=cwd, env=env, text=True, capture_output=True)


def upstream_gomod(engine: Engine, env: dict[str, str]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        res = go(["mod", "download", "-json", f"{engine.module}@{engine.version}"], Path(tmp), env)
        info = json.loads(res.stdout or "{}")
        if res.returncode != 0 or info.get("Error"):
            raise BuildError(engine, info.get("Error") or res.stderr)
        return Path(info["GoMod"]).read_text()


class BuildError(Exception):
    def __init__(self, engine: Engine, detail: str):
        super().__init__(f"engine {engine.name} {engine.version} ({engine.module}): {detail.strip()}")


def build(engine: Engine, env: dict[str, str]) -> Path:
    out_dir = cache_root() / f"{engine.name}-{engine.version}"
    binary = out_dir / engine.binary
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    work = cache_root() / "wrappers" / f"{engine.name}-{engine.version}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "go.mod").write_text(wrapper_gomod(engine, upstream_gomod(engine, env)))
    out_dir.mkdir(parents=True, exist_ok=True)
    ldflags = " ".join(f"-X '{k}={v}'" for k, v in engine.ldflags)
    started = time.monotonic()
    tmp_bin = out_dir / f".{engine.binary}.partial"
    res = go(["build", "-mod=mod", "-trimpath", "-ldflags", f"-s -w {ldflags}".strip(),
              "-o", str(tmp_bin), engine.package], work, env)
    if res.returncode != 0:
        raise BuildError(engine, res.stdout + res.stderr)
    tmp_bin.replace(binary)  # a killed build never leaves a binary that looks finished
    print(f"built {engine.name} {engine.version} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return binary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], help="build only this engine (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the pinned engines and exit")
    args = parser.parse_args(argv)
    by_name = {e.name: e for e in ENGINES}
    if args.list:
        for e in ENGINES:
            print(f"{e.name}\t{e.module}@{e.version}\t{e.package}")
        return 0
    unknown = sorted(set(args.only) - set(by_name))
    if unknown:
        print(f"error: --only {', '.join(unknown)}: not a pinned engine; choose from {', '.join(by_name)}",
              file=sys.stderr)
        return 2
    if shutil.which("go") is None:
        print("error: no `go` on PATH; install Go 1.26 (the engines are built from Go modules)", file=sys.stderr)
        return 2
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    chosen = [by_name[n] for n in args.only] if args.only else list(ENGINES)
    bin_dir = cache_root() / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    # One build at a time per cache: two would share (and wipe) the same wrapper directories.
    lock = (cache_root() / ".lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    for engine in chosen:
        try:
            binary = build(engine, env)
        except BuildError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        link = bin_dir / engine.binary
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(binary)
    print(bin_dir)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
