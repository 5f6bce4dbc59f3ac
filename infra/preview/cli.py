"""`python -m infra.preview`: the credential-free preview, and its diff against a base preview.

    python -m infra.preview --stack dev --out build/preview
    python -m infra.preview --all --out build/preview
    python -m infra.preview --all --out build/preview --diff-against build/preview-base

Exit codes (docs/platform.md, "Exit codes"):
  0  every stack rendered, no mandatory policy violation
  1  a mandatory policy violation (and nothing worse)
  2  a config or program error, a policy that crashed (named, with the object), a custom resource
     without a dependency on its CRD installer, or an unreadable --diff-against directory
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

from .outputs import (dump_json, print_differences, print_stack_summary, resource_json, run_policies,
                      write_atomically, write_outputs)
from .stackfile import PreviewError, stack_names

REPO_ROOT = Path(__file__).resolve().parents[2]
EXIT_OK, EXIT_POLICY, EXIT_ERROR = 0, 1, 2
RESULT_NAMES = {EXIT_OK: "ok", EXIT_POLICY: "mandatory-policy-violation", EXIT_ERROR: "error"}
INDEX = "index.json"


def preview_stack(stack: str, out: Path, stacks_dir: Path, program_dir: Path) -> int:
    from .engine import run_program

    try:
        preview = run_program(stack, stacks_dir, program_dir)
    except PreviewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - any program failure is a preview failure with exit 2
        from infra.config import ConfigError

        if isinstance(exc, ConfigError):
            print(f"error: {exc}", file=sys.stderr)
        else:
            print(f"error: the program failed for stack '{stack}':\n{traceback.format_exc()}", file=sys.stderr)
        return EXIT_ERROR
    from infra.crds import check_crd_dependencies
    from policies.engine import PolicyConfigError, PolicyCrash

    resources = [resource_json(r) for r in preview.resources]
    try:
        policy, mandatory = run_policies(stack, resources, stacks_dir)
    except PolicyConfigError as exc:  # the stack's policy config file is wrong
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except PolicyCrash as exc:
        print(f"error: {stack}: {exc}\n  a bug in policies/ (not a violation): fix the policy so it handles "
              f"this object, or report it; no preview files were written", file=sys.stderr)
        return EXIT_ERROR
    except Exception:  # noqa: BLE001 - the engine itself failed: never exit 1, which means "violation"
        print(f"error: {stack}: the policy engine failed:\n{traceback.format_exc()}", file=sys.stderr)
        return EXIT_ERROR
    target = write_outputs(preview, resources, policy, out)
    print_stack_summary(stack, resources, policy, target)
    problems = check_crd_dependencies(resources)
    if problems:
        print(f"error: {stack}: custom resources without a dependency on their CRD installer:\n  "
              + "\n  ".join(problems), file=sys.stderr)
        return EXIT_ERROR
    return EXIT_POLICY if mandatory else EXIT_OK


def preview_all(out: Path, stacks_dir: Path, program_dir: Path) -> int:
    """One fresh interpreter per stack (the mock runtime is global state), as many as there are cores."""
    stacks = stack_names(stacks_dir)
    if not stacks:
        print(f"error: no stack files in {stacks_dir}", file=sys.stderr)
        return EXIT_ERROR
    started = time.monotonic()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    procs: dict[str, subprocess.Popen] = {}
    codes: dict[str, int] = {}
    outputs: dict[str, tuple[str, str]] = {}
    pending = list(stacks)
    while pending or procs:
        while pending and len(procs) < max(2, os.cpu_count() or 2):
            s = pending.pop(0)
            procs[s] = subprocess.Popen(
                [sys.executable, "-m", "infra.preview", "--stack", s, "--out", str(out),
                 "--stacks-dir", str(stacks_dir), "--program", str(program_dir)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)
        s, p = next(iter(procs.items()))
        outputs[s] = p.communicate()
        codes[s] = p.returncode
        del procs[s]
    for s in stacks:
        stdout, stderr = outputs[s]
        sys.stdout.write(stdout)
        if stderr.strip():
            sys.stderr.write(stderr)
    out.mkdir(parents=True, exist_ok=True)
    # Which stacks this run rendered, and how each ended: the diff reads it to tell a stack that
    # failed from one that was removed.
    write_atomically(out / INDEX, dump_json({"stacks": {s: describe(codes[s]) for s in stacks}}))
    print_differences(out, [s for s in stacks if codes[s] != EXIT_ERROR])
    print("== result: " + ", ".join(f"{s}={describe(codes[s])}" for s in stacks)
          + f" ({time.monotonic() - started:.1f}s)")
    return max(codes.values())


def describe(code: int) -> str:
    return RESULT_NAMES.get(code, f"exit {code}")


def run_diff(base: Path, head: Path, stacks: list[str] | None, head_status: dict[str, str] | None = None) -> int:
    from .diff import DiffError, diff_previews, write_diff

    try:
        result = diff_previews(base, head, stacks, head_status)
    except DiffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    json_path, md_path = write_diff(result, head)
    print(f"== diff against {base}: {result['totals']['summary']} -> {json_path}, {md_path}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m infra.preview", description=__doc__.split("\n\n")[0])
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--stack", help="one stack name (stacks/Pulumi.<stack>.yaml)")
    which.add_argument("--all", action="store_true", help="every stack in the stacks directory")
    ap.add_argument("--out", type=Path, default=Path("build/preview"), help="output directory")
    ap.add_argument("--stacks-dir", type=Path, default=REPO_ROOT / "stacks")
    ap.add_argument("--program", type=Path, default=REPO_ROOT / "infra", help="program directory (Pulumi.yaml main)")
    ap.add_argument("--diff-against", type=Path, metavar="DIR",
                    help="a preview of the base (same layout as --out): write diff.json and summary.md into --out")
    args = ap.parse_args(argv)
    if args.all:
        code = preview_all(args.out, args.stacks_dir, args.program)
    else:
        code = preview_stack(args.stack, args.out, args.stacks_dir, args.program)
    if args.diff_against is not None:
        # The diff is written even when a stack failed: a reviewer needs to see that most of all.
        # One stack: this run's result, not what an older --all run left in index.json.
        fresh = None if args.all else {args.stack: describe(code)}
        code = max(code, run_diff(args.diff_against, args.out, None if args.all else [args.stack], fresh))
    return code
