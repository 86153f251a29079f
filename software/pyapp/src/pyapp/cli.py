"""pyapp's command line: reports the interpreter it runs on and checks that
the optional modules built against embedded libraries load."""

import argparse
import importlib
import json
import sys

from pyapp import __version__

# Modules whose C parts link a library that coach builds into the prefix.
MODULES = ["ssl", "hashlib", "sqlite3", "lzma", "bz2", "zlib", "ctypes",
           "readline", "curses", "pyexpat", "decimal"]


def report():
    import bz2  # noqa: F401
    import lzma
    import pyexpat
    import sqlite3
    import ssl
    import zlib
    return {
        "pyapp": __version__,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "prefix": sys.prefix,
        "openssl": ssl.OPENSSL_VERSION,
        "sqlite": sqlite3.sqlite_version,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "expat": pyexpat.EXPAT_VERSION,
    }


def check():
    failed = []
    for name in MODULES:
        try:
            importlib.import_module(name)
        except ImportError as err:
            failed.append(f"{name}: {err}")
    return failed


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pyapp", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pyapp {__version__}")
    sub = parser.add_subparsers(dest="command")
    info = sub.add_parser("info", help="show the interpreter and its libraries")
    info.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("check", help="import every module backed by an embedded library")
    greet = sub.add_parser("greet", help="say hello")
    greet.add_argument("name", nargs="?", default="world")
    args = parser.parse_args(argv)

    if args.command == "check":
        failed = check()
        for line in failed:
            print(f"pyapp: cannot import {line}", file=sys.stderr)
        if failed:
            return 1
        print(f"pyapp: all {len(MODULES)} modules import")
        return 0
    if args.command == "info":
        data = report()
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            for key, value in data.items():
                print(f"{key:<11} {value}")
        return 0
    name = getattr(args, "name", "world")
    print(f"Hello, {name}! (pyapp {__version__} on Python {sys.version.split()[0]})")
    return 0
