"""A Kubernetes namespace simulated closely enough to run the rendered Redis StatefulSets for real.

Each pod is a network namespace on a private bridge (its own address, its own 127.0.0.1, ports as
in the manifest) and a mount + UTS namespace: hostname = pod name, an /etc/hosts with every live
pod's FQDN (publishNotReadyAddresses), and a read-only root made of the host's /usr with the pod's
volumes bound at their mountPaths. The container command from the manifest runs there, with the
env Kubernetes would give it, as the pod's uid/gid (fsGroup as a supplementary group), under the
host's /bin/sh (dash on Debian, as in the official image). Probes run the manifest's exec command
inside the same namespaces, as Kubernetes does, and a kubelet thread restarts an exited container in
the same pod with the kubelet's back-off (restartPolicy Always).

A pod that is deleted loses its address and DNS name; the one that replaces it gets a new address,
fresh emptyDirs and the same PVC. Nothing touches the host's network or filesystem outside the run's
work directory: the bridge lives in a namespace of its own, and every namespace is named
`rgd-<pid>-<token>-...` so concurrent runs never collide; `cleanup` removes them, and a later run
removes what a killed run left behind.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "rgd"
SUBNET = "10.77.0"
# PATH of the official redis image (docker-library/redis Dockerfile); HOME as the runtime sets it for a uid
# without a passwd entry.
IMAGE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/"}
ETC_FILES = ("nsswitch.conf", "ld.so.cache", "passwd", "group", "localtime")


class DrillError(RuntimeError):
    """The simulated cluster could not be set up (missing tool, no privileges)."""


def _run(*cmd: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise DrillError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def require_tools() -> None:
    missing = [t for t in ("ip", "unshare", "nsenter", "chroot", "redis-server", "redis-sentinel", "redis-cli")
               if shutil.which(t) is None]
    if missing:
        raise DrillError(f"the failover drill needs {', '.join(missing)} (apt-get install iproute2 util-linux "
                         "redis-server redis-sentinel; `make test` installs the Redis packages)")
    if os.geteuid() != 0:
        raise DrillError("the failover drill creates network and mount namespaces: run it as root")


def remove_stale_namespaces() -> None:
    """Namespaces of drill runs whose process is gone (a killed pytest leaves them behind)."""
    out = _run("ip", "netns", "list", check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(rf"{PREFIX}-(\d+)-.*", name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            _run("ip", "netns", "del", name, check=False)


def expand_k8s(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of command and args: defined names replaced, $$ escapes, rest verbatim."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        m = re.match(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", text[i:])
        if m and m.group(1) in env:
            out.append(env[m.group(1)])
            i += m.end()
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


@dataclass
class Pod:
    """One pod of a StatefulSet, across its incarnations (each start is a new pod object)."""

    name: str
    statefulset: dict[str, Any]
    namespace: str
    index: int
    netns: str
    dir: Path
    ip: str | None = None
    process: subprocess.Popen | None = None
    incarnation: int = 0
    restarts: int = 0  # container restarts by the kubelet in this incarnation
    restart_at: float | None = None
    password_override: str | None = None
    link_up: bool = True
    logs: list[Path] = field(default_factory=list)

    @property
    def spec(self) -> dict[str, Any]:
        return self.statefulset["spec"]["template"]["spec"]

    @property
    def container(self) -> dict[str, Any]:
        return self.spec["containers"][0]

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.statefulset['spec']['serviceName']}.{self.namespace}.svc.cluster.local"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def env(self) -> dict[str, str]:
        env = dict(IMAGE_ENV, HOSTNAME=self.name)
        for item in self.container.get("env", []):
            if "value" in item:
                env[item["name"]] = expand_k8s(item["value"], env)
                continue
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            env[item["name"]] = {"metadata.name": self.name, "metadata.namespace": self.namespace}[path]
        return env

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())


class Cluster:
    """The StatefulSets of a rendered manifest list, as pods on a private network."""

    def __init__(self, manifests: list[dict[str, Any]], namespace: str, password: str, workdir: Path) -> None:
        require_tools()
        remove_stale_namespaces()
        self.namespace = namespace
        self.password = password
        self.workdir = workdir
        self.token = f"{PREFIX}-{os.getpid()}-{secrets.token_hex(3)}"
        self.configmaps = {m["metadata"]["name"]: m["data"] for m in manifests if m["kind"] == "ConfigMap"}
        self.switch = f"{self.token}-sw"
        self.client_ns = f"{self.token}-client"
        self.client_ip = f"{SUBNET}.2"
        self._next_ip = 10
        self.namespaces: list[str] = []
        self.pods: dict[str, Pod] = {}
        for sts in (m for m in manifests if m["kind"] == "StatefulSet"):
            for i in range(sts["spec"]["replicas"]):
                name = f"{sts['metadata']['name']}-{i}"
                self.pods[name] = Pod(name, sts, namespace, len(self.pods), f"{self.token}-{len(self.pods)}",
                                      workdir / name)
        self.hosts_files: list[Path] = []
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._setup_network()
        self._kubelet_thread = threading.Thread(target=self._kubelet, name="drill-kubelet", daemon=True)
        self._kubelet_thread.start()

    # ------------------------------------------------------------------ network and DNS

    def _add_netns(self, name: str) -> None:
        _run("ip", "netns", "add", name)
        self.namespaces.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")

    def _plug(self, netns: str, port: str, ip: str | None = None) -> None:
        """A veth pair: `port` on the switch's bridge, eth0 in `netns` (with `ip`, or none yet)."""
        _run("ip", "-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", netns)
        _run("ip", "-n", self.switch, "link", "set", port, "master", "br0", "up")
        if ip:
            _run("ip", "-n", netns, "addr", "add", f"{ip}/24", "dev", "eth0")
        _run("ip", "-n", netns, "link", "set", "eth0", "up")

    def _setup_network(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._add_netns(self.switch)
        _run("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", self.switch, "link", "set", "br0", "up")
        self._add_netns(self.client_ns)
        self._plug(self.client_ns, "client", self.client_ip)
        for pod in self.pods.values():
            pod.dir.mkdir(parents=True, exist_ok=True)
            self._add_netns(pod.netns)
            self._plug(pod.netns, f"p{pod.index}")
        (self.workdir / "nsswitch.conf").write_text("hosts: files\npasswd: files\ngroup: files\n")
        self.client_hosts = self.workdir / "client-hosts"
        self.hosts_files.append(self.client_hosts)
        self._write_hosts()

    def _write_hosts(self) -> None:
        """Every live pod's FQDN (kubelet + cluster DNS with publishNotReadyAddresses). Written in place:
        the files are bind-mounted, and glibc re-reads /etc/hosts on every lookup."""
        live = [p for p in self.pods.values() if p.ip is not None]
        base = "127.0.0.1\tlocalhost\n" + "".join(f"{p.ip}\t{p.fqdn}\n" for p in live)
        for path in self.hosts_files:
            with open(path, "a+") as f:
                f.seek(0)
                f.truncate()
                f.write(base)
        for p in live:
            path = p.dir / "hosts"
            with open(path, "a+") as f:
                f.seek(0)
                f.truncate()
                f.write(base + f"{p.ip}\t{p.fqdn}\t{p.name}\n")

    def set_link(self, pod: Pod, up: bool) -> None:
        """Cut or restore a pod's network link (its packets are dropped, not refused)."""
        _run("ip", "-n", self.switch, "link", "set", f"p{pod.index}", "up" if up else "down")
        pod.link_up = up

    # ------------------------------------------------------------------ pods

    def _volume_dirs(self, pod: Pod, run: Path) -> list[tuple[str, Path, bool]]:
        """(mountPath, host dir, read-only) for every volumeMount, prepared as the kubelet would."""
        fs_group = pod.spec["securityContext"]["fsGroup"]
        volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in pod.statefulset["spec"].get("volumeClaimTemplates", [])}
        mounts = []
        for mount in pod.container["volumeMounts"]:
            name, ro = mount["name"], bool(mount.get("readOnly"))
            if name in claims:  # the pod's PVC: survives pod deletion
                path, mode = pod.dir / f"pvc-{name}", 0o2775
            elif "emptyDir" in volumes[name]:
                path, mode = run / f"empty-{name}", 0o2777
            elif "configMap" in volumes[name]:
                path, mode = run / f"cm-{name}", 0o755
                path.mkdir(parents=True, exist_ok=True)
                for key, value in self.configmaps[volumes[name]["configMap"]["name"]].items():
                    (path / key).write_text(value)
                    (path / key).chmod(0o644)
            elif "secret" in volumes[name]:
                # The kubelet makes secret files group-owned by fsGroup and adds group read (0400 -> 0440).
                path, mode = run / f"secret-{name}", 0o755
                path.mkdir(parents=True, exist_ok=True)
                secret = path / "password"
                secret.write_text(pod.password_override or self.password)
                os.chown(secret, 0, fs_group)
                secret.chmod(volumes[name]["secret"].get("defaultMode", 0o644) | 0o440)
            else:
                raise DrillError(f"{pod.name}: volume {name} of an unsupported kind: {volumes[name]}")
            path.mkdir(parents=True, exist_ok=True)
            if name in claims or "emptyDir" in volumes[name]:
                os.chown(path, 0, fs_group)
                path.chmod(mode)
            mounts.append((mount["mountPath"], path, ro))
        return mounts

    def _setup_script(self, pod: Pod, run: Path) -> str:
        uid = pod.container["securityContext"].get("runAsUser", pod.spec["securityContext"]["runAsUser"])
        gid = pod.container["securityContext"].get("runAsGroup", pod.spec["securityContext"]["runAsGroup"])
        fs_group = pod.spec["securityContext"]["fsGroup"]
        root = run / "root"
        root.mkdir(exist_ok=True)
        q = shlex.quote
        lines = ["set -e", f"R={q(str(root))}",
                 'mount -t tmpfs -o mode=0755 rootfs "$R"',
                 'mkdir -p "$R/usr" "$R/etc/alternatives" "$R/dev" "$R/proc"',
                 'for l in bin sbin lib lib64; do [ -e "/$l" ] && ln -s "usr/$l" "$R/$l"; done',
                 'mount --rbind /usr "$R/usr"', 'mount -o remount,bind,ro "$R/usr"',
                 'mount --rbind /dev "$R/dev"', 'mount -t proc proc "$R/proc"',
                 'mount --bind /etc/alternatives "$R/etc/alternatives"',
                 f'touch "$R/etc/hosts"; mount --bind {q(str(pod.dir / "hosts"))} "$R/etc/hosts"']
        for name in ETC_FILES:
            src = self.workdir / name if name == "nsswitch.conf" else Path("/etc") / name
            if src.exists():
                lines.append(f'touch "$R/etc/{name}"; mount --bind {q(str(src))} "$R/etc/{name}"')
        for mount_path, path, ro in self._volume_dirs(pod, run):
            lines += [f'mkdir -p "$R"{q(mount_path)}', f'mount --bind {q(str(path))} "$R"{q(mount_path)}']
            if ro:
                lines.append(f'mount -o remount,bind,ro "$R"{q(mount_path)}')
        env = pod.env()
        # readOnlyRootFilesystem: only the volumes are writable.
        lines += ['mount -o remount,ro "$R"', f"hostname {q(pod.name)}",
                  f'exec chroot --userspec={uid}:{gid} --groups={fs_group} "$R" /usr/bin/env -i '
                  + " ".join(q(f"{k}={v}") for k, v in env.items()) + ' "$@"']
        return "\n".join(lines) + "\n"

    def start(self, pod: Pod) -> None:
        """Create the pod (a new incarnation: new address, fresh emptyDirs, same PVC) and run its container."""
        with self.lock:
            if pod.alive:
                raise DrillError(f"{pod.name} is already running")
            pod.incarnation += 1
            pod.restarts = 0
            pod.restart_at = None
            (pod.dir / f"run-{pod.incarnation}").mkdir()
            pod.ip = f"{SUBNET}.{self._next_ip}"
            self._next_ip += 1
            _run("ip", "-n", pod.netns, "addr", "flush", "dev", "eth0")
            _run("ip", "-n", pod.netns, "addr", "add", f"{pod.ip}/24", "dev", "eth0")
            self._write_hosts()
            self._run_container(pod)

    def _run_container(self, pod: Pod) -> None:
        run = pod.dir / f"run-{pod.incarnation}"
        setup = run / "setup.sh"
        setup.write_text(self._setup_script(pod, run))
        env = pod.env()
        command = [expand_k8s(arg, env) for arg in pod.container["command"] + pod.container.get("args", [])]
        log = run / f"container-{pod.restarts}.log"
        pod.logs.append(log)
        with open(log, "wb") as out:
            pod.process = subprocess.Popen(
                ["ip", "netns", "exec", pod.netns, "unshare", "--mount", "--uts", "--propagation", "private",
                 "--", "/bin/sh", str(setup), *command],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def _kubelet(self) -> None:
        """restartPolicy Always: an exited container is restarted in the same pod (same address and
        emptyDirs) after the kubelet's back-off, 10 s doubling up to 300 s."""
        while not self._stop.wait(0.2):
            with self.lock:
                for pod in self.pods.values():
                    if pod.process is None or pod.process.poll() is None:
                        continue
                    now = time.monotonic()
                    if pod.restart_at is None:
                        pod.restart_at = now + min(10 * 2 ** pod.restarts, 300)
                    elif now >= pod.restart_at:
                        pod.restarts += 1
                        pod.restart_at = None
                        self._run_container(pod)

    def delete(self, pod: Pod) -> None:
        """Kill the pod at once (SIGKILL, like a lost node) and remove its address and DNS name."""
        with self.lock:
            if pod.process is not None:
                if pod.process.poll() is None:
                    os.killpg(pod.process.pid, signal.SIGKILL)
                pod.process.wait(timeout=10)
            pod.process = None
            pod.restart_at = None
            pod.ip = None
            _run("ip", "-n", pod.netns, "addr", "flush", "dev", "eth0")
            self._write_hosts()

    def probe(self, pod: Pod, kind: str) -> tuple[bool, str]:
        """Run the container's exec probe (`readinessProbe`, `livenessProbe`, ...) inside the pod."""
        spec = pod.container[kind]
        code, out = self.exec(pod, spec["exec"]["command"], timeout=spec.get("timeoutSeconds", 1) + 2)
        return code == 0, out

    def exec(self, pod: Pod, command: list[str], timeout: float = 10) -> tuple[int, str]:
        """`kubectl exec`: run a command in the pod's namespaces, as its user, with its env."""
        if not pod.alive:
            return -1, "not running"
        uid = pod.container["securityContext"]["runAsUser"]
        gid = pod.container["securityContext"]["runAsGroup"]
        env = [f"{k}={v}" for k, v in pod.env().items()]
        try:
            proc = subprocess.run(
                ["nsenter", "--target", str(pod.process.pid), "--mount", "--uts", "--net", "--root", "--wd",
                 "-S", str(uid), "-G", str(gid), "--", "/usr/bin/env", "-i", *env, *command],
                capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return -1, "timed out"
        return proc.returncode, (proc.stdout + proc.stderr).strip()

    def ready(self, pod: Pod) -> bool:
        return self.probe(pod, "readinessProbe")[0]

    # ------------------------------------------------------------------ client side

    def client_command(self, argv: list[str]) -> list[str]:
        """Run argv in the client's network namespace with the cluster's /etc/hosts."""
        q = shlex.quote
        inner = (f"mount --bind {q(str(self.client_hosts))} /etc/hosts && "
                 f"mount --bind {q(str(self.workdir / 'nsswitch.conf'))} /etc/nsswitch.conf && exec \"$@\"")
        return ["ip", "netns", "exec", self.client_ns, "unshare", "--mount", "--propagation", "private", "--",
                "/bin/sh", "-c", inner, "sh", *argv]

    # ------------------------------------------------------------------ teardown

    def cleanup(self) -> None:
        self._stop.set()
        self._kubelet_thread.join(timeout=5)
        for pod in self.pods.values():
            if pod.process is not None and pod.process.poll() is None:
                try:
                    os.killpg(pod.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                pod.process.wait(timeout=10)
        for name in reversed(self.namespaces):
            _run("ip", "netns", "del", name, check=False)
        self.namespaces.clear()


def wait_until(condition, timeout: float, what: str, interval: float = 0.25):
    """Poll `condition` until it returns a truthy value; bounded in time and count."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")
