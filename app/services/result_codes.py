"""Result codes and delete codes of kept visitor submissions.

* Result codes are 8 characters of Crockford base32 (40 random bits; input is normalised, so
  ``O``/``0`` and ``I``/``L``/``1`` are the same).
* Delete codes come from :mod:`secrets` (80 random bits) and are stored only as a salted scrypt
  hash ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`` (16-byte random salt per row); they are
  compared with :func:`hmac.compare_digest`. A delete code is ``<result code>-<secret>``, so the
  delete code alone finds its row (the result code is not secret; the 80-bit secret is).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_NORMALISE = str.maketrans({"O": "0", "I": "1", "L": "1"})
RESULT_CODE_LENGTH = 8
DELETE_SECRET_LENGTH = 16
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def new_result_code() -> str:
    return "".join(secrets.choice(CROCKFORD) for _ in range(RESULT_CODE_LENGTH))


def normalise_code(code: str | None) -> str:
    """Upper-case, drop spaces and dashes, map O->0 and I/L->1 (Crockford base32)."""
    return "".join((code or "").upper().split()).replace("-", "").translate(_NORMALISE)


def new_delete_code(result_code: str) -> str:
    secret = "".join(secrets.choice(CROCKFORD) for _ in range(DELETE_SECRET_LENGTH))
    groups = "-".join(secret[i:i + 4] for i in range(0, DELETE_SECRET_LENGTH, 4))
    return f"{result_code}-{groups}"


def split_delete_code(delete_code: str) -> tuple[str, str] | None:
    flat = normalise_code(delete_code)
    if len(flat) != RESULT_CODE_LENGTH + DELETE_SECRET_LENGTH or any(c not in CROCKFORD for c in flat):
        return None
    return flat[:RESULT_CODE_LENGTH], flat[RESULT_CODE_LENGTH:]


def hash_delete_code(delete_code: str, salt: bytes | None = None) -> str:
    """Salted scrypt hash of the normalised code: ``scrypt$n$r$p$salt_hex$hash_hex``."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(normalise_code(delete_code).encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                            p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_delete_code(delete_code: str, stored: str) -> bool:
    """Constant-time check of a delete code against its stored hash."""
    try:
        scheme, n, r, p, salt_hex, hash_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(normalise_code(delete_code).encode(), salt=bytes.fromhex(salt_hex), n=int(n),
                                r=int(r), p=int(p), dklen=len(hash_hex) // 2)
    except (ValueError, AttributeError):
        return False
    return hmac.compare_digest(digest.hex(), hash_hex)


_DUMMY_HASH = None


def burn_time(delete_code: str) -> None:
    """Spend a hash's time when no row matched, so timing does not tell whether a code exists."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_delete_code("0" * (RESULT_CODE_LENGTH + DELETE_SECRET_LENGTH))
    verify_delete_code(delete_code or "", _DUMMY_HASH)
