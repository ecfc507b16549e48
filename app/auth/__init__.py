"""The auth domain: principals, the request path from token to principal, logins, refreshes and
logouts, and the durable session store with its revocations."""
