// node-auth0's password grant, ID-token checks included, against an Auth0 tenant (the emulator).
// Usage: node login.mjs '{"domain": "127.0.0.1:8443", "clientId": ..., "clientSecret": ...,
//   "username": ..., "password": ..., "realm": ..., "audience": ...}'
// Prints one JSON line: {"ok": true, ...} on success, {"ok": false, ...} (exit 1) otherwise.
// A private CA is trusted through NODE_EXTRA_CA_CERTS.
import { AuthenticationClient } from 'auth0';

const options = JSON.parse(process.argv[2] ?? '{}');
const auth = new AuthenticationClient({
  domain: options.domain,
  clientId: options.clientId,
  clientSecret: options.clientSecret,
});

function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}

try {
  // passwordGrant verifies the ID token (signature from the JWKS, iss, aud, exp) before returning
  const { data } = await auth.oauth.passwordGrant({
    username: options.username,
    password: options.password,
    realm: options.realm,
    audience: options.audience,
    scope: 'openid',
  });
  console.log(
    JSON.stringify({
      ok: true,
      token_type: data.token_type,
      scope: data.scope,
      access_token_claims: claims(data.access_token),
      id_token_claims: claims(data.id_token),
    }),
  );
} catch (error) {
  // a TLS failure is a few causes deep: FetchError, then fetch's TypeError, then the socket's
  let cause = error;
  while (cause.cause) cause = cause.cause;
  console.log(
    JSON.stringify({
      ok: false,
      name: error.name,
      message: error.message,
      error: error.error ?? null,
      cause: cause === error ? null : (cause.code ?? cause.message ?? null),
    }),
  );
  process.exitCode = 1;
}
