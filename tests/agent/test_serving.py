"""Per-request cost of serving: what `python -m agent serve` sets up, and what a request pays for.

docs/benchmarks.md section 3 measures the effect; these tests pin the causes it found.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from agent.api import create_app

from .conftest import AUTH


def test_no_request_hands_work_to_the_thread_pool_for_its_dependencies(make_settings, encoder, monkeypatch) -> None:
    # FastAPI runs a plain `def` dependency (or endpoint) through anyio's thread pool: one thread
    # hand-off per dependency per request, six per /chat before the getters became `async def`.
    import fastapi.dependencies.utils
    import fastapi.routing

    handed: list[str] = []
    for module in (fastapi.dependencies.utils, fastapi.routing):
        original = module.run_in_threadpool

        async def counting(func, *args, _original=original, **kwargs):
            handed.append(getattr(func, "__qualname__", repr(func)))
            return await _original(func, *args, **kwargs)

        monkeypatch.setattr(module, "run_in_threadpool", counting)
    with TestClient(create_app(make_settings(), encoder=encoder), headers=AUTH) as client:
        chat = client.post("/chat", json={"message": "hello"})
        assert chat.status_code == 200, chat.text
        assert client.get(f"/sessions/{chat.json()['session_id']}").status_code == 200
        assert client.post("/retrieve", json={"query": "rollout", "top_k": 3}).status_code == 200
        assert client.get("/tools").status_code == 200
        assert client.get("/readyz").status_code == 200
    assert handed == [], f"run in the thread pool per request: {handed}"


# `python -m agent serve` exactly as the entry point runs it (runpy, same argv), except that
# uvicorn's Server.run, where the lifespan would load the model and open the stores, only imports
# torch: libgomp reads its environment when torch loads it, and nothing heavier is needed to see
# what it read.
_SERVE_UNTIL_UVICORN = """
import runpy, sys
import uvicorn

def run(self, *args, **kwargs):
    import torch  # noqa: F401 - already loaded by the app's imports, or loaded here

uvicorn.Server.run = run
sys.argv = ["agent", "serve", "--host", "127.0.0.1", "--port", "0"]
runpy.run_module("agent", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(("given", "policy", "spins"), [
    (None, "PASSIVE", "0"),            # unset: serve's default, idle workers sleep at once
    ("ACTIVE", "ACTIVE", "30000000000"),  # an operator's explicit choice wins
])
def test_serve_sets_the_openmp_wait_policy_before_torch_loads(tmp_path, given, policy, spins) -> None:
    # libgomp prints what it took at load with OMP_DISPLAY_ENV=VERBOSE. Its OMP_WAIT_POLICY line says
    # 'PASSIVE' for an unset policy too, so the proof is GOMP_SPINCOUNT: 0 only when PASSIVE was
    # really set before torch loaded (unset, libgomp spins 300000 times before sleeping).
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AGENT_") and k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update({"AGENT_DATA_DIR": str(tmp_path / "data"), "OMP_DISPLAY_ENV": "VERBOSE", "HF_HUB_OFFLINE": "1"})
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    done = subprocess.run([sys.executable, "-c", _SERVE_UNTIL_UVICORN], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "OPENMP DISPLAY ENVIRONMENT BEGIN" in out, f"libgomp never loaded (torch not imported?): {out[-3000:]}"
    took = dict(re.findall(r"^\s*(OMP_WAIT_POLICY|GOMP_SPINCOUNT) = '([^']*)'", out, re.MULTILINE))
    assert took == {"OMP_WAIT_POLICY": policy, "GOMP_SPINCOUNT": spins}, out[-3000:]
