"""A real Kubernetes control plane for the engine tier: etcd + kube-apiserver, started by the test.

Like controller-runtime's envtest: the binaries `make engine` built (found by `engine_binary`), no
kubelet, every server on loopback and stopped by its own pid. The API server runs with the RBAC
authorizer and its default admission chain (Pod Security among it); the test talks to it as an
admin through a static token, and as any ServiceAccount through impersonation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "engine-tier-admin-token"  # a test-only credential of a throwaway server


def engine_binary(name: str) -> Path:
    """The built engine `name`: $RAG_ENGINE_DIR/bin/<name>, else the build's default cache."""
    sys.path.insert(0, str(ROOT))
    from infra.versions import ENGINES

    engine = next(e for e in ENGINES if e.binary == name)
    root = Path(os.environ.get("RAG_ENGINE_DIR") or Path.home() / ".cache" / "rag-platform" / "engine")
    path = root / f"{engine.name}-{engine.version}" / engine.binary
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not built; run `make engine` (or `python tools/engine/build.py "
                                f"--only {engine.name}`)")
    return path


@dataclass
class Cluster:
    url: str
    client: httpx.Client

    def can(self, user: str, groups: list[str], verb: str, resource: str, namespace: str = "",
            group: str = "", subresource: str = "", name: str = "") -> bool:
        """The authorizer's answer (a SubjectAccessReview), not what we think the RBAC says."""
        attrs = {"verb": verb, "resource": resource, "group": group, "namespace": namespace,
                 "subresource": subresource, "name": name}
        res = self.client.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json={
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": groups, "resourceAttributes": {k: v for k, v in attrs.items() if v}}})
        res.raise_for_status()
        return bool(res.json()["status"].get("allowed"))

    def rules(self, service_account: tuple[str, str], namespace: str) -> list[dict[str, Any]]:
        """What `kubectl auth can-i --list --as=system:serviceaccount:<ns>:<sa> -n <namespace>` lists."""
        ns, sa = service_account
        res = self.client.post(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            headers={"Impersonate-User": f"system:serviceaccount:{ns}:{sa}"},
            json={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                  "spec": {"namespace": namespace}})
        res.raise_for_status()
        return res.json()["status"]["resourceRules"]


def _wait(check, what: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def control_plane(workdir: Path) -> Iterator[Cluster]:
    workdir.mkdir(parents=True, exist_ok=True)
    etcd_client, etcd_peer, api_port = free_port(), free_port(), free_port()
    etcd_log, api_log = workdir / "etcd.log", workdir / "kube-apiserver.log"
    etcd = subprocess.Popen(
        [str(engine_binary("etcd")), "--data-dir", str(workdir / "etcd"),
         "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
         "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
         "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
         "--initial-cluster", f"default=http://127.0.0.1:{etcd_peer}", "--unsafe-no-fsync"],
        stdout=etcd_log.open("w"), stderr=subprocess.STDOUT)
    api = None
    try:
        _wait(lambda: httpx.get(f"http://127.0.0.1:{etcd_client}/health", timeout=2).status_code == 200,
              "etcd", etcd, etcd_log, 60)
        key = workdir / "sa.key"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        (workdir / "tokens.csv").write_text(f'{ADMIN_TOKEN},engine-admin,engine-admin,"system:masters"\n')
        api = subprocess.Popen(
            [str(engine_binary("kube-apiserver")), "--etcd-servers", f"http://127.0.0.1:{etcd_client}",
             "--bind-address", "127.0.0.1", "--secure-port", str(api_port), "--cert-dir", str(workdir / "certs"),
             "--authorization-mode", "Node,RBAC", "--token-auth-file", str(workdir / "tokens.csv"),
             "--service-account-issuer", "https://kubernetes.default.svc",
             "--service-account-key-file", str(key), "--service-account-signing-key-file", str(key),
             "--service-cluster-ip-range", "10.0.0.0/24", "--allow-privileged=true", "--v=1"],
            stdout=api_log.open("w"), stderr=subprocess.STDOUT)
        url = f"https://127.0.0.1:{api_port}"
        client = httpx.Client(base_url=url, verify=False, timeout=30,
                              headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        # /readyz includes the RBAC bootstrap roles' post-start hook: ready means authorizable.
        _wait(lambda: client.get("/readyz").status_code == 200, "kube-apiserver", api, api_log, 120)
        yield Cluster(url=url, client=client)
    finally:
        if api is not None:
            _stop(api)
        _stop(etcd)


class Discovery:
    """kind -> (REST path prefix, namespaced) from the server's own discovery documents."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self._map: dict[tuple[str, str], tuple[str, str, bool]] = {}
        self.refresh()

    def refresh(self) -> None:
        groups = [("", "v1", "/api/v1")]
        for g in self.client.get("/apis").json()["groups"]:
            for v in g["versions"]:
                groups.append((g["name"], v["version"], f"/apis/{v['groupVersion']}"))
        for group, version, prefix in groups:
            res = self.client.get(prefix)
            if res.status_code != 200:
                continue
            api_version = f"{group}/{version}" if group else version
            for r in res.json()["resources"]:
                if "/" not in r["name"]:
                    self._map[(api_version, r["kind"])] = (prefix, r["name"], r["namespaced"])

    def path(self, obj: dict[str, Any]) -> str:
        key = (obj["apiVersion"], obj["kind"])
        if key not in self._map:
            raise KeyError(f"{obj['apiVersion']} {obj['kind']}: the server serves no such kind")
        prefix, plural, namespaced = self._map[key]
        name = obj["metadata"]["name"]
        if namespaced:
            ns = obj["metadata"].get("namespace", "default")
            return f"{prefix}/namespaces/{ns}/{plural}/{name}"
        return f"{prefix}/{plural}/{name}"


def server_side_apply(client: httpx.Client, discovery: Discovery, obj: dict[str, Any],
                      manager: str = "rag-platform-tests") -> httpx.Response:
    """Apply one object as `kubectl apply --server-side` does; the response is what the server stored."""
    import json

    return client.patch(discovery.path(obj), params={"fieldManager": manager, "force": "true"},
                        content=json.dumps(obj), headers={"Content-Type": "application/apply-patch+yaml"})
