"""A tour of the standard library, run natively and in the enclave: both
runs must print the same lines. Everything printed is deterministic (seeded
random, fixed clocks, sorted listings); what cannot be (fresh UUIDs, temporary
names, the time now) is printed as a property that holds.

Usage: tour.py OUTDIR [MARKER]
  OUTDIR  a writable host directory (sqlite database, log file)
  MARKER  a file name the tour leaves in /tmp (the test checks whether it
          reached the host's /tmp)
"""
import bz2
import collections
import csv
import datetime
import decimal
import gzip
import hashlib
import hmac
import io
import json
import logging
import lzma
import os
import pathlib
import pickle
import random
import re
import shutil
import sqlite3
import struct
import sys
import tempfile
import unittest
import uuid
import zlib

from helpers.mathutil import fib, primes

OUT = sys.argv[1] if len(sys.argv) > 1 else "out"
MARKER = sys.argv[2] if len(sys.argv) > 2 else None


def section(name):
    print("==", name)


def digest(b):
    return hashlib.sha256(b).hexdigest()[:16]


section("json")
doc = {"name": "conf", "list": [1, 2.5, None, True], "nested": {"é": "ü", "n": -7}}
text = json.dumps(doc, sort_keys=True, ensure_ascii=False)
print(text)
print(json.loads(text) == doc, json.dumps(doc, indent=1, sort_keys=True).count("\n"))
with open("data/records.json") as f:
    print(sorted(json.load(f).items()))

section("re")
log = "2024-01-05 ERROR disk full; 2024-02-11 WARN cpu hot; 2024-03-30 ERROR net down"
print(re.findall(r"(\d{4})-(\d\d)-(\d\d) (ERROR|WARN)", log))
print(re.sub(r"(?P<word>\b[a-z]+\b)", lambda m: m.group("word").upper(), "mix of Words and 42 numbers"))
print(bool(re.fullmatch(r"[\w.+-]+@[\w-]+\.\w+", "a.b+c@example.org")), re.split(r"[;,]\s*", "a, b;c,  d"))

section("collections")
c = collections.Counter("the quick brown fox jumps over the lazy dog")
print(c.most_common(4))
Point = collections.namedtuple("Point", "x y")
p = Point(3, 4)
print(p, p._asdict(), p._replace(x=5))
d = collections.deque(range(10), maxlen=5)
d.rotate(2)
print(list(d))
dd = collections.defaultdict(list)
for k, v in [("a", 1), ("b", 2), ("a", 3)]:
    dd[k].append(v)
print(sorted(dd.items()), list(collections.OrderedDict.fromkeys("abracadabra")))
print(collections.ChainMap({"a": 1}, {"a": 2, "b": 3})["b"])

section("datetime")
t0 = datetime.datetime(2024, 2, 28, 23, 30, tzinfo=datetime.timezone.utc)
t1 = t0 + datetime.timedelta(hours=26, minutes=45)
print(t1.isoformat(), t1.strftime("%A %d %B %Y %j"), (t1 - t0).total_seconds())
print(datetime.date(2024, 3, 1).isocalendar(), datetime.date.fromisoformat("2000-02-29").weekday())
tz = datetime.timezone(datetime.timedelta(hours=5, minutes=30), "IST")
print(t0.astimezone(tz).isoformat(), datetime.datetime.fromtimestamp(1e9, datetime.timezone.utc))
now = datetime.datetime.now(datetime.timezone.utc)
print("now is after 2024:", now.year >= 2024)

section("decimal")
decimal.getcontext().prec = 40
print(decimal.Decimal(1) / decimal.Decimal(7), decimal.Decimal(2).sqrt())
print(decimal.Decimal("1.10") + decimal.Decimal("2.205"), decimal.Decimal("3.14159").quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_EVEN))
with decimal.localcontext() as ctx:
    ctx.prec = 5
    print(decimal.Decimal(22) / decimal.Decimal(7), decimal.Decimal("NaN").is_nan())

section("hashlib")
data = b"The quick brown fox jumps over the lazy dog"
print(hashlib.sha256.__name__, hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest())
print(hashlib.sha256(data).hexdigest(), hashlib.sha512(data).hexdigest()[:32])
print(hashlib.sha3_256(data).hexdigest()[:32], hashlib.blake2b(data, digest_size=16).hexdigest())
print(hashlib.new("sha384", data).hexdigest()[:32], hashlib.new("sm3", data).hexdigest()[:16] if "sm3" in hashlib.algorithms_available else "no sm3")
print(hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 1000).hex(), hashlib.scrypt(b"pw", salt=b"s", n=16, r=8, p=1)[:8].hex())
h = hashlib.sha256()
for i in range(1000):
    h.update(i.to_bytes(4, "little"))
print(h.hexdigest())

section("ssl")
import ssl  # noqa: E402

ctx = ssl.create_default_context()
print(ssl.OPENSSL_VERSION.split()[0], ctx.verify_mode == ssl.CERT_REQUIRED, ctx.check_hostname, ctx.cert_store_stats()["x509_ca"] > 0)

section("hmac")
mac = hmac.new(b"key", data, "sha256")
print(mac.hexdigest(), hmac.digest(b"key", data, "sha1").hex())
print(hmac.compare_digest(mac.hexdigest(), hmac.new(b"key", data, hashlib.sha256).hexdigest()), hmac.compare_digest(b"a", b"b"))

section("zlib gzip bz2 lzma")
blob = ("".join(f"line {i} of a compressible text\n" for i in range(5000))).encode()
z = zlib.compress(blob, 9)
print(len(blob), len(z), zlib.crc32(blob), zlib.adler32(blob), zlib.decompress(z) == blob)
co = zlib.compressobj(6, zlib.DEFLATED, -15)
raw = co.compress(blob) + co.flush()
print(len(raw), zlib.decompress(raw, -15) == blob)
gz = gzip.compress(blob, mtime=0)
print(len(gz), digest(gz), gzip.decompress(gz) == blob)
b2 = bz2.compress(blob)
print(len(b2), digest(b2), bz2.decompress(b2) == blob)
xz = lzma.compress(blob, preset=6)
print(lzma.decompress(xz) == blob, lzma.decompress(lzma.compress(blob, format=lzma.FORMAT_ALONE)) == blob)
tmpdir = tempfile.mkdtemp(prefix="tour-")
gzpath = os.path.join(tmpdir, "blob.txt.gz")
with gzip.open(gzpath, "wt", encoding="utf-8") as f:
    f.write(blob.decode())
with gzip.open(gzpath, "rt", encoding="utf-8") as f:
    print(sum(1 for _ in f))
with bz2.open(os.path.join(tmpdir, "b.bz2"), "wb") as f:
    f.write(blob)
with lzma.open(os.path.join(tmpdir, "b.xz"), "wb") as f:
    f.write(blob)
print(bz2.open(os.path.join(tmpdir, "b.bz2")).read() == blob, lzma.open(os.path.join(tmpdir, "b.xz")).read() == blob)

section("csv")
with open("data/nested/numbers.csv", newline="") as f:
    rows = list(csv.DictReader(f))
print(rows[0], round(sum(int(r["qty"]) * float(r["price"]) for r in rows), 2))
buf = io.StringIO()
w = csv.writer(buf, quoting=csv.QUOTE_MINIMAL)
w.writerows([["a", "b,c", 'say "hi"'], [1, 2.5, None]])
print(repr(buf.getvalue()))
csvpath = os.path.join(tmpdir, "out.csv")
with open(csvpath, "w", newline="") as f:
    dw = csv.DictWriter(f, fieldnames=["k", "v"])
    dw.writeheader()
    dw.writerows({"k": i, "v": i * i} for i in range(5))
with open(csvpath, newline="") as f:
    print([tuple(r) for r in csv.reader(f)])

section("tempfile")
print(tempfile.gettempdir(), tmpdir.startswith("/tmp/tour-"))
with tempfile.NamedTemporaryFile("w+", suffix=".txt") as nt:
    nt.write("hello tempfile")
    nt.flush()
    nt.seek(0)
    print(nt.read(), os.path.exists(nt.name), nt.name.startswith("/tmp/"))
print("deleted:", not os.path.exists(nt.name))
with tempfile.TemporaryDirectory() as td:
    pathlib.Path(td, "x").write_bytes(b"12345")
    print(os.listdir(td), os.path.getsize(os.path.join(td, "x")))
print("directory removed:", not os.path.exists(td))
with tempfile.TemporaryFile() as tf:
    tf.write(b"anonymous")
    tf.seek(0)
    print(tf.read())
with tempfile.SpooledTemporaryFile(max_size=10) as sf:
    sf.write(b"x" * 100)
    sf.seek(0)
    print(len(sf.read()))

section("pathlib")
here = pathlib.Path(".")
print(sorted(str(p) for p in here.glob("data/**/*") if p.is_file()))
print(pathlib.Path("data/nested/deeper/lines.txt").read_text().splitlines())
q = pathlib.Path(tmpdir) / "sub" / "file.bin"
q.parent.mkdir(parents=True)
q.write_bytes(bytes(range(256)) * 4)
print(q.name, q.suffix, q.stem, q.stat().st_size, q.parent.name, q.exists(), q.is_file())
q.rename(q.with_suffix(".dat"))
print(sorted(x.name for x in q.parent.iterdir()), pathlib.PurePosixPath("/a/b/../c").parts)
print(pathlib.Path("data").resolve() == pathlib.Path.cwd() / "data")

section("shutil.copytree os.walk")
dst = os.path.join(tmpdir, "copy")
shutil.copytree("data", dst)
walk = []
for root, dirs, files in os.walk(dst):
    dirs.sort()
    for name in sorted(files):
        full = os.path.join(root, name)
        with open(full, "rb") as f:
            walk.append((os.path.relpath(full, dst), os.path.getsize(full), digest(f.read())))
print(walk)
app_walk = []
for root, dirs, files in os.walk("."):
    dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", OUT))
    app_walk.extend(os.path.join(root, n) for n in sorted(files))
print(app_walk)
shutil.copy2("data/README.txt", os.path.join(tmpdir, "readme"))
shutil.move(os.path.join(tmpdir, "readme"), os.path.join(tmpdir, "readme.moved"))
print(os.path.exists(os.path.join(tmpdir, "readme.moved")), shutil.disk_usage(tmpdir).total > 0)
shutil.rmtree(dst)
print("copy removed:", not os.path.exists(dst))

section("struct")
packed = struct.pack("<hIq?3sd", -2, 2**31, -(2**40), True, b"abc", 1.5)
print(packed.hex(), struct.calcsize("@ihq"), struct.unpack("<hIq?3sd", packed))
print(struct.pack(">HHL", 1, 2, 3).hex(), list(struct.iter_unpack("<H", b"\x01\x00\x02\x00")))

section("pickle")


class Thing:
    def __init__(self, name, parts):
        self.name, self.parts = name, parts

    def __eq__(self, other):
        return vars(self) == vars(other)


obj = {"t": Thing("x", [1, 2, (3, 4)]), "s": {1, 2, 3}, "b": b"\x00\xff", "f": 1.25, "big": 2**100}
for proto in (0, 2, 4, 5):
    pb = pickle.dumps(obj, protocol=proto)
    print(proto, len(pb), pickle.loads(pb) == obj)
with open(os.path.join(tmpdir, "obj.pickle"), "wb") as f:
    pickle.dump(obj, f)
with open(os.path.join(tmpdir, "obj.pickle"), "rb") as f:
    print(pickle.load(f)["t"].parts)

section("random")
r = random.Random(1234)
print(r.random(), r.randint(1, 10**9), r.choice("abcdef"), r.sample(range(100), 5))
lst = list(range(10))
r.shuffle(lst)
print(lst, round(r.gauss(0, 1), 12), r.getrandbits(64))
print(len(random.SystemRandom().randbytes(32)) if hasattr(random.SystemRandom, "randbytes") else 32, len(os.urandom(64)))

section("uuid")
print(uuid.uuid5(uuid.NAMESPACE_DNS, "conf.example"), uuid.uuid3(uuid.NAMESPACE_URL, "https://example.org/"))
u4 = uuid.uuid4()
print(u4.version, u4.variant, len(str(u4)), u4 != uuid.uuid4())
u1 = uuid.uuid1(node=0x123456789ABC, clock_seq=7)
print(u1.version, u1.node == 0x123456789ABC, uuid.UUID("12345678123456781234567812345678").hex)

section("logging")
logpath = os.path.join(OUT, "tour.log")
tmplog = os.path.join(tmpdir, "tour.log")
logger = logging.getLogger("tour")
logger.setLevel(logging.DEBUG)
fmt = logging.Formatter("%(levelname)s %(name)s: %(message)s")
for path in (logpath, tmplog):
    fh = logging.FileHandler(path, mode="w")
    fh.setFormatter(fmt)
    logger.addHandler(fh)
logger.debug("debug %d", 1)
logger.info("info with unicode ✓")
logger.warning("warning")
try:
    1 / 0
except ZeroDivisionError:
    logger.exception("caught")
for h in list(logger.handlers):
    h.close()
    logger.removeHandler(h)
with open(tmplog) as f:
    lines = f.read().splitlines()
print(lines[:4], lines[-1])

section("sqlite3")
print(sqlite3.sqlite_version_info >= (3, 7), sqlite3.threadsafety in (0, 1, 3))


def fill(con):
    con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER, price REAL)")
    con.executemany("INSERT INTO items (name, qty, price) VALUES (?, ?, ?)", ((f"item{i:04d}", i % 17, i * 0.25) for i in range(2000)))
    con.execute("CREATE INDEX items_qty ON items(qty)")
    con.commit()


memdb = os.path.join(tmpdir, "tmpfs.db")
con = sqlite3.connect(memdb)
fill(con)
print(con.execute("SELECT count(*), sum(qty), round(sum(price), 2), max(name) FROM items").fetchone())
print(con.execute("SELECT qty, count(*) FROM items WHERE qty > 14 GROUP BY qty ORDER BY qty").fetchall())
with con:
    con.execute("UPDATE items SET qty = qty + 100 WHERE id % 100 = 0")
try:
    with con:
        con.execute("DELETE FROM items")
        raise RuntimeError("rolled back")
except RuntimeError as e:
    print(e, con.execute("SELECT count(*), max(qty) FROM items").fetchone())
con.execute("VACUUM")
con.close()
con = sqlite3.connect(memdb)
print(con.execute("PRAGMA integrity_check").fetchone(), con.execute("SELECT count(*) FROM items WHERE qty >= 100").fetchone())
con.close()
print(os.path.getsize(memdb) > 4096)

waldb = os.path.join(tmpdir, "wal.db")
writer = sqlite3.connect(waldb)
print(writer.execute("PRAGMA journal_mode=WAL").fetchone())
writer.execute("CREATE TABLE log (n INTEGER)")
writer.executemany("INSERT INTO log VALUES (?)", ((i,) for i in range(500)))
writer.commit()
reader = sqlite3.connect(waldb)
print(reader.execute("SELECT count(*), sum(n) FROM log").fetchone(), os.path.exists(waldb + "-wal"), os.path.exists(waldb + "-shm"))
reader.close()
writer.close()

hostdb = os.path.join(OUT, "host.db")
if os.path.exists(hostdb):
    os.remove(hostdb)
con = sqlite3.connect(hostdb)
fill(con)
con.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT)")
con.execute("INSERT INTO meta VALUES ('written_by', 'tour.py'), ('sha', ?)", (hashlib.sha256(b"conf").hexdigest(),))
con.commit()
print(con.execute("SELECT count(*), sum(qty) FROM items").fetchone())
con.close()

section("unittest")
import test_sample  # noqa: E402

stream = io.StringIO()
suite = unittest.defaultTestLoader.loadTestsFromModule(test_sample)
result = unittest.TextTestRunner(stream=stream, verbosity=2).run(suite)
print(result.testsRun, len(result.failures), len(result.errors), len(result.skipped), len(result.expectedFailures), result.wasSuccessful())
print(sorted(l.split(" ... ")[1] for l in stream.getvalue().splitlines() if " ... " in l))

section("proc")
print(os.cpu_count() > 0, len(os.listdir("/proc/self/fd")) >= 3, os.path.realpath("/proc/self/exe").startswith("/usr/bin/python3"))
with open("/proc/self/status") as f:
    print(f.readline().split()[0], any(line.startswith("Threads:") for line in f))
print(open("/proc/self/cmdline", "rb").read().split(b"\0")[1:3])

section("app modules")
print(primes(50)[-3:], fib(90))

section("cleanup")
shutil.rmtree(tmpdir)
print(os.path.exists(tmpdir))
if MARKER:
    with open(os.path.join("/tmp", MARKER), "w") as f:
        f.write("left in /tmp by tour.py\n")
print("tour done")
