#!/bin/sh
# An image entrypoint in the usual shape: set up, then exec the program.
set -e
greeting=$(echo hello | tr a-z A-Z)
export GREETING="$greeting"
exec /usr/bin/python3 -c 'import os, sys; print(os.environ["GREETING"], sys.argv[1:])' "$@"
