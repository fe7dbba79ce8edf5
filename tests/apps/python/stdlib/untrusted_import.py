"""Imports a module from a directory outside the working directory, added to
sys.path at run time (argv[1]); zero-config does not trust it."""
import sys

sys.path.insert(0, sys.argv[1])
import outsider  # noqa: E402

print("imported", outsider.__file__)
