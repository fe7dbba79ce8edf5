"""Unit tests run inside the enclave (by the tour, and with `-m unittest`)."""
import unittest

from helpers.mathutil import fib, primes


class MathTests(unittest.TestCase):
    def test_primes(self):
        self.assertEqual(primes(30), [2, 3, 5, 7, 11, 13, 17, 19, 23, 29])

    def test_fib(self):
        self.assertEqual([fib(i) for i in range(10)], [0, 1, 1, 2, 3, 5, 8, 13, 21, 34])

    def test_raises(self):
        with self.assertRaises(ZeroDivisionError):
            1 / 0

    @unittest.skip("skipped on purpose")
    def test_skipped(self):
        self.fail("not run")

    @unittest.expectedFailure
    def test_expected_failure(self):
        self.assertEqual(1, 2)


if __name__ == "__main__":
    unittest.main()
