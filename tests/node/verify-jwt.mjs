// Verify a JWT minted by the gateway the way an upstream would: with `jose`, against the
// gateway's published JWKS, checking issuer and audience.
//
//   node verify-jwt.mjs <jwks-url> <issuer> <audience> <jwt>
//
// Prints {"header": …, "payload": …} on success; exits 1 with the reason otherwise.
import { createRemoteJWKSet, jwtVerify } from "jose";

const [jwksUrl, issuer, audience, jwt] = process.argv.slice(2);
try {
  const jwks = createRemoteJWKSet(new URL(jwksUrl));
  const { payload, protectedHeader } = await jwtVerify(jwt, jwks, { issuer, audience });
  console.log(JSON.stringify({ header: protectedHeader, payload }));
} catch (e) {
  console.error(`verification failed: ${e.code ?? ""} ${e.message}`);
  process.exit(1);
}
