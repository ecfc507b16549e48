"""Venues: the protected resource of the gateway, kept in the venue database."""
