"""What the ``/users`` routes accept and answer: a gateway-shaped user, never Auth0's raw one.

Self-service views carry the profile only; the admin view adds ``blocked``, ``app_metadata``,
the login count and the identities (connection and provider, never a provider's tokens).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Self

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.clients.management import Auth0User

#: Largest ``user_metadata`` / ``app_metadata`` the gateway forwards, as compact JSON.
MAX_METADATA_BYTES = 16 * 1024

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


def _special_use_domains_pattern() -> str:
    """A pattern refusing what the email validator refuses beyond the email format: an address
    in a special-use domain (RFC 6761: ``.test``, ``.local``, ...), case-insensitively, written
    with character classes because ECMA-262 patterns (OpenAPI's) have no inline flags."""
    names = (
        "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in name)
        for name in SPECIAL_USE_DOMAIN_NAMES
    )
    return rf"^(?![\s\S]*[@.](?:{'|'.join(names)})$)"


#: An email address as the gateway accepts it: a valid address outside the special-use domains,
#: which no mail reaches; the OpenAPI document says both.
Email = Annotated[
    EmailStr,
    Field(
        max_length=320,
        description="An email address; not in a special-use domain such as .test or .local.",
        json_schema_extra={"pattern": _special_use_domains_pattern()},
    ),
]
Password = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Picture = Annotated[AnyHttpUrl, Field(max_length=2048)]
Metadata = dict[str, Any]


def _bounded_metadata(value: Metadata | None) -> Metadata | None:
    if value is not None and len(json.dumps(value, separators=(",", ":"))) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is limited to {MAX_METADATA_BYTES} bytes of JSON")
    return value


def _patch_schema(schema: dict[str, Any]) -> None:
    """The JSON schema of a patch as its validators see it: no field is nullable, one at least."""
    schema["minProperties"] = 1
    for field in schema.get("properties", {}).values():
        options = [o for o in field.pop("anyOf", []) if o.get("type") != "null"]
        if len(options) == 1:
            field.update(options[0])
        elif options:
            field["anyOf"] = options
        if "default" in field and field["default"] is None:
            del field["default"]


class _Patch(BaseModel):
    """A partial update: unknown fields are refused, ``null`` is refused, one field at least."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_patch_schema)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [name for name, value in data.items() if value is None]
            if nulls:
                raise ValueError(f"null is not allowed for: {', '.join(nulls)}")
        return data

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields sent, JSON-ready, for ``PATCH /api/v2/users/{id}``."""
        return self.model_dump(mode="json", exclude_unset=True)


class SignupRequest(BaseModel):
    """A new account in the configured database connection."""

    model_config = ConfigDict(extra="forbid")

    email: Email = Field(examples=["jane@example.com"])
    password: Password = Field(examples=["Correct-Horse-9"])
    name: Name = Field(examples=["Jane Doe"])


class SelfPatch(_Patch):
    """What users may change about themselves."""

    name: Name | None = Field(default=None, examples=["Jane Q. Doe"])
    nickname: Name | None = Field(default=None, examples=["jq"])
    picture: Picture | None = None
    user_metadata: Metadata | None = Field(
        default=None,
        description="Merged one level deep; a key set to null is removed.",
        examples=[{"theme": "dark", "language": None}],
    )

    _bounded = field_validator("user_metadata")(_bounded_metadata)


class AdminPatch(_Patch):
    """What an admin with ``update:users`` may change; ``blocked`` blocks or unblocks."""

    name: Name | None = None
    nickname: Name | None = None
    given_name: Name | None = None
    family_name: Name | None = None
    picture: Picture | None = None
    email: Email | None = None
    email_verified: bool | None = None
    blocked: bool | None = Field(
        default=None,
        description="true blocks the account and ends its sessions; false unblocks.",
        examples=[True],
    )
    user_metadata: Metadata | None = None
    app_metadata: Metadata | None = None

    _bounded = field_validator("user_metadata", "app_metadata")(_bounded_metadata)


class PasswordChange(BaseModel):
    """The current password (checked by a login) and the new one."""

    model_config = ConfigDict(extra="forbid")

    current_password: Password = Field(examples=["Correct-Horse-9"])
    new_password: Password = Field(examples=["Battery-Staple-10"])


class AccountDeletion(BaseModel):
    """The current password: deleting an account takes more than a (possibly stolen) token."""

    model_config = ConfigDict(extra="forbid")

    current_password: Password = Field(examples=["Correct-Horse-9"])


class UserOut(BaseModel):
    """A user's own profile."""

    user_id: str = Field(examples=["auth0|65a1b2c3d4e5f6a7b8c9d0e1"])
    email: str | None = Field(default=None, examples=["jane@example.com"])
    email_verified: bool | None = None
    name: str | None = Field(default=None, examples=["Jane Doe"])
    nickname: str | None = Field(default=None, examples=["jane"])
    picture: str | None = None
    user_metadata: Metadata = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_login: datetime | None = None

    @classmethod
    def from_auth0(cls, user: Auth0User) -> Self:
        """The gateway's view of a Management API user."""
        return cls.model_validate(user.model_dump(include=set(cls.model_fields)))


class IdentityOut(BaseModel):
    """Where an account lives, without a provider's tokens."""

    connection: str | None = None
    provider: str | None = None
    is_social: bool | None = None


class AdminUserOut(UserOut):
    """A user as an admin sees it."""

    blocked: bool = False
    app_metadata: Metadata = Field(default_factory=dict)
    logins_count: int | None = None
    identities: list[IdentityOut] = Field(default_factory=list)

    @classmethod
    def from_auth0(cls, user: Auth0User) -> Self:
        """The admin view of a Management API user."""
        base = user.model_dump(include=set(cls.model_fields) - {"identities"})
        identities = [
            IdentityOut(connection=i.connection, provider=i.provider, is_social=i.is_social)
            for i in user.identities
        ]
        return cls.model_validate({**base, "identities": identities})


class UserPageOut(BaseModel):
    """One page of a user search."""

    users: list[AdminUserOut]
    page: int = Field(description="0-based.", examples=[0])
    per_page: int = Field(examples=[50])
    total: int = Field(examples=[1])
