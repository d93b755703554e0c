"""How Bria signs a webhook: HMAC-SHA256 over ``{id}.{timestamp}.{body}`` with a key derived from the token.

The key is HMAC-SHA256(key = the request's ``api_token``, message = ``bria-webhook-signing-v1``);
the ``Bria-Webhook-Signature`` header carries ``v1=<base64 digest>``. The official SDK's
``bria_client.toolkit.verify_webhook_signature`` checks exactly this (the tests prove it with
that function).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SIGNING_SALT = b"bria-webhook-signing-v1"
ID_HEADER = "Bria-Webhook-Id"
TIMESTAMP_HEADER = "Bria-Webhook-Timestamp"
SIGNATURE_HEADER = "Bria-Webhook-Signature"


def signing_key(api_token: str) -> bytes:
    """The key a token's webhooks are signed with (the token itself is never sent)."""
    return hmac.new(api_token.encode(), SIGNING_SALT, hashlib.sha256).digest()


def signature(key: bytes, webhook_id: str, timestamp: int | str, body: bytes) -> str:
    """The ``Bria-Webhook-Signature`` value for one delivery: ``v1=<base64 HMAC-SHA256>``."""
    message = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1=" + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def signed_headers(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header of one delivery, in the order they are sent."""
    return {
        "Content-Type": "application/json",
        ID_HEADER: webhook_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(key, webhook_id, timestamp, body),
    }


def verify(api_token: str, webhook_id: str, timestamp: str, signature_header: str, body: bytes) -> bool:
    """Whether a delivery's signature is right: the fake's own check, for receivers without the SDK."""
    expected = signature(signing_key(api_token), webhook_id, timestamp, body)
    given = (part.strip() for part in signature_header.split(","))
    return any(hmac.compare_digest(part, expected) for part in given)
