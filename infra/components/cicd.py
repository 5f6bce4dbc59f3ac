"""Tekton Pipelines + Triggers (pinned release manifests) and the agent's release pipeline.

fetch-source -> unit-tests (`make test`) -> evaluation-gate (`python -m agent.eval ... --gate
stacks/gates/<env>.json`) -> build-push (kaniko) -> deploy (patch the agent Rollout's image; Argo
Rollouts then runs the canary). A GitHub push to the configured branch starts a run through an
EventListener whose `github` interceptor checks the generated webhook secret.

The way in: an Ingress on `cicd.webhook.host` routes exactly one path (`cicd.webhook.path`, pathType
Exact) to the listener's Service over TLS, and a NetworkPolicy admits only the ingress controller's
pods; `webhookUrl` is that public https URL. (`exposure: external`: the stack names the URL it is
reached at instead, and no Ingress is rendered.) Other pipelines add `Trigger` objects labelled
`TRIGGER_SELECTOR` (`AgentPipeline.trigger_labels`): the listener picks them up by that selector.

Registry auth is an explicit choice (`cicd.registryAuth`): the `registryDockerConfig` secret mounted
as kaniko's docker config, or workload identity on the `image-builder` ServiceAccount (with an
optional credential helper such as ecr-login).

Service accounts, least privilege:
- pipeline-runner: every task but build-push and deploy; no Kubernetes API access (token not mounted).
- image-builder: build-push only; no API token; carries the workload-identity annotations if any.
- pipeline-deployer: deploy only; may get/patch the Rollout named `agent` in the app namespace.
- triggers-listener: the EventListener; Tekton's own aggregated roles for listeners.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s

from infra import versions
from infra.components.secrets import SecretNames
from infra.config import StackConfig
from infra.kube import (KubeObject, Manifest, Namespaces, container_security_context, labels, metadata,
                        pod_security_context)

RUNNER_UID = 65532
PIPELINE = "agent-release"
LISTENER = "github-listener"
RUNNER_SA, DEPLOYER_SA, LISTENER_SA = "pipeline-runner", "pipeline-deployer", "triggers-listener"
BUILDER_SA = "image-builder"
LISTENER_PORT = 8080  # the port of the listener's Service el-<name> (Tekton Triggers' default)
# Trigger objects with this label join the listener (EventListener spec.labelSelector).
TRIGGER_SELECTOR = {"rag-platform/listener": LISTENER}
REGISTRY_CONFIG_MAP = "registry-cred-helpers"
# The Redis failover drill (tests/redis_drill) builds network and mount namespaces, so it needs root,
# which the restricted step pod never has; it runs in the project's own CI (.ci/run, as root). It is
# left out here by name, and only it: everything else, the canary drill included, runs in the step.
UNIT_TESTS_PYTEST_ARGS = "--ignore=tests/redis_drill"
# Where the unit-tests step finds the Prometheus binary its canary drill runs (tests/release/ reads
# the variable; without it, `prometheus` on PATH; without either, the drill fails, never skips).
CI_TOOLS = "/workspace/ci-tools"
PROMETHEUS_BINARY_ENV = "RAG_TEST_PROMETHEUS"


def step_security(uid: int = RUNNER_UID) -> dict:
    # Steps write into their image's filesystem (pip caches, build output), so not read-only.
    return container_security_context(uid) | {"readOnlyRootFilesystem": False}


# kaniko unpacks image layers as root inside its container (no privileged mode, no host access).
# The CI namespace enforces PSS `baseline` for exactly this step; it keeps seccomp and drops
# everything except the file-ownership capabilities layer extraction needs.
KANIKO_SECURITY = {"allowPrivilegeEscalation": False, "runAsNonRoot": False, "runAsUser": 0,
                   "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID"]},
                   "seccompProfile": {"type": "RuntimeDefault"}}


def _task(name: str, env: str, ns: str, spec: dict) -> Manifest:
    return {"apiVersion": "tekton.dev/v1", "kind": "Task",
            "metadata": metadata(name, ns, labels(name, "ci-task", env)), "spec": spec}


def build_tasks(cfg: StackConfig, ns: Namespaces) -> list[Manifest]:
    env = cfg.environment
    home = [{"name": "HOME", "value": "/tekton/home"}]
    src = "$(workspaces.source.path)"
    fetch = _task("fetch-source", env, ns.ci, {
        "params": [{"name": "url", "type": "string"}, {"name": "revision", "type": "string"}],
        "workspaces": [{"name": "source"}],
        "results": [{"name": "commit", "description": "the checked-out commit SHA"}],
        "steps": [{
            "name": "clone", "image": versions.GIT_IMAGE, "env": home,
            "securityContext": step_security(),
            # One command per line: `set -e` ignores a failure on the left of `&&`, which let a
            # failed fetch write an empty commit result and pass (tests/release/test_tekton_scripts.py).
            "script": (
                "#!/bin/sh\nset -eu\n"
                f'cd "{src}"\n'
                "git init -q .\n"
                'git remote add origin "$(params.url)"\n'
                'git fetch -q --depth 1 origin "$(params.revision)"\n'
                "git checkout -q FETCH_HEAD\n"
                'commit="$(git rev-parse HEAD)"\n'
                'printf %s "$commit" > "$(results.commit.path)"\n'),
        }],
    })
    py_env = home + [{"name": "PIP_DISABLE_PIP_VERSION_CHECK", "value": "1"},
                     {"name": "TORCH_INDEX_URL", "value": versions.TORCH_CPU_INDEX_URL}]
    tools = [{"name": "ci-tools", "mountPath": CI_TOOLS}]
    tests = _task("unit-tests", env, ns.ci, {
        "workspaces": [{"name": "source"}],
        # The canary drill needs a real Prometheus; the step runs as non-root without apt, so the
        # binary comes from the pinned Prometheus image, copied by a first step into a shared volume.
        "volumes": [{"name": "ci-tools", "emptyDir": {}}],
        "steps": [{
            "name": "prometheus-binary", "image": versions.PROMETHEUS_IMAGE, "securityContext": step_security(),
            "volumeMounts": tools,
            "script": ("#!/bin/sh\nset -eu\n"
                       f'cp "$(command -v prometheus)" "{CI_TOOLS}/prometheus"\n'
                       f'"{CI_TOOLS}/prometheus" --version\n'),
        }, {
            "name": "make-test", "image": versions.PYTHON_IMAGE,
            "env": py_env + [{"name": PROMETHEUS_BINARY_ENV, "value": f"{CI_TOOLS}/prometheus"}],
            "workingDir": src, "securityContext": step_security(), "volumeMounts": tools,
            "computeResources": {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "6Gi"}},
            "script": f"#!/bin/sh\nset -eu\nmake test PYTEST_ARGS='{UNIT_TESTS_PYTEST_ARGS}'\n",
        }],
    })
    gate = _task("evaluation-gate", env, ns.ci, {
        "params": [{"name": "environment", "type": "string"}],
        "workspaces": [{"name": "source"}],
        "results": [{"name": "report", "description": "path of the evaluation report in the workspace"}],
        "steps": [{
            "name": "evaluate", "image": versions.PYTHON_IMAGE, "env": py_env,
            "workingDir": src, "securityContext": step_security(),
            "computeResources": {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "6Gi"}},
            # Exit 1 (below thresholds) or 2 (bad input) fails the step, hence the run.
            "script": (
                "#!/bin/sh\nset -eu\n"
                "make venv\n"
                ".venv/bin/python -m agent.eval --dataset agent/eval/golden/questions.jsonl "
                "--corpus agent/eval/golden/corpus/docs --corpus agent/eval/golden/corpus/README.md "
                "--gate stacks/gates/$(params.environment).json --report build/eval/eval-report.json\n"
                'printf %s build/eval/eval-report.json > "$(results.report.path)"\n'),
        }],
    })
    build = _task("build-push", env, ns.ci, {
        "params": [{"name": "image", "type": "string"}, {"name": "dockerfile", "type": "string", "default": "Dockerfile"}],
        "workspaces": [{"name": "source"}, {"name": "docker-config", "mountPath": "/kaniko/.docker", "readOnly": True}],
        "results": [{"name": "IMAGE_DIGEST", "description": "digest of the pushed image"}],
        "steps": [{
            "name": "kaniko", "image": versions.KANIKO_IMAGE, "securityContext": KANIKO_SECURITY,
            "env": [{"name": "DOCKER_CONFIG", "value": "/kaniko/.docker"}],
            "args": [f"--context={src}", f"--dockerfile={src}/$(params.dockerfile)",
                     "--destination=$(params.image)", "--digest-file=$(results.IMAGE_DIGEST.path)",
                     "--snapshot-mode=redo", "--use-new-run"],
        }],
    })
    deploy = _task("deploy-rollout", env, ns.ci, {
        "params": [{"name": "image", "type": "string"}, {"name": "namespace", "type": "string"},
                   {"name": "rollout", "type": "string", "default": "agent"}],
        "steps": [{
            # Only the image changes; Argo Rollouts takes it from there (canary + analysis).
            "name": "patch-image", "image": versions.KUBECTL_IMAGE, "securityContext": step_security(),
            "command": ["kubectl"],
            "args": ["--namespace=$(params.namespace)", "patch", "rollout", "$(params.rollout)", "--type=json",
                     '--patch=[{"op":"replace","path":"/spec/template/spec/containers/0/image",'
                     '"value":"$(params.image)"}]'],
        }],
    })
    return [fetch, tests, gate, build, deploy]


def build_pipeline(cfg: StackConfig, ns: Namespaces) -> Manifest:
    tasks = [
        {"name": "fetch-source", "taskRef": {"name": "fetch-source"},
         "params": [{"name": "url", "value": "$(params.git-url)"}, {"name": "revision", "value": "$(params.git-revision)"}],
         "workspaces": [{"name": "source", "workspace": "source"}]},
    ]
    after = "fetch-source"
    if cfg.cicd.runTests:
        tasks.append({"name": "unit-tests", "taskRef": {"name": "unit-tests"}, "runAfter": [after],
                      "workspaces": [{"name": "source", "workspace": "source"}]})
        after = "unit-tests"
    tasks += [
        {"name": "evaluation-gate", "taskRef": {"name": "evaluation-gate"}, "runAfter": [after],
         "params": [{"name": "environment", "value": "$(params.environment)"}],
         "workspaces": [{"name": "source", "workspace": "source"}]},
        {"name": "build-push", "taskRef": {"name": "build-push"}, "runAfter": ["evaluation-gate"],
         "params": [{"name": "image", "value": "$(params.image-repository):$(tasks.fetch-source.results.commit)"}],
         "workspaces": [{"name": "source", "workspace": "source"},
                        {"name": "docker-config", "workspace": "docker-config"}]},
        {"name": "deploy", "taskRef": {"name": "deploy-rollout"}, "runAfter": ["build-push"],
         "params": [{"name": "image",
                     "value": "$(params.image-repository)@$(tasks.build-push.results.IMAGE_DIGEST)"},
                    {"name": "namespace", "value": "$(params.app-namespace)"}]},
    ]
    return {
        "apiVersion": "tekton.dev/v1", "kind": "Pipeline",
        "metadata": metadata(PIPELINE, ns.ci, labels(PIPELINE, "ci-pipeline", cfg.environment)),
        "spec": {
            "params": [{"name": "git-url", "type": "string"}, {"name": "git-revision", "type": "string"},
                       {"name": "environment", "type": "string"}, {"name": "image-repository", "type": "string"},
                       {"name": "app-namespace", "type": "string"}],
            "workspaces": [{"name": "source"}, {"name": "docker-config"}],
            "tasks": tasks,
        },
    }


def build_rbac(cfg: StackConfig, ns: Namespaces) -> list[Manifest]:
    env = cfg.environment

    def sa(name: str, automount: bool, annotations: dict[str, str] | None = None) -> Manifest:
        return {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": metadata(name, ns.ci, labels(name, "ci-identity", env), annotations=annotations),
                "automountServiceAccountToken": automount}

    auth = cfg.cicd.registryAuth
    # Workload identity (EKS IRSA, GKE) works from the annotation, not from the API token.
    builder_annotations = dict(auth.serviceAccountAnnotations) if auth and auth.method == "workloadIdentity" else None

    deployer_lbl = labels(DEPLOYER_SA, "ci-identity", env)
    listener_lbl = labels(LISTENER_SA, "ci-identity", env)
    return [
        # The deploy task's podTemplate opts in to its token; the account itself defaults to none.
        sa(RUNNER_SA, False), sa(BUILDER_SA, False, builder_annotations), sa(DEPLOYER_SA, False),
        sa(LISTENER_SA, True),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": metadata("pipeline-deployer-rollout", ns.app, deployer_lbl),
         "rules": [{"apiGroups": ["argoproj.io"], "resources": ["rollouts"], "resourceNames": ["agent"],
                    "verbs": ["get", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": metadata("pipeline-deployer-rollout", ns.app, deployer_lbl),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pipeline-deployer-rollout"},
         "subjects": [{"kind": "ServiceAccount", "name": DEPLOYER_SA, "namespace": ns.ci}]},
        # Tekton Triggers ships these aggregated ClusterRoles for EventListener service accounts.
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": metadata("triggers-listener", ns.ci, listener_lbl),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "tekton-triggers-eventlistener-roles"},
         "subjects": [{"kind": "ServiceAccount", "name": LISTENER_SA, "namespace": ns.ci}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": metadata(f"triggers-listener-{env}", None, listener_lbl),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "tekton-triggers-eventlistener-clusterroles"},
         "subjects": [{"kind": "ServiceAccount", "name": LISTENER_SA, "namespace": ns.ci}]},
    ]


def registry_host(repository: str) -> str:
    """The registry part of an image repository (docker's rule: a first segment with '.' or ':')."""
    first = repository.split("/", 1)[0]
    return first if ("." in first or ":" in first or first == "localhost") and "/" in repository else "docker.io"


def build_registry_config(cfg: StackConfig, ns: Namespaces) -> list[Manifest]:
    """Workload identity with a credential helper: kaniko's config.json names the helper for the push registry."""
    auth = cfg.cicd.registryAuth
    if not (auth and auth.method == "workloadIdentity" and auth.credHelper):
        return []
    config = {"credHelpers": {registry_host(cfg.push_repository): auth.credHelper}}
    return [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": metadata(REGISTRY_CONFIG_MAP, ns.ci, labels(REGISTRY_CONFIG_MAP, "ci-config", cfg.environment)),
             "data": {"config.json": json.dumps(config, sort_keys=True)}}]


def docker_config_workspace(cfg: StackConfig, secrets: SecretNames) -> dict:
    """What kaniko finds in /kaniko/.docker: the pushed secret, the helper config, or nothing (the
    identity alone, e.g. GKE). Config validation guarantees an explicit choice."""
    auth = cfg.cicd.registryAuth
    if auth is not None and auth.method == "dockerConfig":
        return {"secret": {"secretName": secrets.registry}}
    if auth is not None and auth.credHelper:
        return {"configMap": {"name": REGISTRY_CONFIG_MAP}}
    return {"emptyDir": {}}


def build_triggers(cfg: StackConfig, ns: Namespaces, secrets: SecretNames) -> list[Manifest]:
    env = cfg.environment
    lbl = labels(LISTENER, "ci-trigger", env)
    docker_config = docker_config_workspace(cfg, secrets)
    pod_security = pod_security_context(RUNNER_UID)
    pipeline_run = {
        "apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
        "metadata": {"generateName": f"{PIPELINE}-", "namespace": ns.ci,
                     "labels": labels(PIPELINE, "ci-run", env)},
        "spec": {
            "pipelineRef": {"name": PIPELINE},
            "params": [{"name": "git-url", "value": "$(tt.params.git-url)"},
                       {"name": "git-revision", "value": "$(tt.params.git-revision)"},
                       {"name": "environment", "value": env},
                       {"name": "image-repository", "value": cfg.push_repository},
                       {"name": "app-namespace", "value": ns.app}],
            "taskRunTemplate": {"serviceAccountName": RUNNER_SA,
                                "podTemplate": {"securityContext": pod_security,
                                                "automountServiceAccountToken": False}},
            "taskRunSpecs": [
                {"pipelineTaskName": "deploy", "serviceAccountName": DEPLOYER_SA,
                 "podTemplate": {"securityContext": pod_security, "automountServiceAccountToken": True}},
                {"pipelineTaskName": "build-push", "serviceAccountName": BUILDER_SA,
                 "podTemplate": {"securityContext": {
                     "runAsNonRoot": False, "runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}},
                     "automountServiceAccountToken": False}},
            ],
            "workspaces": [
                {"name": "source", "volumeClaimTemplate": {"spec": {
                    "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "4Gi"}}}}},
                {"name": "docker-config", **docker_config},
            ],
        },
    }
    return [
        {"apiVersion": "triggers.tekton.dev/v1beta1", "kind": "TriggerBinding",
         "metadata": metadata("github-push", ns.ci, lbl),
         "spec": {"params": [{"name": "git-url", "value": "$(body.repository.clone_url)"},
                             {"name": "git-revision", "value": "$(body.after)"}]}},
        {"apiVersion": "triggers.tekton.dev/v1beta1", "kind": "TriggerTemplate",
         "metadata": metadata(PIPELINE, ns.ci, lbl),
         "spec": {"params": [{"name": "git-url"}, {"name": "git-revision"}],
                  "resourcetemplates": [pipeline_run]}},
        {"apiVersion": "triggers.tekton.dev/v1beta1", "kind": "EventListener",
         "metadata": metadata(LISTENER, ns.ci, lbl),
         "spec": {
             "serviceAccountName": LISTENER_SA,
             # Other pipelines (e.g. pull-request review) join with a `Trigger` carrying these labels.
             "labelSelector": {"matchLabels": dict(TRIGGER_SELECTOR)},
             "triggers": [{
                 "name": "github-push",
                 "interceptors": [
                     {"ref": {"name": "github", "kind": "ClusterInterceptor"},
                      "params": [{"name": "secretRef",
                                  "value": {"secretName": secrets.webhook, "secretKey": "secretToken"}},
                                 {"name": "eventTypes", "value": ["push"]}]},
                     {"ref": {"name": "cel", "kind": "ClusterInterceptor"},
                      "params": [{"name": "filter",
                                  "value": f"body.ref == 'refs/heads/{cfg.cicd.gitRevision}'"}]},
                 ],
                 "bindings": [{"ref": "github-push"}],
                 "template": {"ref": PIPELINE},
             }],
             "resources": {"kubernetesResource": {"spec": {"template": {"spec": {
                 "securityContext": pod_security,
                 "containers": [{"securityContext": step_security()}]}}}}},
         }},
    ]


def build_network_policies(cfg: StackConfig, ns: Namespaces) -> list[Manifest]:
    env = cfg.environment
    lbl = labels("ci", "network-policy", env)
    return [
        # Task pods fetch source, packages and base images and push images (HTTPS), and the
        # deploy step and the listener call the API server.
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": metadata("ci-egress-https", ns.ci, lbl),
         "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                  "egress": [{"ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]},
                             {"to": [{"namespaceSelector": {"matchLabels": {
                                 "kubernetes.io/metadata.name": "tekton-pipelines"}}}],
                              "ports": [{"protocol": "TCP", "port": 8443}]}]}},
        # Webhooks reach the listener only through the pods that forward them (the ingress controller).
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
         "metadata": metadata("listener-ingress", ns.ci, lbl),
         "spec": {"podSelector": {"matchLabels": {"eventlistener": LISTENER}}, "policyTypes": ["Ingress"],
                  "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                      "kubernetes.io/metadata.name": cfg.cicd.webhook.ingressControllerNamespace}}}],
                      "ports": [{"protocol": "TCP", "port": LISTENER_PORT}]}]}},
    ]


def build_webhook_ingress(cfg: StackConfig, ns: Namespaces) -> list[Manifest]:
    """The one public path to the listener, over TLS (exposure ingress)."""
    hook = cfg.cicd.webhook
    if hook.exposure != "ingress":
        return []
    assert hook.host and hook.tls, "config validation requires webhook.host and webhook.tls"
    annotations = {"cert-manager.io/cluster-issuer": hook.tls.clusterIssuer} if hook.tls.clusterIssuer else None
    return [{
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": metadata(LISTENER, ns.ci, labels(LISTENER, "ci-webhook", cfg.environment), annotations=annotations),
        "spec": {
            "ingressClassName": hook.ingressClass,
            # cert-manager's ingress-shim issues into this Secret when clusterIssuer is set.
            "tls": [{"hosts": [hook.host], "secretName": hook.tls.secretName or f"{LISTENER}-tls"}],
            # Exact: the listener also answers /live and any other path; only the hook path is public.
            "rules": [{"host": hook.host, "http": {"paths": [{
                "path": hook.path, "pathType": "Exact",
                "backend": {"service": {"name": f"el-{LISTENER}", "port": {"number": LISTENER_PORT}}}}]}}],
        },
    }]


def webhook_url(cfg: StackConfig) -> str:
    hook = cfg.cicd.webhook
    if hook.exposure == "external":
        assert hook.externalUrl, "config validation requires webhook.externalUrl"
        return hook.externalUrl
    return f"https://{hook.host}{hook.path}"


class Tekton(pulumi.ComponentResource):
    """Tekton Pipelines, Triggers and the core interceptors, from pinned release manifests."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("rag-platform:cicd:Tekton", name, None, opts)
        self.pipelines = k8s.yaml.v2.ConfigFile("tekton-pipelines", file=versions.TEKTON_PIPELINES_URL,
                                                opts=pulumi.ResourceOptions(parent=self))
        self.triggers = k8s.yaml.v2.ConfigFile("tekton-triggers", file=versions.TEKTON_TRIGGERS_URL,
                                               opts=pulumi.ResourceOptions(parent=self, depends_on=[self.pipelines]))
        self.interceptors = k8s.yaml.v2.ConfigFile(
            "tekton-interceptors", file=versions.TEKTON_INTERCEPTORS_URL,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.triggers]))
        self.register_outputs({"pipelinesVersion": versions.TEKTON_PIPELINES,
                               "triggersVersion": versions.TEKTON_TRIGGERS})


class AgentPipeline(pulumi.ComponentResource):
    """The agent's CI/CD: tasks, pipeline, triggers, service accounts and RBAC."""

    def __init__(self, name: str, cfg: StackConfig, ns: Namespaces, *, tekton: Tekton, secrets: SecretNames,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("rag-platform:cicd:AgentPipeline", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        pipelines_dep = pulumi.ResourceOptions(parent=self, depends_on=[tekton.pipelines])
        triggers_dep = pulumi.ResourceOptions(parent=self, depends_on=[tekton.triggers, tekton.interceptors])
        self.rbac = [KubeObject(m, triggers_dep if m["kind"].endswith("Binding") and m["roleRef"]["kind"] == "ClusterRole"
                                else child) for m in build_rbac(cfg, ns)]
        self.tasks = [KubeObject(m, pipelines_dep) for m in build_tasks(cfg, ns)]
        self.pipeline = KubeObject(build_pipeline(cfg, ns), pipelines_dep)
        self.triggers = [KubeObject(m, triggers_dep) for m in build_triggers(cfg, ns, secrets)]
        self.policies = [KubeObject(m, child) for m in build_network_policies(cfg, ns)]
        self.exposure = [KubeObject(m, child) for m in build_webhook_ingress(cfg, ns) + build_registry_config(cfg, ns)]
        self.webhook_url = webhook_url(cfg)
        # What another pipeline's `Trigger` needs to join this listener (infra/components/review.py).
        self.listener = LISTENER
        self.trigger_labels = dict(TRIGGER_SELECTOR)
        self.register_outputs({"webhookUrl": self.webhook_url, "pipeline": PIPELINE, "listener": LISTENER})
