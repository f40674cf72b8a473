"""Who did something: a user, an upstream API client, or the system itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from app.intake.models import ApiClient
    from app.users import User


@dataclass(frozen=True)
class Actor:
    kind: Literal["user", "client", "system"]
    id: int | None = None
    role: str | None = None
    name: str = ""

    @classmethod
    def user(cls, user: User) -> Actor:
        return cls("user", user.id, user.role, user.email)

    @classmethod
    def client(cls, client: ApiClient) -> Actor:
        return cls("client", client.id, None, client.name)

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls("system", None, None, name)

    def __str__(self) -> str:
        return f"system:{self.name}" if self.kind == "system" else f"{self.kind}:{self.id}"
