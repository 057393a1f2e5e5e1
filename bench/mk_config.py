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

Environment (optional), for the other configurations bench/run measures:
- BENCH_AUTH=oidc BENCH_ISSUER=URL BENCH_JWKS_URI=URL: users authenticate with RS256 JWTs from an
  `oidc` TrustProvider instead of API keys. A fresh RSA key signs one token per user (`sub` =
  the user id, `aud` = PUBLIC_URL, valid 24 h); the public key goes to OUT_DIR/../jwks.json
  (for the upstream nginx to serve at BENCH_JWKS_URI) and `Bearer <token>` lines to
  OUT_DIR/../tokens.txt.
- BENCH_CRED=oauth2 BENCH_TOKEN_URL=URL: `bench-token` is an `oauth2ClientCredentials` provider
  (client `bench`, `client_secret_post`) at BENCH_TOKEN_URL, which answers with the upstream
  token, instead of a `secret`.
- BENCH_POLICIES=N: pad the AccessPolicies to N in all (bench/streams' reload phase: 10,000)
  with one Allow per extra user `x<k>` on one of the other servers (tools `read_*` and
  `v<BENCH_VARIANT>_*`, so a new BENCH_VARIANT rewrites every one of them and changes the
  configuration's version, leaving what the `bench` users may do unchanged).
- BENCH_POLICY_FILES=K: split the AccessPolicies over K files `policies-NNN.yaml` (default 1:
  `policies.yaml`). Each file is written next to itself and renamed into place (atomic per
  file), and stale policy files are removed, so rewriting a watched directory is safe.
"""

import hashlib
import os
import secrets
import sys

out, upstream, public_url, audit_file, token = sys.argv[1:6]
users = int(sys.argv[6]) if len(sys.argv) > 6 else 1000
auth = os.environ.get("BENCH_AUTH", "apikey")
cred = os.environ.get("BENCH_CRED", "secret")
others = 9
os.makedirs(out, exist_ok=True)

def write_atomic(path, text):
    """Write next to the file (a dot file: not a manifest) and rename into place."""
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)

def doc(*lines):
    return "\n".join(lines) + "\n---\n"

gw = doc(
    "apiVersion: gatehouse.dev/v1alpha1",
    "kind: McpGateway",
    "metadata: {name: bench, namespace: default}",
    "spec:",
    f"  publicUrl: {public_url}",
    f"  trustProviders: [{'oidc-users' if auth == 'oidc' else 'api-keys'}]",
    f"  audit: {{sink: File, path: {audit_file}}}" if audit_file != "none" else "  audit: {sink: None}",
)
if auth == "oidc":
    gw += doc(
        "apiVersion: gatehouse.dev/v1alpha1",
        "kind: TrustProvider",
        "metadata: {name: oidc-users, namespace: default}",
        "spec:",
        "  oidc:",
        f"    issuer: {os.environ['BENCH_ISSUER']}",
        f"    jwksUri: {os.environ['BENCH_JWKS_URI']}",
    )
else:
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
if cred == "oauth2":
    gw += doc(
        "apiVersion: gatehouse.dev/v1alpha1",
        "kind: CredentialProvider",
        "metadata: {name: bench-token, namespace: default}",
        "spec:",
        "  oauth2ClientCredentials:",
        f"    tokenUrl: {os.environ['BENCH_TOKEN_URL']}",
        "    clientId: bench",
        "    authMethod: client_secret_post",
        "    clientSecretRef: {name: bench-upstream-token, key: token}",
    )
else:
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
write_atomic(os.path.join(out, "gateway.yaml"), gw.removesuffix("---\n"))

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
write_atomic(os.path.join(out, "users.yaml"), "\n".join(secret) + "\n")
with open(keys_path, "w") as f:
    f.write("\n".join(keys) + "\n")

if auth == "oidc":
    import base64, json, time
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    def uint(n):
        return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_numbers()
    kid = "bench-" + secrets.token_hex(4)
    base = os.path.dirname(os.path.abspath(out))
    with open(os.path.join(base, "jwks.json"), "w") as f:
        json.dump({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                             "n": uint(pub.n), "e": uint(pub.e)}]}, f)
    header = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
    now = int(time.time())
    tokens = []
    for i in range(users):
        claims = {"iss": os.environ["BENCH_ISSUER"], "sub": f"u{i:05d}", "aud": public_url,
                  "iat": now - 60, "exp": now + 24 * 3600,
                  "email": f"u{i:05d}@bench.example"}
        signing_input = header + "." + b64(json.dumps(claims).encode())
        sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        tokens.append("Bearer " + signing_input + "." + b64(sig))
    with open(os.path.join(base, "tokens.txt"), "w") as f:
        f.write("\n".join(tokens) + "\n")

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
target = int(os.environ.get("BENCH_POLICIES", "0"))
variant = os.environ.get("BENCH_VARIANT", "0")
for k in range(max(0, target - len(policies))):
    policy(f"x{k:05d}-other", "Allow", [f"x{k:05d}"], f"other-{k % others + 1}",
           ["read_*", f"v{variant}_*"], "bench-token")
files = max(1, int(os.environ.get("BENCH_POLICY_FILES", "1")))
names = ["policies.yaml"] if files == 1 else [f"policies-{i:03d}.yaml" for i in range(files)]
per = -(-len(policies) // files)
for i, name in enumerate(names):
    write_atomic(os.path.join(out, name), "".join(policies[i * per:(i + 1) * per]).removesuffix("---\n"))
for stale in os.listdir(out):
    if stale.startswith("policies") and stale.endswith(".yaml") and stale not in names:
        os.remove(os.path.join(out, stale))
print(f"{users} users, {len(policies)} AccessPolicies in {len(names)} file(s), {others + 1} McpServers in {out}")
