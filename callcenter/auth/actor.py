"""Who is acting: the authenticated user (or the system itself) as the domain sees it."""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.auth.roles import Permission, Role, allowed
from callcenter.errors import Forbidden


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    username: str
    role: Role
    agency_id: int | None = None

    def can(self, permission: Permission) -> bool:
        return allowed(self.role, permission)

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise Forbidden(f"role '{self.role}' may not do this ({permission})")


SYSTEM = Actor(user_id=None, username="system", role=Role.ADMIN)
