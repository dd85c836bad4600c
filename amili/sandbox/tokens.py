"""JWT bearer tokens of the sandbox: issued and checked locally with a shared HS256 secret.

The real legacy API takes a JWT bearer token whose issuer is not documented (reference §2.1).
The sandbox signs its own with ``SandboxSettings.jwt_secret`` and checks signature, expiry,
issuer and audience, so a client's token handling (caching, refresh on 401) runs for real.
Only ``Authorization: Bearer`` is accepted; HTTP Basic (an older revision of the page) is not.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from amili.sandbox.settings import SandboxSettings

ALGORITHM = "HS256"


class TokenError(Exception):
    """A request's token is missing or not acceptable; ``str()`` says why (no token text)."""


def issue_token(
    settings: SandboxSettings, subject: str = "sandbox-client", ttl_seconds: int | None = None
) -> str:
    """A signed token the sandbox accepts until it expires (default ``token_ttl_seconds``)."""
    now = int(time.time())
    ttl = settings.token_ttl_seconds if ttl_seconds is None else ttl_seconds
    claims = {
        "sub": subject,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def verify_token(settings: SandboxSettings, token: str) -> dict[str, Any]:
    """The token's claims; raises :class:`TokenError` with a short reason when it is refused."""
    try:
        return jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token has expired") from None
    except jwt.InvalidSignatureError:
        raise TokenError("token signature is invalid") from None
    except jwt.InvalidAudienceError:
        raise TokenError("token audience is not accepted") from None
    except jwt.InvalidIssuerError:
        raise TokenError("token issuer is not accepted") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidAlgorithmError:
        raise TokenError(f"token algorithm is not {ALGORITHM}") from None
    except jwt.DecodeError:
        raise TokenError("token is malformed") from None
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"token is invalid ({type(exc).__name__})") from None


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization`` header value; :class:`TokenError` if there is none."""
    if not authorization:
        raise TokenError("missing bearer token (send 'Authorization: Bearer <token>')")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise TokenError("only 'Authorization: Bearer <token>' is accepted")
    token = token.strip()
    if not token:
        raise TokenError("missing bearer token (send 'Authorization: Bearer <token>')")
    return token
