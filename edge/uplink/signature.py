"""Ed25519 signatures of platform commands: the canonical bytes, signing, verifying, loading the key.

A signed message is a JSON object with a "signature" key: the standard, padded base64 of the
Ed25519 signature over canonical(message without "signature"), where canonical is
json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) encoded as UTF-8.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from edge.errors import KeyUnusable

SIGNATURE_KEY = "signature"
_MAX_KEY_FILE = 64 * 1024  # a PEM public key is ~113 bytes; anything huge is not one


def canonical(obj: dict[str, Any]) -> bytes:
    """The bytes that are signed: compact JSON, keys sorted, UTF-8, without the signature key."""
    body = {k: v for k, v in obj.items() if k != SIGNATURE_KEY}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(private_key: Ed25519PrivateKey, obj: dict[str, Any]) -> dict[str, Any]:
    """Return obj with its "signature" (base64 Ed25519 over canonical(obj)) added."""
    signature = private_key.sign(canonical(obj))
    return {**obj, SIGNATURE_KEY: base64.b64encode(signature).decode("ascii")}


def verify(public_key: Ed25519PublicKey, message: dict[str, Any]) -> bool:
    """True if message carries a valid signature of its other keys by public_key."""
    encoded = message.get(SIGNATURE_KEY)
    if not isinstance(encoded, str):
        return False
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):  # not base64, or non-ASCII characters
        return False
    if len(signature) != 64:
        return False
    try:
        public_key.verify(signature, canonical(message))
    except InvalidSignature:
        return False
    return True


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read an Ed25519 public key: a PEM file, or a file holding the 32 raw key bytes in base64."""
    try:
        with path.open("rb") as file:
            data = file.read(_MAX_KEY_FILE + 1)
    except OSError as err:
        raise KeyUnusable(str(path), f"cannot read: {err.strerror or err}") from err
    if len(data) > _MAX_KEY_FILE:
        raise KeyUnusable(str(path), f"larger than {_MAX_KEY_FILE} bytes: not a public key")
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        return _from_pem(path, text)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise KeyUnusable(str(path), "neither PEM nor base64 of the 32 raw Ed25519 key bytes") from err
    if len(raw) != 32:
        raise KeyUnusable(str(path), f"base64 decodes to {len(raw)} bytes; an Ed25519 public key has 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def _from_pem(path: Path, text: bytes) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(text)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise KeyUnusable(str(path), f"not a readable PEM public key: {err}") from err
    if not isinstance(key, Ed25519PublicKey):
        raise KeyUnusable(str(path), f"a {type(key).__name__}, not an Ed25519 public key")
    return key
