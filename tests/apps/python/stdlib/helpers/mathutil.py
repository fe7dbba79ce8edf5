"""A module of the application, imported by the tour and by the unit tests."""


def primes(n):
    """The primes below n (a sieve)."""
    sieve = bytearray([1]) * n
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(n ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i::i] = bytearray(len(sieve[i * i::i]))
    return [i for i, v in enumerate(sieve) if v]


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
