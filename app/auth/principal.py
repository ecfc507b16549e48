"""The principal: who is calling, with what permissions, until when."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Principal(BaseModel):
    """A validated caller, as cached under the hash of its access token."""

    model_config = ConfigDict(frozen=True)

    sub: str = Field(description="The Auth0 user id, e.g. auth0|abc.")
    email: str | None = None
    name: str | None = None
    permissions: tuple[str, ...] = Field(
        default=(), description="RBAC permissions from the access token."
    )
    scopes: tuple[str, ...] = Field(default=(), description="The token's granted scopes.")
    client_id: str | None = Field(default=None, description="The client the token was issued to.")
    expires_at: int = Field(description="The token's exp, Unix seconds.")
    issued_at: int | None = Field(default=None, description="The token's iat, Unix seconds.")
    opaque: bool = Field(default=False, description="True for a /userinfo-only opaque token.")

    def has(self, *permissions: str) -> bool:
        """True when every one of ``permissions`` is among the principal's RBAC permissions.

        Scopes never grant a permission here: with RBAC the ``permissions`` claim is the source
        of truth (:attr:`~settings.Auth0Settings.scopes_as_permissions` folds scopes into
        ``permissions`` when the principal is made, for tenants without RBAC).
        """
        return all(p in self.permissions for p in permissions)

    def to_bytes(self) -> bytes:
        """Serialise for the cache."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Principal:
        """Read back what :meth:`to_bytes` wrote."""
        return cls.model_validate_json(raw)
