"""rag-platform CrossGuard policy pack: least-privilege service accounts and restricted pods.

`policies.engine` runs the policies over resources (the preview and tests), `policies.checker`
over Kubernetes YAML (`python -m policies check`), and `policies.pack` adapts the same functions
to pulumi_policy for `pulumi preview --policy-pack policies`. Importing any of them never starts
the pack's gRPC server; only `policies.pack.serve()` does.
"""
