"""A small real app: reads its data file, does some work, prints JSON."""
import hashlib
import json
import os
import platform
import sys

with open(os.path.join(os.path.dirname(__file__), "data.json"), encoding="utf-8") as f:
    data = json.load(f)

words = data["text"].split()
report = {
    "app": "python",
    "python": platform.python_version(),
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "words": len(words),
    "longest": max(words, key=len),
    "sha256": hashlib.sha256(data["text"].encode()).hexdigest(),
    "env": {k: os.environ.get(k) for k in ("GREETING", "HOME")},
}
print(json.dumps(report, sort_keys=True))
