"""The pull-request pipeline: preview the base and the head of a PR, diff them, post the result.

A GitHub `pull_request` event (opened, synchronize, reopened) into `cicd.gitRevision` reaches the
release pipeline's EventListener, which picks up this component's `Trigger` by label; the `github`
interceptor checks the webhook secret, a CEL filter the action, branch and (unless `review.allowForks`)
that the PR comes from the repository itself. Then:

fetch (base and head commits) -> preview (base rendered with the head's preview tool, head diffed
against it: summary.md, diff.json) -> policy-check (the standalone checker on the head's manifests)
-> report (summary.md as a PR comment, updated in place on later pushes, and a commit status).
A `finally` task sets an `error` status when any task failed, so a PR never waits on a silent run.

The head's code is untrusted: it runs (make venv, the program under the mock engine) in tasks that
get neither a Kubernetes API token nor the GitHub token. Only the report task mounts the token (a
Secret from the `githubToken` Pulumi secret, as a file), and it runs the image's python3 on nothing
but the summary file. Every step takes its inputs from env vars, never pasted into the script.
"""

from __future__ import annotations

import pulumi

from infra import versions
# TRIGGER_SELECTOR: the release pipeline's EventListener admits Trigger objects carrying this label.
from infra.components.cicd import RUNNER_UID, TRIGGER_SELECTOR, Tekton, step_security
from infra.config import StackConfig
from infra.kube import KubeObject, Manifest, Namespaces, labels, metadata, pod_security_context

PIPELINE = "pull-request-preview"
TRIGGER = "github-pull-request"
RUNNER_SA = "review-runner"
TOKEN_SECRET, TOKEN_KEY = "github-review-token", "token"
ACTIONS = ("opened", "synchronize", "reopened")
PREVIEW_DIR, BASE_PREVIEW_DIR = "build/preview", "build/preview-base"

FETCH_SCRIPT = r"""#!/bin/sh
# Check out the PR's base and head commits side by side: $SOURCE/base and $SOURCE/head.
set -eu
for sha in "$BASE_SHA" "$HEAD_SHA"; do
  case "$sha" in
    *[!0-9a-f]*|"") echo "error: '$sha' is not a commit SHA (40 hex digits)" >&2; exit 2 ;;
  esac
  [ "${#sha}" -eq 40 ] || { echo "error: '$sha' is not a 40-digit commit SHA" >&2; exit 2; }
done
fetch() {
  dir="$SOURCE/$1"
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  git init -q . && git remote add origin "$REPO_URL"
  git fetch -q --depth 1 origin "$2" && git checkout -q FETCH_HEAD
  [ "$(git rev-parse HEAD)" = "$2" ] || { echo "error: $1 is not at $2" >&2; exit 2; }
  echo "$1: $2"
}
fetch base "$BASE_SHA"
fetch head "$HEAD_SHA"
"""

PREVIEW_SCRIPT = r"""#!/bin/sh
# Render the base with the head's preview tool, then the head, diffed against the base.
# Exit 1 (mandatory violation) or 2 (a stack did not render) is the verdict, not a task failure:
# it goes to the report as a result. The task fails only when no summary could be written.
set -eu
cd "$SOURCE/head"
make venv VENV="$VENV"
base=0
"$VENV/bin/python" -m infra.preview.base "$SOURCE/base" "$BASE_PREVIEW_DIR" || base=$?
echo "base preview exited $base"
head=0
"$VENV/bin/python" -m infra.preview --all --out "$PREVIEW_DIR" --diff-against "$BASE_PREVIEW_DIR" || head=$?
[ -s "$PREVIEW_DIR/summary.md" ] || { echo "error: no $PREVIEW_DIR/summary.md (preview exit $head)" >&2; exit 1; }
printf %s "$head" > "$RESULT_PREVIEW_EXIT"
"""

POLICY_SCRIPT = r"""#!/bin/sh
# The standalone checker on the head's rendered manifests, each stack with its exemptions (the
# path `make policy-check` takes). The highest exit code is the verdict: 0, 1 (mandatory), 2 (unreadable).
set -u
cd "$SOURCE/head"
worst=0
for f in stacks/Pulumi.*.yaml; do
  s=${f#stacks/Pulumi.}; s=${s%.yaml}
  echo "== $s"
  code=0
  "$VENV/bin/python" -m policies check "$PREVIEW_DIR/$s/manifests.yaml" --config "stacks/policy/$s.json" || code=$?
  [ "$code" -gt "$worst" ] && worst=$code
done
printf %s "$worst" > "$RESULT_POLICY_EXIT"
"""

REPORT_SCRIPT = r'''#!/usr/bin/env python3
"""Post the preview summary on the pull request (one comment, updated in place) and a commit status."""
import json
import os
import re
import sys
import urllib.error
import urllib.request

MARKER = "<!-- rag-platform:preview-diff -->"
env = os.environ
api, repo, pr, sha = env["GITHUB_API_URL"].rstrip("/"), env["REPOSITORY"], env["PR_NUMBER"], env["HEAD_SHA"]
if not re.fullmatch(r"https://[^\s/]+(/[^\s]*)?", api):
    sys.exit(f"error: GITHUB_API_URL {api!r} is not an https URL")
if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo) or ".." in repo:
    sys.exit(f"error: repository {repo!r} is not owner/name")
if not re.fullmatch(r"[1-9][0-9]{0,9}", pr):
    sys.exit(f"error: pull request number {pr!r} is not a number")
if not re.fullmatch(r"[0-9a-f]{40}", sha):
    sys.exit(f"error: head SHA {sha!r} is not 40 hex digits")
with open(env["TOKEN_FILE"], encoding="utf-8") as f:
    token = f.read().strip()
if not token:
    sys.exit(f"error: {env['TOKEN_FILE']} is empty (set the githubToken secret: pulumi config set --secret githubToken)")


def call(method, path, body=None):
    req = urllib.request.Request(api + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                                          "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "rag-platform-review",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode("utf-8", "replace")
        sys.exit(f"error: GitHub API {method} {path}: HTTP {exc.code}: {detail}")
    except (urllib.error.URLError, TimeoutError) as exc:
        sys.exit(f"error: GitHub API {method} {path} unreachable: {exc}")


def verdict(preview, policy):
    codes = {preview, policy}
    if codes <= {"0"}:
        return "success", "no mandatory policy violation"
    if codes <= {"0", "1"}:
        return "failure", "mandatory policy violation: see the preview comment"
    return "error", "the preview or the policy check failed: see the PipelineRun"


summary_path = env["SUMMARY"]
summary = None
if os.path.isfile(summary_path):
    with open(summary_path, encoding="utf-8") as f:
        summary = f.read()[:65000]
if summary is not None:
    if not summary.startswith(MARKER):
        summary = MARKER + "\n" + summary
    existing = None
    for page in range(1, 11):  # bounded: 1,000 comments
        comments = call("GET", f"/repos/{repo}/issues/{pr}/comments?per_page=100&page={page}") or []
        existing = next((c for c in comments if str(c.get("body", "")).startswith(MARKER)), None)
        if existing or len(comments) < 100:
            break
    if existing:
        call("PATCH", f"/repos/{repo}/issues/comments/{int(existing['id'])}", {"body": summary})
        print(f"updated comment {existing['id']} on {repo}#{pr}")
    else:
        call("POST", f"/repos/{repo}/issues/{pr}/comments", {"body": summary})
        print(f"commented on {repo}#{pr}")
state, description = verdict(env.get("PREVIEW_EXIT", "2"), env.get("POLICY_EXIT", "2"))
call("POST", f"/repos/{repo}/statuses/{sha}", {"state": state, "context": env["STATUS_CONTEXT"],
                                               "description": description[:140]})
print(f"status {state} on {sha}: {description}")
'''


def _env(**values: str) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]


def _task(name: str, env: str, ns: str, spec: dict) -> Manifest:
    return {"apiVersion": "tekton.dev/v1", "kind": "Task",
            "metadata": metadata(name, ns, labels(name, "review-task", env)), "spec": spec}


def build_tasks(cfg: StackConfig, ns: Namespaces) -> list[Manifest]:
    env = cfg.environment
    src = "$(workspaces.source.path)"
    home = _env(HOME="/tekton/home")
    python_env = home + _env(PIP_DISABLE_PIP_VERSION_CHECK="1", TORCH_INDEX_URL=versions.TORCH_CPU_INDEX_URL,
                             SOURCE=src, VENV=".venv", PREVIEW_DIR=PREVIEW_DIR, BASE_PREVIEW_DIR=BASE_PREVIEW_DIR)
    fetch = _task("review-fetch", env, ns.ci, {
        "params": [{"name": p, "type": "string"} for p in ("repo-url", "base-sha", "head-sha")],
        "workspaces": [{"name": "source"}],
        "steps": [{"name": "clone", "image": versions.GIT_IMAGE, "securityContext": step_security(),
                   "env": home + _env(SOURCE=src, REPO_URL="$(params.repo-url)", BASE_SHA="$(params.base-sha)",
                                      HEAD_SHA="$(params.head-sha)"),
                   "script": FETCH_SCRIPT}],
    })
    preview = _task("review-preview", env, ns.ci, {
        "workspaces": [{"name": "source"}],
        "results": [{"name": "preview-exit", "description": "exit code of the head preview (0, 1 or 2)"}],
        "steps": [{"name": "preview-and-diff", "image": versions.PYTHON_IMAGE, "securityContext": step_security(),
                   "env": python_env + _env(RESULT_PREVIEW_EXIT="$(results.preview-exit.path)"),
                   "computeResources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
                   "script": PREVIEW_SCRIPT}],
    })
    policy = _task("review-policy-check", env, ns.ci, {
        "workspaces": [{"name": "source"}],
        "results": [{"name": "policy-exit", "description": "highest exit code of the policy checker (0, 1 or 2)"}],
        "steps": [{"name": "check", "image": versions.PYTHON_IMAGE, "securityContext": step_security(),
                   "env": python_env + _env(RESULT_POLICY_EXIT="$(results.policy-exit.path)"),
                   "computeResources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
                   "script": POLICY_SCRIPT}],
    })
    report = _task("review-report", env, ns.ci, {
        "params": [{"name": p, "type": "string"} for p in ("repository", "pr-number", "head-sha")]
        + [{"name": "preview-exit", "type": "string", "default": "2"},
           {"name": "policy-exit", "type": "string", "default": "2"}],
        "workspaces": [{"name": "source", "readOnly": True},
                       {"name": "github-token", "readOnly": True, "mountPath": "/var/run/secrets/github"}],
        "steps": [{"name": "comment-and-status", "image": versions.PYTHON_IMAGE,
                   "securityContext": step_security() | {"readOnlyRootFilesystem": True},
                   "env": home + _env(
                       GITHUB_API_URL=cfg.review.githubApiUrl, STATUS_CONTEXT=cfg.review.statusContext,
                       REPOSITORY="$(params.repository)", PR_NUMBER="$(params.pr-number)",
                       HEAD_SHA="$(params.head-sha)", PREVIEW_EXIT="$(params.preview-exit)",
                       POLICY_EXIT="$(params.policy-exit)", SUMMARY=f"{src}/head/{PREVIEW_DIR}/summary.md",
                       TOKEN_FILE=f"$(workspaces.github-token.path)/{TOKEN_KEY}"),
                   "computeResources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                   "script": REPORT_SCRIPT}],
    })
    return [fetch, preview, policy, report]


def build_pipeline(cfg: StackConfig, ns: Namespaces) -> Manifest:
    source = [{"name": "source", "workspace": "source"}]
    report_params = [{"name": "repository", "value": "$(params.repository)"},
                     {"name": "pr-number", "value": "$(params.pr-number)"},
                     {"name": "head-sha", "value": "$(params.head-sha)"}]
    report_workspaces = source + [{"name": "github-token", "workspace": "github-token"}]
    return {
        "apiVersion": "tekton.dev/v1", "kind": "Pipeline",
        "metadata": metadata(PIPELINE, ns.ci, labels(PIPELINE, "review-pipeline", cfg.environment)),
        "spec": {
            "params": [{"name": p, "type": "string"}
                       for p in ("repo-url", "repository", "pr-number", "base-sha", "head-sha")],
            "workspaces": [{"name": "source"}, {"name": "github-token"}],
            "tasks": [
                {"name": "fetch", "taskRef": {"name": "review-fetch"}, "workspaces": source,
                 "params": [{"name": "repo-url", "value": "$(params.repo-url)"},
                            {"name": "base-sha", "value": "$(params.base-sha)"},
                            {"name": "head-sha", "value": "$(params.head-sha)"}]},
                {"name": "preview", "taskRef": {"name": "review-preview"}, "runAfter": ["fetch"], "workspaces": source},
                {"name": "policy-check", "taskRef": {"name": "review-policy-check"}, "runAfter": ["preview"],
                 "workspaces": source},
                {"name": "report", "taskRef": {"name": "review-report"}, "runAfter": ["policy-check"],
                 "workspaces": report_workspaces,
                 "params": report_params + [
                     {"name": "preview-exit", "value": "$(tasks.preview.results.preview-exit)"},
                     {"name": "policy-exit", "value": "$(tasks.policy-check.results.policy-exit)"}]},
            ],
            # Any failed task: an `error` status (exit codes default to 2), so the PR does not wait forever.
            "finally": [
                {"name": "report-failure", "taskRef": {"name": "review-report"}, "workspaces": report_workspaces,
                 "params": report_params,
                 "when": [{"input": "$(tasks.status)", "operator": "in", "values": ["Failed"]}]},
            ],
        },
    }


def build_triggers(cfg: StackConfig, ns: Namespaces, webhook_secret: str) -> list[Manifest]:
    env = cfg.environment
    lbl = labels(TRIGGER, "review-trigger", env)
    conditions = [f"body.action in {list(ACTIONS)}",
                  f"body.pull_request.base.ref == '{cfg.cicd.gitRevision}'"]
    if not cfg.review.allowForks:
        conditions.append("body.pull_request.head.repo.full_name == body.repository.full_name")
    run = {
        "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"generateName": f"{PIPELINE}-", "namespace": ns.ci, "labels": labels(PIPELINE, "review-run", env)},
        "spec": {
            "pipelineRef": {"name": PIPELINE},
            "params": [{"name": p, "value": f"$(tt.params.{p})"}
                       for p in ("repo-url", "repository", "pr-number", "base-sha", "head-sha")],
            "taskRunTemplate": {"serviceAccountName": RUNNER_SA,
                                "podTemplate": {"securityContext": pod_security_context(RUNNER_UID),
                                                "automountServiceAccountToken": False}},
            "workspaces": [
                {"name": "source", "volumeClaimTemplate": {"spec": {
                    "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "4Gi"}}}}},
                {"name": "github-token", "secret": {"secretName": TOKEN_SECRET, "defaultMode": 0o400,
                                                    "items": [{"key": TOKEN_KEY, "path": TOKEN_KEY}]}},
            ],
        },
    }
    return [
        {"apiVersion": "triggers.tekton.dev/v1beta1", "kind": "TriggerBinding",
         "metadata": metadata(TRIGGER, ns.ci, lbl),
         "spec": {"params": [{"name": "repo-url", "value": "$(body.repository.clone_url)"},
                             {"name": "repository", "value": "$(body.repository.full_name)"},
                             {"name": "pr-number", "value": "$(body.pull_request.number)"},
                             {"name": "base-sha", "value": "$(body.pull_request.base.sha)"},
                             {"name": "head-sha", "value": "$(body.pull_request.head.sha)"}]}},
        {"apiVersion": "triggers.tekton.dev/v1beta1", "kind": "TriggerTemplate",
         "metadata": metadata(PIPELINE, ns.ci, lbl),
         "spec": {"params": [{"name": p} for p in ("repo-url", "repository", "pr-number", "base-sha", "head-sha")],
                  "resourcetemplates": [run]}},
        {"apiVersion": "triggers.tekton.dev/v1beta1", "kind": "Trigger",
         "metadata": metadata(TRIGGER, ns.ci, lbl | TRIGGER_SELECTOR),
         "spec": {
             "interceptors": [
                 {"ref": {"name": "github", "kind": "ClusterInterceptor"},
                  "params": [{"name": "secretRef", "value": {"secretName": webhook_secret, "secretKey": "secretToken"}},
                             {"name": "eventTypes", "value": ["pull_request"]}]},
                 {"ref": {"name": "cel", "kind": "ClusterInterceptor"},
                  "params": [{"name": "filter", "value": " && ".join(conditions)}]},
             ],
             "bindings": [{"ref": TRIGGER}],
             "template": {"ref": PIPELINE},
         }},
    ]


def build_identity(cfg: StackConfig, ns: Namespaces) -> list[Manifest]:
    env = cfg.environment
    return [
        # No Kubernetes API access at all: the tasks talk to git and GitHub only.
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": metadata(RUNNER_SA, ns.ci, labels(RUNNER_SA, "review-identity", env)),
         "automountServiceAccountToken": False},
        # Task pods of this pipeline reach git, PyPI and the GitHub API over HTTPS, nothing else.
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": metadata("review-egress-https", ns.ci, labels("review", "network-policy", env)),
         "spec": {"podSelector": {"matchLabels": {"tekton.dev/pipeline": PIPELINE}}, "policyTypes": ["Egress"],
                  "egress": [{"ports": [{"protocol": "TCP", "port": 443}]}]}},
    ]


def build_token_secret(cfg: StackConfig, ns: Namespaces, token: pulumi.Input[str]) -> Manifest:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": metadata(TOKEN_SECRET, ns.ci, labels(TOKEN_SECRET, "review", cfg.environment)),
            "stringData": {TOKEN_KEY: token}}


class ReviewPipeline(pulumi.ComponentResource):
    """Pull-request previews: Tasks, Pipeline, Trigger (joins the release listener), identity, token."""

    def __init__(self, name: str, cfg: StackConfig, ns: Namespaces, *, tekton: Tekton, webhook_secret: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("rag-platform:review:ReviewPipeline", name, None, opts)
        if cfg.githubToken is None:
            raise ValueError("ReviewPipeline needs cfg.githubToken (the config validation requires it)")
        child = pulumi.ResourceOptions(parent=self)
        pipelines_dep = pulumi.ResourceOptions(parent=self, depends_on=[tekton.pipelines])
        triggers_dep = pulumi.ResourceOptions(parent=self, depends_on=[tekton.triggers, tekton.interceptors])
        token = pulumi.Output.secret(cfg.githubToken.get_secret_value())
        self.token_secret = KubeObject(build_token_secret(cfg, ns, token), child)
        self.identity = [KubeObject(m, child) for m in build_identity(cfg, ns)]
        self.tasks = [KubeObject(m, pipelines_dep) for m in build_tasks(cfg, ns)]
        self.pipeline = KubeObject(build_pipeline(cfg, ns), pipelines_dep)
        self.triggers = [KubeObject(m, triggers_dep) for m in build_triggers(cfg, ns, webhook_secret)]
        self.register_outputs({"pipeline": PIPELINE, "trigger": TRIGGER})
