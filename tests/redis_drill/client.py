"""The drill's client, run inside the simulated cluster's network (python -m tests.redis_drill.client).

- writer: the agent's own Sentinel client (agent.stores.sessions.connect_redis) writes one key per
  ~20 ms and records every acknowledged write with its monotonic time;
- watcher: every 100 ms asks every data pod for its role; a primary "accepts writes" when it has
  at least min-replicas-to-write good replicas (INFO min_slaves_good_slaves), exactly Redis's own
  admission rule. Two at once is a split brain and is recorded; so is any moment with two pods in the
  primary role (min-replicas may be all that keeps the second from taking writes).

Commands arrive as JSON lines on stdin, answers leave as JSON lines on stdout:
  {"cmd": "status"}  -> acks, last errors, the latest roles, split-brain records
  {"cmd": "verify"}  -> pauses writing, reads every drill key from the primary the Sentinels name
  {"cmd": "resume"}, {"cmd": "stop"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

from agent.config import Settings
from agent.stores.sessions import connect_redis

KEY = "drill:{:07d}"


class Drill:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.acks: list[tuple[int, float]] = []
        self.errors: Counter[str] = Counter()
        self.last_errors: list[str] = []
        self.split_brain: list[dict[str, Any]] = []
        self.two_primaries: list[dict[str, Any]] = []
        self.roles: dict[str, Any] = {}
        self.roles_t = 0.0
        self.writing = asyncio.Event()
        self.writing.set()
        self.idle = asyncio.Event()
        self.stopped = False

    async def writer(self) -> None:
        settings = Settings(data_dir=Path("/nonexistent"), redis_sentinel_hosts=self.args.sentinels,
                            redis_password=self.args.password, redis_timeout_seconds=1.0)
        handle = connect_redis(settings)
        seq = 0
        try:
            while not self.stopped:
                if not self.writing.is_set():
                    self.idle.set()
                    await self.writing.wait()
                    continue
                self.idle.clear()
                seq += 1
                try:
                    await handle.client.set(KEY.format(seq), seq)
                    self.acks.append((seq, time.monotonic()))
                except Exception as exc:  # noqa: BLE001 - every failure is recorded, none is fatal
                    name = type(exc).__name__
                    self.errors[name] += 1
                    self.last_errors = (self.last_errors + [f"{name}: {exc}"[:200]])[-5:]
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.02)
        finally:
            await handle.client.aclose()

    async def watcher(self) -> None:
        nodes = {n: aioredis.Redis(host=n, port=6379, password=self.args.password, socket_timeout=0.5,
                                   socket_connect_timeout=0.5, decode_responses=True) for n in self.args.nodes.split(",")}

        async def role(node: str, client: aioredis.Redis) -> tuple[str, Any]:
            try:
                info = await client.info("replication")
            except Exception as exc:  # noqa: BLE001 - an unreachable pod has no role
                return node, {"role": None, "error": type(exc).__name__}
            return node, {"role": info.get("role"), "good": info.get("min_slaves_good_slaves", 0),
                          "master_host": info.get("master_host"), "link": info.get("master_link_status")}

        while not self.stopped:
            t = time.monotonic()
            roles = dict(await asyncio.gather(*(role(n, c) for n, c in nodes.items())))
            primaries = sorted(n for n, r in roles.items() if r["role"] == "master")
            accepting = [n for n in primaries if roles[n]["good"] >= self.args.min_replicas]
            if len(accepting) > 1:
                self.split_brain.append({"t": t, "primaries": accepting})
            if len(primaries) > 1:  # even if min-replicas keeps one of them from taking writes
                self.two_primaries.append({"t": t, "primaries": primaries})
            self.roles, self.roles_t = roles, t
            await asyncio.sleep(0.1)
        for c in nodes.values():
            await c.aclose()

    async def verify(self) -> dict[str, Any]:
        self.writing.clear()
        await asyncio.wait_for(self.idle.wait(), 10)
        sentinels = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in self.args.sentinels.split(",")]
        sentinel = Sentinel(sentinels, sentinel_kwargs={"password": self.args.password, "socket_timeout": 1},
                            password=self.args.password, socket_timeout=2, decode_responses=True)
        primary = sentinel.master_for("mymaster")
        keys: list[str] = []
        async for key in primary.scan_iter(match="drill:*", count=1000):
            keys.append(key)
        await primary.aclose()
        present = sorted(int(k.split(":")[1]) for k in keys)
        return {"present": present, "acks": self.acks}

    async def commands(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                self.stopped = True
                return
            cmd = json.loads(line)["cmd"]
            if cmd == "status":
                reply = {"acks": len(self.acks), "last_ack": self.acks[-1] if self.acks else None,
                         "errors": dict(self.errors), "last_errors": self.last_errors, "roles": self.roles,
                         "roles_t": self.roles_t,
                         "split_brain": self.split_brain[:20], "two_primaries": self.two_primaries[:20],
                         "now": time.monotonic()}
            elif cmd == "verify":
                try:
                    reply = await self.verify()
                except Exception as exc:  # noqa: BLE001 - reported to the test, which fails with it
                    reply = {"error": f"{type(exc).__name__}: {exc}"}
            elif cmd == "resume":
                self.writing.set()
                reply = {"ok": True}
            else:
                self.stopped = True
                reply = {"ok": True}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
            if self.stopped:
                return


async def main(args: argparse.Namespace) -> None:
    drill = Drill(args)
    tasks = [asyncio.create_task(drill.writer()), asyncio.create_task(drill.watcher())]
    await drill.commands()
    drill.writing.set()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentinels", required=True, help="host:port,... (the agent's AGENT_REDIS_SENTINEL_HOSTS)")
    ap.add_argument("--nodes", required=True, help="data pod hostnames, comma-separated")
    ap.add_argument("--password", required=True)
    ap.add_argument("--min-replicas", type=int, required=True)
    asyncio.run(main(ap.parse_args()))
