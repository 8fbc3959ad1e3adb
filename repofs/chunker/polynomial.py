"""Polynomials over GF(2) as Python ints, bit i = coefficient of x^i.

Only what the chunker and ``init`` need: degree, reduction, multiplication modulo a
polynomial, the irreducibility test restic applies to a repository's chunker polynomial, and
the random choice of one (FORMAT.md 9.2 and 9.5).
"""

from __future__ import annotations

import secrets

#: Degree of the polynomials restic picks for new repositories.
RANDOM_DEGREE = 53
_MAX_TRIES = 1_000_000


def degree(p: int) -> int:
    """Degree of ``p``; -1 for the zero polynomial."""
    return p.bit_length() - 1


def mod(x: int, p: int) -> int:
    """``x`` reduced modulo ``p`` (``p`` must not be zero)."""
    k = degree(p)
    if k < 0:
        raise ZeroDivisionError("polynomial modulo zero")
    while (d := degree(x)) >= k:
        x ^= p << (d - k)
    return x


def mulmod(a: int, b: int, p: int) -> int:
    """``a * b mod p`` (carry-less product, then reduced)."""
    a = mod(a, p)
    b = mod(b, p)
    k = degree(p)
    result = 0
    while b:
        if b & 1:
            result ^= a
        b >>= 1
        a <<= 1
        if a >> k:
            a ^= p
    return result


def gcd(a: int, b: int) -> int:
    """Greatest common divisor of two polynomials."""
    while b:
        a, b = b, mod(a, b)
    return a


def is_irreducible(p: int) -> bool:
    """True when ``p`` has no factor other than 1 and itself (Ben-Or's test).

    ``p`` is reducible exactly when some factor has degree i <= deg(p)/2, and then that factor
    divides ``x^(2^i) - x``; so check gcd(p, x^(2^i) + x) for each such i.
    """
    n = degree(p)
    if n < 1:
        return False
    x = 0b10
    q = x
    for _ in range(n // 2):
        q = mulmod(q, q, p)
        if gcd(p, q ^ x) != 1:
            return False
    return True


def random_polynomial() -> int:
    """A random irreducible polynomial of degree 53, chosen as restic's ``init`` does.

    Draws 64 random bits, keeps bits 0..53, forces bits 53 and 0, retries until irreducible.
    """
    for _ in range(_MAX_TRIES):
        p = int.from_bytes(secrets.token_bytes(8), "little")
        p &= (1 << (RANDOM_DEGREE + 1)) - 1
        p |= (1 << RANDOM_DEGREE) | 1
        if is_irreducible(p):
            return p
    # About one draw in 27 is irreducible: this line is never reached in practice.
    raise RuntimeError("no irreducible polynomial found")  # pragma: no cover
