"""The pull-request pipeline: rendered, hardened, and every step script run here for real.

Scripts run with the env Tekton would give them (tests/infra/workspace.py); git, make, the preview
and the policy checker are the real ones; the GitHub API is a stub HTTPS server on 127.0.0.1 that
records what it is asked (the one mock: an external HTTP API).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infra.components import review
from infra.preview.diff import COMMENT_MARKER

from .workspace import REPO, copy_worktree, git, run_step

SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "ghp_TEST_TOKEN_never_printed"


def steps_of(stack, task: str) -> list[dict]:
    return stack.one("Task", task)["spec"]["steps"]


# ---------------------------------------------------------------- rendered objects

def test_pull_request_trigger_pipeline_and_identity_render_in_dev_only(stacks):
    dev = stacks["dev"]
    trigger = dev.one("Trigger", "github-pull-request")
    assert trigger["metadata"]["labels"]["rag-platform/listener"] == "github-listener"
    github, cel = trigger["spec"]["interceptors"]
    assert github["ref"] == {"name": "github", "kind": "ClusterInterceptor"}
    assert {p["name"]: p["value"] for p in github["params"]} == {
        "secretRef": {"secretName": "github-webhook-secret", "secretKey": "secretToken"},
        "eventTypes": ["pull_request"]}
    assert cel["params"][0]["value"] == (
        "body.action in ['opened', 'synchronize', 'reopened'] && body.pull_request.base.ref == 'main' && "
        "body.pull_request.head.repo.full_name == body.repository.full_name")
    pipeline = dev.one("Pipeline", "pull-request-preview")["spec"]
    assert [t["name"] for t in pipeline["tasks"]] == ["fetch", "preview", "policy-check", "report"]
    assert pipeline["finally"][0]["when"] == [{"input": "$(tasks.status)", "operator": "in", "values": ["Failed"]}]
    for other in ("local", "staging", "prod"):
        assert not [m for m in stacks[other].objects("Trigger")], other


def test_least_privilege_and_the_release_pipelines_hardening(stacks):
    dev = stacks["dev"]
    assert dev.one("ServiceAccount", "review-runner")["automountServiceAccountToken"] is False
    bound = [m for m in dev.manifests if m["kind"] in ("RoleBinding", "ClusterRoleBinding")
             and any(s.get("name") == "review-runner" for s in m.get("subjects", []))]
    assert bound == []  # no Kubernetes API rights at all
    run = dev.one("TriggerTemplate", "pull-request-preview")["spec"]["resourcetemplates"][0]["spec"]
    template = run["taskRunTemplate"]
    assert template["serviceAccountName"] == "review-runner"
    assert template["podTemplate"]["automountServiceAccountToken"] is False
    assert template["podTemplate"]["securityContext"]["runAsNonRoot"] is True
    token = {w["name"]: w for w in run["workspaces"]}["github-token"]["secret"]
    assert token == {"secretName": "github-review-token", "defaultMode": 0o400,
                     "items": [{"key": "token", "path": "token"}]}
    assert dev.one("Secret", "github-review-token")["stringData"] == {"token": "[secret]"}
    release_step = dev.one("Task", "unit-tests")["spec"]["steps"][0]["securityContext"]
    tokens_mounted = []
    for name in ("review-fetch", "review-preview", "review-policy-check", "review-report"):
        task = dev.one("Task", name)["spec"]
        for step in task["steps"]:
            sc = step["securityContext"]
            for key in ("allowPrivilegeEscalation", "runAsNonRoot", "capabilities", "seccompProfile", "runAsUser"):
                assert sc[key] == release_step[key], (name, key)
        if any(w["name"] == "github-token" for w in task.get("workspaces", [])):
            tokens_mounted.append(name)
    assert tokens_mounted == ["review-report"]  # the head's code never runs where the token is


# ---------------------------------------------------------------- fetch

@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> tuple[Path, str, str]:
    """A git repository standing in for GitHub: the base commit and the PR's head commit."""
    root = copy_worktree(tmp_path_factory.mktemp("origin") / "repo")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    base = git(root, "rev-parse", "HEAD").strip()
    # The PR drops a reasoned exemption: kaniko's build step now violates a mandatory policy in dev.
    policy = root / "stacks" / "policy" / "dev.json"
    doc = json.loads(policy.read_text())
    doc["require-run-as-non-root"]["exemptions"] = [e for e in doc["require-run-as-non-root"]["exemptions"]
                                                    if e["name"] != "build-push"]
    policy.write_text(json.dumps(doc, indent=2))
    git(root, "commit", "-qam", "dev: drop the kaniko exemption")
    return root, base, git(root, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def fetched(stacks, origin, tmp_path_factory) -> Path:
    root, base, head = origin
    source = tmp_path_factory.mktemp("workspace")
    proc = run_step(steps_of(stacks["dev"], "review-fetch")[0], workspaces={"source": source},
                    params={"repo-url": str(root), "base-sha": base, "head-sha": head},
                    env={"HOME": str(source)})
    assert proc.returncode == 0, proc.stderr
    assert git(source / "base", "rev-parse", "HEAD").strip() == base
    assert git(source / "head", "rev-parse", "HEAD").strip() == head
    for side in ("base", "head"):  # the copies' old mtimes survive no checkout; reuse REPO's venv
        subprocess.run(["find", str(source / side), "-exec", "touch", "-h", "-d", "2001-01-01", "{}", "+"], check=True)
    return source


def test_fetch_refuses_what_is_not_a_commit_sha(stacks, origin, tmp_path):
    root, base, _ = origin
    for hostile in ("main", "$(touch pwned)", base[:39] + "g", base + "0"):
        proc = run_step(steps_of(stacks["dev"], "review-fetch")[0], workspaces={"source": tmp_path},
                        params={"repo-url": str(root), "base-sha": base, "head-sha": hostile},
                        env={"HOME": str(tmp_path)})
        assert proc.returncode == 2 and "commit SHA" in proc.stderr, hostile
    assert not (tmp_path / "base").exists() and not list(tmp_path.rglob("pwned"))


# ---------------------------------------------------------------- preview and policy check

@pytest.fixture(scope="module")
def previewed(stacks, fetched, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    results = tmp_path_factory.mktemp("results")
    paths = {"preview-exit": results / "preview-exit", "policy-exit": results / "policy-exit"}
    env = {"HOME": str(fetched), "VENV": str(REPO / ".venv")}
    proc = run_step(steps_of(stacks["dev"], "review-preview")[0], workspaces={"source": fetched},
                    results={"preview-exit": paths["preview-exit"]}, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    proc = run_step(steps_of(stacks["dev"], "review-policy-check")[0], workspaces={"source": fetched},
                    results={"policy-exit": paths["policy-exit"]}, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return fetched, {k: p.read_text() for k, p in paths.items()}


def test_preview_and_policy_steps_report_the_heads_violation(previewed):
    source, codes = previewed
    assert codes == {"preview-exit": "1", "policy-exit": "1"}  # a mandatory violation, not an error
    out = source / "head" / "build" / "preview"
    diff = json.loads((out / "diff.json").read_text())
    dev = diff["stacks"]["dev"]
    assert [(v["policy"], v["resource"]["name"]) for v in dev["policy"]["appeared"]] == [
        ("require-run-as-non-root", "build-push")]
    assert [(v["policy"], v["resource"]["name"]) for v in dev["policy"]["exemptionsDisappeared"]] == [
        ("require-run-as-non-root", "build-push")]
    assert dev["resources"] == {"added": [], "removed": [], "changed": []}
    summary = (out / "summary.md").read_text()
    assert summary.startswith(COMMENT_MARKER) and "New policy violations" in summary


# ---------------------------------------------------------------- report (GitHub API stub over TLS)

class GitHubStub:
    """Records every request; answers the comment list from `comments` (pages of 100)."""

    def __init__(self, tmp: Path, comments: list[dict] | None = None, fail_with: int | None = None) -> None:
        self.requests: list[dict] = []
        self.comments = comments or []
        self.fail_with = fail_with
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
        self.ca = cert
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                stub.requests.append({"method": self.command, "path": self.path, "body": body,
                                      "auth": self.headers.get("Authorization")})
                if stub.fail_with:
                    self.send_response(stub.fail_with)
                    self.end_headers()
                    self.wfile.write(b'{"message": "Server Error"}')
                    return
                answer: object = {"id": 1}
                if self.command == "GET" and "/comments?" in self.path:
                    page = int(self.path.rsplit("page=", 1)[1])
                    answer = stub.comments[(page - 1) * 100: page * 100]
                data = json.dumps(answer).encode()
                self.send_response(201 if self.command == "POST" else 200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _handle

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> GitHubStub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def run_report(stacks, tmp_path: Path, stub: GitHubStub, *, summary: str | None, preview: str | None = "0",
               policy: str | None = "0", repository: str = "acme/rag-platform", pr: str = "42"):
    source = tmp_path / "source"
    out = source / "head" / "build" / "preview"
    out.mkdir(parents=True, exist_ok=True)
    if summary is not None:
        (out / "summary.md").write_text(summary)
    token_dir = tmp_path / "token"
    token_dir.mkdir(exist_ok=True)
    (token_dir / "token").write_text(TOKEN + "\n")
    step = steps_of(stacks["dev"], "review-report")[0]
    params = {"repository": repository, "pr-number": pr, "head-sha": SHA}
    if preview is not None:
        params |= {"preview-exit": preview, "policy-exit": policy}
    else:  # the `finally` task leaves both to their defaults
        defaults = {p["name"]: p["default"] for p in stacks["dev"].one("Task", "review-report")["spec"]["params"]
                    if "default" in p}
        params |= defaults
    return run_step(step, params=params, workspaces={"source": source, "github-token": token_dir},
                    env={"GITHUB_API_URL": stub.url, "SSL_CERT_FILE": str(stub.ca), "HOME": str(tmp_path)}, timeout=60)


def test_report_comments_and_sets_a_success_status(stacks, tmp_path):
    with GitHubStub(tmp_path) as gh:
        proc = run_report(stacks, tmp_path, gh, summary=f"{COMMENT_MARKER}\n### Stack preview\nno change\n")
    assert proc.returncode == 0, proc.stderr
    calls = [(r["method"], r["path"]) for r in gh.requests]
    assert calls == [("GET", "/repos/acme/rag-platform/issues/42/comments?per_page=100&page=1"),
                     ("POST", "/repos/acme/rag-platform/issues/42/comments"),
                     ("POST", f"/repos/acme/rag-platform/statuses/{SHA}")]
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in gh.requests)
    assert gh.requests[1]["body"]["body"].startswith(COMMENT_MARKER) and "no change" in gh.requests[1]["body"]["body"]
    assert gh.requests[2]["body"] == {"state": "success", "context": "rag-platform/preview",
                                      "description": "no mandatory policy violation"}
    assert TOKEN not in proc.stdout + proc.stderr


def test_report_updates_its_earlier_comment_on_a_later_page(stacks, tmp_path):
    comments = [{"id": i, "body": f"review comment {i}"} for i in range(100)]
    comments.append({"id": 777, "body": f"{COMMENT_MARKER}\nold preview"})
    with GitHubStub(tmp_path, comments=comments) as gh:
        proc = run_report(stacks, tmp_path, gh, summary=f"{COMMENT_MARKER}\nnew preview\n", preview="1", policy="1")
    assert proc.returncode == 0, proc.stderr
    calls = [(r["method"], r["path"]) for r in gh.requests]
    assert calls[:3] == [("GET", "/repos/acme/rag-platform/issues/42/comments?per_page=100&page=1"),
                         ("GET", "/repos/acme/rag-platform/issues/42/comments?per_page=100&page=2"),
                         ("PATCH", "/repos/acme/rag-platform/issues/comments/777")]
    assert gh.requests[2]["body"] == {"body": f"{COMMENT_MARKER}\nnew preview\n"}
    assert gh.requests[3]["body"]["state"] == "failure"


def test_the_finally_task_reports_an_error_without_a_summary(stacks, tmp_path):
    with GitHubStub(tmp_path) as gh:
        proc = run_report(stacks, tmp_path, gh, summary=None, preview=None)
    assert proc.returncode == 0, proc.stderr
    assert [(r["method"], r["body"]["state"]) for r in gh.requests] == [("POST", "error")]


@pytest.mark.parametrize("field,value", [("repository", "acme/rag-platform/../../orgs/acme"),
                                         ("repository", "acme/rag platform"), ("pr", "42; rm -rf /"),
                                         ("pr", "0")])
def test_report_refuses_hostile_event_fields_before_any_request(stacks, tmp_path, field, value):
    with GitHubStub(tmp_path) as gh:
        proc = run_report(stacks, tmp_path, gh, summary="x", **{field: value})
    assert proc.returncode != 0 and "error:" in proc.stderr
    assert gh.requests == []


def test_report_fails_loudly_on_an_api_error_without_leaking_the_token(stacks, tmp_path):
    with GitHubStub(tmp_path, fail_with=502) as gh:
        proc = run_report(stacks, tmp_path, gh, summary="x")
    assert proc.returncode != 0 and "HTTP 502" in proc.stderr
    assert TOKEN not in proc.stdout + proc.stderr and len(gh.requests) == 1


def test_review_needs_cicd_and_the_token():
    from infra.config import ConfigError, parse_stack_config
    from infra.preview import load_stack_file

    raw, secrets = load_stack_file(REPO / "stacks" / "Pulumi.dev.yaml")
    with pytest.raises(ConfigError, match="githubToken"):
        parse_stack_config("dev", {k: v for k, v in raw.items() if k != "rag-platform:githubToken"}, secrets)
    with pytest.raises(ConfigError, match="githubToken.*plaintext"):
        parse_stack_config("dev", raw, secrets - {"rag-platform:githubToken"})
    assert review.PIPELINE == "pull-request-preview"
