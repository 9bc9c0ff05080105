"""``python -m minirnn <command>``: the command line.

Each command lives in its own function; ``main`` only dispatches.
"""
import argparse
import sys


def cmd_gradcheck(args):
    from .gradcheck import run_all
    return 0 if run_all() else 1


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m minirnn",
        description="Recurrent cells with hand-derived backward passes, in NumPy.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    p = sub.add_parser("gradcheck", help="finite-difference check of every cell and op")
    p.set_defaults(func=cmd_gradcheck)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
