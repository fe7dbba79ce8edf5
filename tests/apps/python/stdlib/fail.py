"""A script that fails: an uncaught exception two calls deep."""


def parse(text):
    return int(text)


def main():
    print("before the failure", flush=True)
    return parse("not a number")


main()
