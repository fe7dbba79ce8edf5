"""A module in the working directory, run with `python3 -m mymod ARGS`."""
import sys

if __name__ == "__main__":
    print("mymod as __main__, args", sys.argv[1:], "name", __name__)
