#!/usr/bin/python3
"""A second, independent SIGSTRUCT implementation for conf's interop tests.

Written from the SDM's SIGSTRUCT table with nothing but the Python standard
library: the layout is built with struct, the signature is textbook RSA
(pow) over a hand-made PKCS#1 v1.5 encoding. It signs the way Intel's SDK
signer fills the fields (vendor, header type, attribute masks), which differ
from conf's own choices, so conf must accept them.

  sigstruct_ref.py sign N_HEX D_HEX MRENCLAVE_HEX ISVPRODID ISVSVN DEBUG YYYYMMDD VENDOR OUT
  sigstruct_ref.py verify FILE      -> JSON of the fields on stdout, exit 1 if invalid
"""

import hashlib
import json
import struct
import sys

SIZE = 1808
HEADER = bytes.fromhex("06000000E10000000000010000000000")
HEADER2 = bytes.fromhex("01010000600000006000000001000000")
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
KEY_BYTES = 384


def pkcs1_v15_sha256(digest):
    t = SHA256_DIGEST_INFO + digest
    return b"\x00\x01" + b"\xff" * (KEY_BYTES - len(t) - 3) + b"\x00" + t


def signed_part(sig):
    return sig[0:128] + sig[900:1028]


def le(n):
    return n.to_bytes(KEY_BYTES, "little")


def sign(n, d, mrenclave, isvprodid, isvsvn, debug, date, vendor):
    body = bytearray(SIZE)
    header = bytearray(HEADER)
    if debug:
        # Intel's signer marks debug builds in the last dword of HEADER.
        header[12:16] = struct.pack("<I", 1 << 31)
    body[0:16] = header
    struct.pack_into("<II", body, 16, vendor, int(date, 16))
    body[24:40] = HEADER2
    struct.pack_into("<I", body, 40, 0)  # SWDEFINED / hardware version
    struct.pack_into("<I", body, 512, 3)
    struct.pack_into("<II", body, 900, 0, 0xFFFFFFFF)  # MISCSELECT, MISCMASK
    flags = 0x4 | (0x2 if debug else 0)
    flags_mask = (~0x2) & 0xFFFFFFFFFFFFFFFF  # DEBUG not enforced
    xfrm, xfrm_mask = 0x3, 0xFFFFFFFFFFF9FD03
    struct.pack_into("<QQQQ", body, 928, flags, xfrm, flags_mask, xfrm_mask)
    body[960:992] = mrenclave
    struct.pack_into("<HH", body, 1024, isvprodid, isvsvn)
    body[128:512] = le(n)
    em = int.from_bytes(pkcs1_v15_sha256(hashlib.sha256(signed_part(body)).digest()), "big")
    s = pow(em, d, n)
    q1 = s * s // n
    q2 = (s * s * s - q1 * s * n) // n
    body[516:900] = le(s)
    body[1040:1424] = le(q1)
    body[1424:1808] = le(q2)
    return bytes(body)


def verify(sig):
    if len(sig) != SIZE:
        return "length %d" % len(sig)
    if sig[0:12] != HEADER[0:12] or sig[24:40] != HEADER2:
        return "header"
    (exponent,) = struct.unpack_from("<I", sig, 512)
    if exponent != 3:
        return "exponent %d" % exponent
    n = int.from_bytes(sig[128:512], "little")
    s = int.from_bytes(sig[516:900], "little")
    if n.bit_length() != 3072 or s >= n:
        return "modulus"
    expected = pkcs1_v15_sha256(hashlib.sha256(signed_part(sig)).digest())
    if pow(s, 3, n).to_bytes(KEY_BYTES, "big") != expected:
        return "signature"
    q1 = int.from_bytes(sig[1040:1424], "little")
    q2 = int.from_bytes(sig[1424:1808], "little")
    if q1 != s * s // n:
        return "q1"
    if q2 != (s * s * s - q1 * s * n) // n:
        return "q2"
    return None


def fields(sig):
    (date,) = struct.unpack_from("<I", sig, 20)
    d = "%08x" % date
    flags, xfrm = struct.unpack_from("<QQ", sig, 928)
    return {
        "mrenclave": sig[960:992].hex(),
        "mrsigner": hashlib.sha256(sig[128:512]).hexdigest(),
        "isvprodid": struct.unpack_from("<H", sig, 1024)[0],
        "isvsvn": struct.unpack_from("<H", sig, 1026)[0],
        "debug": bool(flags & 2),
        "date": "%s-%s-%s" % (d[0:4], d[4:6], d[6:8]),
        "vendor": struct.unpack_from("<I", sig, 16)[0],
        "flags": flags,
        "xfrm": xfrm,
    }


def main(argv):
    if argv[1] == "sign":
        n, d = int(argv[2], 16), int(argv[3], 16)
        out = sign(n, d, bytes.fromhex(argv[4]), int(argv[5]), int(argv[6]), argv[7] == "1", argv[8], int(argv[9], 0))
        with open(argv[10], "wb") as f:
            f.write(out)
        return 0
    if argv[1] == "verify":
        with open(argv[2], "rb") as f:
            sig = f.read()
        problem = verify(sig)
        if problem:
            print("invalid: " + problem, file=sys.stderr)
            return 1
        print(json.dumps(fields(sig)))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
