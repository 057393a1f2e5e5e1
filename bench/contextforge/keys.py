"""Key material for bench/peer-contextforge (run with the ContextForge venv's python: it needs
PyJWT and cryptography, which ContextForge depends on).

Usage: keys.py OUT_DIR ISSUER AUDIENCE_1,AUDIENCE_2 SUBJECT

Writes into OUT_DIR: an RSA-2048 key pair (private.pem, public.pem), the public key as a JWKS
(jwks/jwks.json) with a minimal OIDC discovery document
(jwks/.well-known/openid-configuration), and one RS256 bearer token (token.txt) valid for 3 h:
iss ISSUER, aud [AUDIENCE_1, AUDIENCE_2], sub and email SUBJECT, a jti, and ContextForge's
`user` claim ({email, is_admin: true}) and `teams: null`, as its create_jwt_token --admin writes, so the same
token is accepted by both gateways.
"""

import json
import os
import sys
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

out, issuer, audiences, subject = sys.argv[1:5]
os.makedirs(os.path.join(out, "jwks", ".well-known"), exist_ok=True)
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                         serialization.NoEncryption())
pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
with open(os.path.join(out, "private.pem"), "wb") as f:
    f.write(priv)
with open(os.path.join(out, "public.pem"), "wb") as f:
    f.write(pub)
jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
jwk.update({"kid": "bench-1", "use": "sig", "alg": "RS256"})
with open(os.path.join(out, "jwks", "jwks.json"), "w") as f:
    json.dump({"keys": [jwk]}, f)
with open(os.path.join(out, "jwks", ".well-known", "openid-configuration"), "w") as f:
    json.dump({"issuer": issuer, "jwks_uri": issuer + "/jwks.json",
               "id_token_signing_alg_values_supported": ["RS256"]}, f)
now = int(time.time())
claims = {
    "iss": issuer,
    "aud": audiences.split(","),
    "sub": subject,
    "email": subject,
    "iat": now,
    "nbf": now - 5,
    "exp": now + 3 * 3600,
    "jti": str(uuid.uuid4()),
    "user": {"email": subject, "full_name": "Bench User", "is_admin": True, "auth_provider": "cli"},
    # `teams: null` + is_admin is ContextForge's unrestricted admin token (what its
    # create_jwt_token --admin writes); without the key it treats the token as public-only.
    "teams": None,
}
token = jwt.encode(claims, priv, algorithm="RS256", headers={"kid": "bench-1"})
with open(os.path.join(out, "token.txt"), "w") as f:
    f.write(token)
