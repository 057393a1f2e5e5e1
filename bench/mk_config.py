#!/usr/bin/env python3
"""Write the Gatehouse manifests bench/run benchmarks: a realistic local-mode configuration.

Usage: mk_config.py OUT_DIR UPSTREAM_URL PUBLIC_URL AUDIT_FILE|none UPSTREAM_TOKEN [USERS]

- one McpGateway (audit to AUDIT_FILE) with one `apiKey` TrustProvider holding USERS (default
  1,000) users, keys stored as `sha256:<hex>`; the plain keys go to OUT_DIR/../keys.txt;
- the measured McpServer `bench` plus nine more on the same upstream (so the policy index has
  other servers to skip);
- one Allow AccessPolicy per user on `bench` (tools `echo`, `get_*`, `list_*`, credential
  `bench-token`), one Deny per ten users (`admin_*`), and 2 per ten users on the other servers:
  1,300 AccessPolicies for 1,000 users;
- a `secret` CredentialProvider `bench-token` (injected upstream as `Authorization: Bearer …`).
"""

import hashlib
import os
import secrets
import sys

out, upstream, public_url, audit_file, token = sys.argv[1:6]
users = int(sys.argv[6]) if len(sys.argv) > 6 else 1000
others = 9
os.makedirs(out, exist_ok=True)

def doc(*lines):
    return "\n".join(lines) + "\n---\n"

gw = doc(
    "apiVersion: gatehouse.dev/v1alpha1",
    "kind: McpGateway",
    "metadata: {name: bench, namespace: default}",
    "spec:",
    f"  publicUrl: {public_url}",
    "  trustProviders: [api-keys]",
    f"  audit: {{sink: File, path: {audit_file}}}" if audit_file != "none" else "  audit: {sink: None}",
)
gw += doc(
    "apiVersion: gatehouse.dev/v1alpha1",
    "kind: TrustProvider",
    "metadata: {name: api-keys, namespace: default}",
    "spec:",
    "  apiKey:",
    "    header: X-API-Key",
    "    secretRef: {name: bench-api-keys}",
)
for name in ["bench"] + [f"other-{k}" for k in range(1, others + 1)]:
    gw += doc(
        "apiVersion: gatehouse.dev/v1alpha1",
        "kind: McpServer",
        f"metadata: {{name: {name}, namespace: default}}",
        "spec:",
        "  gatewayRef: {name: bench}",
        f"  url: {upstream}",
    )
gw += doc(
    "apiVersion: gatehouse.dev/v1alpha1",
    "kind: CredentialProvider",
    "metadata: {name: bench-token, namespace: default}",
    "spec:",
    "  secret:",
    "    secretRef: {name: bench-upstream-token, key: token}",
)
gw += doc(
    "apiVersion: v1",
    "kind: Secret",
    "metadata: {name: bench-upstream-token, namespace: default}",
    "stringData:",
    f"  token: {token}",
)
with open(os.path.join(out, "gateway.yaml"), "w") as f:
    f.write(gw.removesuffix("---\n"))

keys_path = os.path.join(os.path.dirname(os.path.abspath(out)), "keys.txt")
try:  # a second configuration in the same run reuses the first one's keys
    with open(keys_path) as f:
        old_keys = [k for k in f.read().split() if k]
except FileNotFoundError:
    old_keys = []
keys = []
secret = [
    "apiVersion: v1",
    "kind: Secret",
    "metadata: {name: bench-api-keys, namespace: default}",
    "stringData:",
]
for i in range(users):
    key = old_keys[i] if i < len(old_keys) else f"bench-{i:05d}-{secrets.token_hex(16)}"
    keys.append(key)
    secret.append(f"  u{i:05d}: sha256:{hashlib.sha256(key.encode()).hexdigest()}")
with open(os.path.join(out, "users.yaml"), "w") as f:
    f.write("\n".join(secret) + "\n")
with open(keys_path, "w") as f:
    f.write("\n".join(keys) + "\n")

policies = []
def policy(name, action, ids, server, tools, cred=None):
    lines = [
        "apiVersion: gatehouse.dev/v1alpha1",
        "kind: AccessPolicy",
        f"metadata: {{name: {name}, namespace: default}}",
        "spec:",
        f"  action: {action}",
        "  subjects:",
        f"    - users: {{ids: [{', '.join(ids)}]}}",
        "  targets:",
        f"    - server: {server}",
    ]
    if cred:
        lines.append(f"      credentialProvider: {cred}")
    # The filter selects the tools the policy is about, for an Allow and a Deny alike.
    lines.append(f"      tools: {{allow: [{', '.join(repr(t) for t in tools)}]}}")
    policies.append(doc(*lines))

for i in range(users):
    policy(f"u{i:05d}-bench", "Allow", [f"u{i:05d}"], "bench",
           ["echo", "get_*", "list_*"], "bench-token")
for g in range(users // 10):
    ids = [f"u{i:05d}" for i in range(g * 10, g * 10 + 10)]
    policy(f"team-{g:04d}-no-admin", "Deny", ids, "bench", ["admin_*"])
    policy(f"team-{g:04d}-other", "Allow", ids, f"other-{g % others + 1}",
           ["read_*", "search"], "bench-token")
    policy(f"team-{g:04d}-other-deny", "Deny", ids, f"other-{(g + 1) % others + 1}",
           ["delete_*"])
with open(os.path.join(out, "policies.yaml"), "w") as f:
    f.write("".join(policies).removesuffix("---\n"))
print(f"{users} users, {len(policies)} AccessPolicies, {others + 1} McpServers in {out}")
