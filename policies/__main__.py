"""Entry point shared by the Pulumi CLI and the manifest checker.

The Pulumi CLI starts a Python policy pack as `python -u -m pulumi.policy <engine-address> .` with
this directory as the working directory; `pulumi.policy` then runs this file with runpy as
`__main__`, so argv[1] is the engine address and we build (and serve) the PolicyPack.
`python -m policies check PATH...` runs this same file, with "check" in argv[1]: that, and only
that, runs the checker. Importing this module (as `policies.__main__`) does neither.
"""

import sys
from pathlib import Path

if not __package__:
    # Run by path (the Pulumi CLI): sys.path holds this directory, not its parent, so make
    # `policies.*` importable the same way tests and the preview import it.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str]) -> int:
    if argv[1:2] == ["check"]:
        from policies.checker import main as check

        return check(argv[2:])
    from policies.pack import serve

    serve()  # blocks: PolicyPack starts the analyzer gRPC server and prints its port for the CLI
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
