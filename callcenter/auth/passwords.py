"""Password hashing with scrypt (memory-hard KDF, in the standard library).

Stored form: ``scrypt$n$r$p$salt_b64$hash_b64`` so parameters can be raised later and old hashes
still verify. Hashing is deliberately slow: callers run it in an executor.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

N, R, P, DKLEN = 2**14, 8, 1, 32
MIN_LENGTH = 10
MAX_LENGTH = 1024


class WeakPassword(ValueError):
    pass


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"password must have at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=DKLEN)
    return "$".join(
        ["scrypt", str(N), str(R), str(P), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()]
    )


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, hash_b64 = stored.split("$")
        if scheme != "scrypt" or len(password) > MAX_LENGTH:
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
        digest = hashlib.scrypt(
            password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


@functools.cache
def dummy_hash() -> str:
    """Verified against when the user does not exist, so both cases take the same time."""
    return hash_password(secrets.token_urlsafe(16))


def token_digest(token: str) -> str:
    """API tokens and session ids are random; a plain SHA-256 is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()
