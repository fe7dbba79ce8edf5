import sys

print("exiting with 3", flush=True)
sys.exit(3)
