"""AES-256-CTR + Poly1305-AES, as restic seals every encrypted object (FORMAT.md §3).

Sealed layout: IV (16) ‖ ciphertext ‖ MAC (16). The MAC covers the ciphertext only; the IV
enters through the Poly1305 nonce ``s = AES-128(mac.k, IV)``. The MAC is verified, in constant
time, before a single byte is decrypted.

The work is done by ``_seal``: OpenSSL's ciphers and MAC called from C without the GIL
(~0.5 us per call, 3 GB/s on large objects here). Where that module cannot find them in
OpenSSL, the cryptography package does it (~20 us per call, holding the GIL); it also serves
the tests as the reference.
"""

from __future__ import annotations

import base64
import os
import threading
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.poly1305 import Poly1305

from . import _seal

NATIVE = _seal.available()

IV_SIZE = 16
MAC_SIZE = 16
OVERHEAD = IV_SIZE + MAC_SIZE

_R_MASK = bytes.fromhex("ffffff0ffcffff0ffcffff0ffcffff0f")


class MacError(Exception):
    """A sealed object whose MAC does not match: wrong key or damaged bytes."""


def _mask_r(r: bytes) -> bytes:
    return bytes(a & b for a, b in zip(r, _R_MASK))


class Key:
    """Encryption key (32 bytes) and Poly1305-AES MAC key (k: 16, r: 16, r masked)."""

    __slots__ = ("encrypt", "mac_k", "mac_r", "_aes", "_nonce_cipher", "_local", "_native")

    def __init__(self, encrypt: bytes, mac_k: bytes, mac_r: bytes, native: bool = NATIVE) -> None:
        if len(encrypt) != 32 or len(mac_k) != 16 or len(mac_r) != 16:
            raise ValueError("invalid key sizes")
        self.encrypt = encrypt
        self.mac_k = mac_k
        self.mac_r = _mask_r(mac_r)
        # Built once: per-object set-up costs more than the work on a small blob.
        self._aes = algorithms.AES(encrypt)
        self._nonce_cipher = Cipher(algorithms.AES(mac_k), modes.ECB())
        self._local = threading.local()  # one reusable ECB encryptor per thread
        self._native = _seal.SealKey(encrypt, mac_k, self.mac_r) if native else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and (self.encrypt, self.mac_k, self.mac_r) == (
            other.encrypt, other.mac_k, other.mac_r)

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_user_key(cls, derived: bytes) -> Key:
        """The key a password derives: scrypt output of 64 bytes."""
        return cls(derived[:32], derived[32:48], derived[48:64])

    @classmethod
    def random(cls, native: bool = NATIVE) -> Key:
        return cls(os.urandom(32), os.urandom(16), os.urandom(16), native)

    @classmethod
    def from_json(cls, doc: dict) -> Key:
        """The master key JSON: {"mac":{"k":..,"r":..},"encrypt":..} (base64)."""
        key = cls(
            base64.b64decode(doc["encrypt"]),
            base64.b64decode(doc["mac"]["k"]),
            base64.b64decode(doc["mac"]["r"]),
        )
        if not any(key.encrypt) or not any(key.mac_k) or not any(key.mac_r):
            raise ValueError("master key has an all-zero part")
        return key

    def to_json(self) -> dict:
        b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
        return {"mac": {"k": b64(self.mac_k), "r": b64(self.mac_r)}, "encrypt": b64(self.encrypt)}

    @property
    def native(self) -> _seal.SealKey | None:
        """The C sealer for this key (None without it): ``open_blobs`` decodes whole ranges."""
        return self._native

    def _poly_key(self, iv: bytes) -> bytes:
        # ECB keeps no state between blocks, so one encryptor serves every nonce.
        enc = getattr(self._local, "ecb", None)
        if enc is None:
            enc = self._local.ecb = self._nonce_cipher.encryptor()
        return self.mac_r + enc.update(iv)

    def seal(self, plaintext: bytes | bytearray | memoryview) -> bytes:
        """Encrypt and authenticate: IV ‖ ciphertext ‖ MAC."""
        iv = os.urandom(IV_SIZE)
        while not any(iv):
            iv = os.urandom(IV_SIZE)
        if self._native is not None:
            return self._native.seal(iv, plaintext)
        enc = Cipher(self._aes, modes.CTR(iv)).encryptor()
        ct = enc.update(plaintext) + enc.finalize()
        # One join: `iv + ct + tag` would hold a second copy of a large blob for a moment.
        return b"".join((iv, ct, Poly1305.generate_tag(self._poly_key(iv), ct)))

    def open(self, sealed: bytes | bytearray | memoryview) -> bytes:
        """Check the MAC, then decrypt. Raises MacError on any mismatch."""
        view = memoryview(sealed)
        if len(view) < OVERHEAD:
            raise MacError("ciphertext too short")
        if not any(view[:IV_SIZE]):
            raise MacError("all-zero IV")
        if self._native is not None:
            plain = self._native.open(view)
            if plain is None:
                raise MacError("MAC mismatch")
            return plain
        iv = bytes(view[:IV_SIZE])
        ct = view[IV_SIZE:-MAC_SIZE]
        try:
            Poly1305.verify_tag(self._poly_key(iv), ct, bytes(view[-MAC_SIZE:]))
        except InvalidSignature:
            raise MacError("MAC mismatch") from None
        dec = Cipher(self._aes, modes.CTR(iv)).decryptor()
        return dec.update(ct) + dec.finalize()
