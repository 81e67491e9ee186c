"""Seal and open store values with AES-GCM (needs ``cryptography``).

A sealed value is ``version byte ‖ 12-byte random nonce ‖ ciphertext+tag``. The associated
data binds it to its entry's name and generation, so a value copied from another entry,
moved to another generation, truncated or altered does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ("open_sealed", "seal")

_VERSION = b"\x01"
_NONCE = 12


def _aad(name: str, gen: int) -> bytes:
    return b"requests_apivideo/seal/v1\0" + name.encode() + b"\0" + str(gen).encode()


def seal(key: bytes, data: bytes, *, name: str, gen: int) -> bytes:
    """Return ``data`` encrypted under ``key`` (32 bytes) for entry ``name``, generation ``gen``."""
    nonce = os.urandom(_NONCE)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, data, _aad(name, gen))


def open_sealed(key: bytes, blob: bytes, *, name: str, gen: int) -> bytes | None:
    """Return what :func:`seal` sealed, or ``None`` if ``blob`` does not open for this entry."""
    if len(blob) < 1 + _NONCE + 16 or blob[:1] != _VERSION:
        return None
    nonce, sealed = blob[1 : 1 + _NONCE], blob[1 + _NONCE :]
    try:
        return AESGCM(key).decrypt(nonce, sealed, _aad(name, gen))
    except (InvalidTag, ValueError):
        return None
