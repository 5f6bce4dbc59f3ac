"""Service accounts: every workload names its own, `default` is never used, tokens mount only on request."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .k8s import (RBAC, TRIGGERS, as_list, as_map, dig, event_listener_service_account, is_kind,
                  pod_service_account, pod_templates, tekton_runs)
from .model import Policy


def explicit_service_account(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        if not pod.tekton and pod_service_account(pod.pod) is None:
            yield (f"{pod.path}.serviceAccountName is not set, so the pod runs as the namespace's 'default' "
                   f"ServiceAccount; create a ServiceAccount for this workload and set serviceAccountName.")
    if is_kind(token, TRIGGERS, "EventListener") and event_listener_service_account(token, props) is None:
            yield ("spec.serviceAccountName is not set; give the EventListener its own ServiceAccount bound "
                   "to the Tekton Triggers EventListener roles.")


def default_service_account(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        if not pod.tekton and pod_service_account(pod.pod) == "default":
            yield (f"{pod.path}.serviceAccountName is 'default'; create a dedicated ServiceAccount for this "
                   f"workload and bind only the rights it needs to that.")
    if event_listener_service_account(token, props) == "default":
        yield "spec.serviceAccountName is 'default'; give the EventListener its own ServiceAccount."
    if is_kind(token, RBAC, "RoleBinding", "ClusterRoleBinding"):
        for i, subject in enumerate(as_list(props.get("subjects"))):
            subject = as_map(subject)
            if subject.get("kind") == "ServiceAccount" and subject.get("name") == "default":
                yield (f"subjects[{i}] is the 'default' ServiceAccount (every pod without its own account "
                       f"would get these rights); bind a dedicated ServiceAccount instead.")
    if is_kind(token, "core", "ServiceAccount") and dig(props, "metadata", "name") == "default":
        if props.get("automountServiceAccountToken") is not False:
            yield ("the 'default' ServiceAccount mounts a token into every pod that uses it; set "
                   "automountServiceAccountToken: false.")


def token_automount(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        if pod.tekton:
            continue  # Tekton builds these pods; their tokens are governed by the run's ServiceAccount
        value = pod.pod.get("automountServiceAccountToken")
        if not isinstance(value, bool):
            yield (f"{pod.path}.automountServiceAccountToken is not set, so the ServiceAccount token is "
                   f"mounted by default; set it to false, or to true only if the pod calls the Kubernetes API.")


def service_account_token_mount(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for pod in pod_templates(token, props):
        if pod.pod.get("automountServiceAccountToken") is True:
            yield (f"{pod.path}.automountServiceAccountToken is true: the pod holds an API credential. If it "
                   f"really calls the Kubernetes API, exempt this object with the reason; otherwise set false.")
        for volume in as_list(pod.pod.get("volumes")):
            volume = as_map(volume)
            for source in as_list(dig(volume, "projected", "sources")):
                if "serviceAccountToken" in as_map(source):
                    audience = dig(source, "serviceAccountToken", "audience")
                    yield (f"volume {volume.get('name')!r} in {pod.path} projects a ServiceAccount token"
                           f"{f' for audience {audience!r}' if isinstance(audience, str) else ''}; exempt this object "
                           f"with the reason the pod needs it (and keep the audience narrow), or remove the volume.")
    if is_kind(token, "core", "ServiceAccount") and props.get("automountServiceAccountToken") is True:
        yield ("automountServiceAccountToken: true mounts a token into every pod running as this ServiceAccount "
               "unless the pod opts out; set false (pods that call the API opt in), or exempt it with the reason.")


def legacy_token_secrets(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    if is_kind(token, "core", "Secret") and props.get("type") == "kubernetes.io/service-account-token":
        yield ("Secret of type kubernetes.io/service-account-token holds a non-expiring token; delete it and "
               "let pods use projected, short-lived tokens (or `kubectl create token` for tools).")


def tekton_run_service_account(token: str, props: Mapping[str, Any]) -> Iterator[str]:
    for run in tekton_runs(token, props):
        if run.parameter is not None and run.service_account in ("", "default"):
            yield (f"{run.path} is the TriggerTemplate parameter {run.parameter!r}, whose default is "
                   f"{run.service_account!r}: a trigger that does not pass it runs the {run.kind} as the "
                   f"'default' ServiceAccount; default it to the pipeline's own ServiceAccount.")
        elif not run.service_account and run.required:
            yield (f"{run.path} is not set, so the {run.kind} runs as the 'default' ServiceAccount; create a "
                   f"ServiceAccount for the pipeline and set {run.path}.")
        elif run.service_account == "default":
            yield (f"{run.path} is 'default'; create a dedicated ServiceAccount for the pipeline and set it.")


POLICIES = (
    Policy("require-explicit-service-account",
           "Workloads (and EventListeners) must name their ServiceAccount explicitly.",
           "high", "Create a ServiceAccount per workload and set serviceAccountName.",
           resource_check=explicit_service_account, tags=("service-accounts",)),
    Policy("restrict-default-service-account",
           "The 'default' ServiceAccount is never used by a workload, never a binding subject, never mounts a token.",
           "high", "Use a dedicated ServiceAccount; set automountServiceAccountToken: false on 'default'.",
           resource_check=default_service_account, tags=("service-accounts",)),
    Policy("restrict-token-automount",
           "Pods must say whether they mount a ServiceAccount token (automountServiceAccountToken set explicitly).",
           "high", "Set automountServiceAccountToken: false, or true only where the pod calls the API.",
           resource_check=token_automount, tags=("service-accounts",)),
    Policy("restrict-service-account-token-mount",
           "A pod that mounts a ServiceAccount token (automount true, projected token) or a ServiceAccount that "
           "automounts one needs an exemption with a reason.",
           "high", "Set automountServiceAccountToken: false; exempt only pods that call the API, with the reason.",
           resource_check=service_account_token_mount, tags=("service-accounts",)),
    Policy("restrict-legacy-token-secrets",
           "No Secrets of type kubernetes.io/service-account-token (long-lived tokens).",
           "medium", "Delete the Secret; use projected tokens or `kubectl create token`.",
           resource_check=legacy_token_secrets, tags=("service-accounts", "secrets")),
    Policy("require-tekton-run-service-account",
           "Tekton PipelineRuns/TaskRuns (also inside TriggerTemplates) must name a dedicated ServiceAccount.",
           "high", "Set spec.taskRunTemplate.serviceAccountName (tekton.dev/v1) to a pipeline ServiceAccount.",
           resource_check=tekton_run_service_account, tags=("service-accounts", "tekton")),
)
