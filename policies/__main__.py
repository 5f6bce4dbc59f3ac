"""Entry point shared by the Pulumi CLI and the manifest checker.

How the Pulumi engine launches a Python policy pack (pulumi's `pulumi-analyzer-policy-python` shim,
pulumi_policy 1.x): `python -u -m pulumi.policy <engine-address> <program>` with the pack directory as
the working directory and `<program>` = `.`; `pulumi.policy`'s own `__main__` then runs this file with
`runpy.run_path(program, run_name="__main__")`, which sets `sys.argv[0]` to the program path. So here,
and only here, `pulumi.policy` is imported, `argv[1]` is a `host:port` address and `argv[0] == argv[2]`
names this directory. That, and nothing else, serves the analyzer (its gRPC server blocks until the
engine stops it).

Everything else is the command line: `python -m policies check PATH...` runs the checker;
`--help`/`-h`/`help` prints usage (exit 0); anything else prints usage and exits 2.
Importing this module (as `policies.__main__`) does none of it.
"""

import re
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

if not __package__:
    # Run by path (the Pulumi CLI): sys.path holds this directory, not its parent, so make
    # `policies.*` importable the same way tests and the preview import it.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PACK_DIR = Path(__file__).resolve().parent
EXIT_OK, EXIT_USAGE = 0, 2
USAGE = """usage: python -m policies check PATH... [--format text|json] [--config FILE]

Check Kubernetes manifests (files, directories, or - for stdin) against the rag-platform policy pack.
`python -m policies check --help` describes the options.

Exit codes: 0 no mandatory violation; 1 at least one; 2 unreadable input or config, a policy that
crashed (the message names the policy and the object), or a command line other than `check ...`.

The CrossGuard analyzer is served only when the Pulumi engine launches the pack
(`pulumi preview --policy-pack policies`), never from this command line.
"""

_ENGINE_ADDRESS = re.compile(r"^[^\s/]+:\d{1,5}$")


def launched_by_engine(argv: Sequence[str], modules: Collection[str], pack_dir: Path = PACK_DIR) -> bool:
    """True when `python -m pulumi.policy <engine-address> <program>` is running this pack."""
    if "pulumi.policy" not in modules or len(argv) < 3:
        return False
    if not _ENGINE_ADDRESS.match(argv[1]) or argv[0] != argv[2]:
        return False
    try:
        return Path(argv[2]).resolve() == pack_dir.resolve()
    except OSError:
        return False


def main(argv: Sequence[str], modules: Collection[str] = ()) -> int:
    if launched_by_engine(argv, modules):
        from policies.pack import serve

        serve()  # blocks: PolicyPack starts the analyzer gRPC server and prints its port for the CLI
        return EXIT_OK
    command = list(argv[1:2])
    if command == ["check"]:
        from policies.checker import main as check

        return check(list(argv[2:]))
    if command in (["-h"], ["--help"], ["help"]):
        sys.stdout.write(USAGE)
        return EXIT_OK
    got = f"unknown command {command[0]!r}" if command else "no command given"
    sys.stderr.write(f"{USAGE}\npython -m policies: error: {got}; use `check PATH...`\n")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main(sys.argv, set(sys.modules)))
