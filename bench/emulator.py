"""The emulator as the benchmark runs it: the demo tenant, with the bench's tokens minted first.

Scenario (e) needs tens of thousands of distinct valid access tokens. Asking ``/oauth/token``
for each would measure the emulator's password hashing, so this launcher mints them before it
serves, with the emulator's own issuing code (:func:`emulator.tokens.token_response`, what a
password-realm grant answers): the same claims, the same signing key, published in the JWKS.

Two demo users share the work. Tokens of one user issued in the same second would be identical
(the emulator's tokens carry no ``jti`` and RS256 signatures are deterministic), so each token's
``iat`` is one second earlier than the previous one's of that user: as if the logins had happened
over the last hours. The venue API's token lifetime is raised to a day (Auth0 allows up to 30
days) so that none of them is expired; signing runs in one process per CPU.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import jwt
import uvicorn

from emulator.app import create_emulator_app
from emulator.state import Tenant
from emulator.tokens import Issued, token_response, user_permissions, user_scopes

AUDIENCE = "https://api.venues.local"
CLIENT_ID = "local-gateway"
#: The user of the bench's "cached token" first, then the other demo user.
USERS = ("viewer@venues.local", "admin@venues.local")
TOKEN_LIFETIME_S = 86_400
_SCOPES = ["openid", "profile", "email"]

# the tenant the forked minting processes sign with (a copy of the parent's, keys included)
_forked: dict[str, Tenant] = {}


def bench_tenant(issuer: str) -> Tenant:
    """The demo tenant under ``issuer``, its venue API issuing tokens valid for a day."""
    tenant = Tenant.from_file(None, issuer)
    tenant.resource_servers[AUDIENCE].token_lifetime = TOKEN_LIFETIME_S
    return tenant


def mint(tenant: Tenant, start: int, stop: int, *, now: int) -> list[str]:
    """Tokens ``start`` to ``stop - 1`` of the bench's sequence (the same for any split).

    Token ``i`` is user ``i % 2``'s, issued ``i // 2`` seconds before ``now``: the claims of
    one real grant per user (:func:`emulator.tokens.token_response`), with ``iat`` and ``exp``
    moved back, signed by the tenant's current key.
    """
    templates = [_claims_of_a_grant(tenant, email) for email in USERS]
    tokens = []
    for index in range(start, stop):
        template = templates[index % len(templates)]
        iat = now - index // len(templates)
        lifetime = int(template["exp"]) - int(template["iat"])
        tokens.append(tenant.sign({**template, "iat": iat, "exp": iat + lifetime}))
    return tokens


def _claims_of_a_grant(tenant: Tenant, email: str) -> dict[str, Any]:
    client = tenant.clients[CLIENT_ID]
    api = tenant.resource_servers[AUDIENCE]
    user = next(u for u in tenant.users.values() if u.email == email)
    scopes = user_scopes(_SCOPES, api=api, user=user, client=client, password_exchange=True)
    issued = Issued(client, api, scopes, "password", user, user_permissions(api, user))
    token = str(token_response(tenant, issued)["access_token"])
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _mint_chunk(bounds: tuple[int, int, int]) -> list[str]:
    start, stop, now = bounds
    return mint(_forked["tenant"], start, stop, now=now)


def mint_in_parallel(tenant: Tenant, count: int) -> list[str]:
    """``count`` distinct tokens, signed by one forked process per CPU."""
    _forked["tenant"] = tenant
    processes = max(1, min(os.cpu_count() or 1, count // 500))
    step = -(-count // processes)
    now = int(time.time())
    chunks = [(lo, min(lo + step, count), now) for lo in range(0, count, step)]
    if processes == 1:
        return mint(tenant, 0, count, now=now)
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        return [token for chunk in pool.map(_mint_chunk, chunks) for token in chunk]


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.emulator --port P --mint N --tokens-out FILE [--issuer URL]``."""
    parser = argparse.ArgumentParser(description="The emulator with the bench's tokens.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", default=None, help="default http://HOST:PORT/")
    parser.add_argument("--mint", type=int, default=1, help="how many tokens to mint")
    parser.add_argument("--tokens-out", type=Path, required=True)
    args = parser.parse_args(argv)
    tenant = bench_tenant(args.issuer or f"http://{args.host}:{args.port}/")
    tokens = mint_in_parallel(tenant, max(1, args.mint))
    partial = args.tokens_out.with_suffix(".tmp")
    partial.write_text("\n".join(tokens) + "\n")
    partial.replace(args.tokens_out)  # the runner waits for this file to appear whole
    uvicorn.run(
        create_emulator_app(tenant),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
