"""The ``harvest-emulator`` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from harvest import __version__, settings
from harvest.settings import SettingsError
from harvest.simulator import cli as simulator
from harvest.snapshot import cli as snapshot
from harvest.storage.sqlite import StoreError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harvest-emulator",
        description="A local emulator of SORACOM Harvest Data and the Air-side gateway.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the emulator (the default command)")
    settings.add_arguments(serve)
    simulator.add_commands(commands)
    snapshot.add_commands(commands)
    return parser


def _run_loop(coro: object) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)  # type: ignore[arg-type]
    else:
        uvloop.run(coro)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help", "--version")):
        args.insert(0, "serve")
    parser = _parser()
    namespace = parser.parse_args(args)
    if namespace.command in ("device", "fleet", "files"):
        return simulator.run(namespace)
    if namespace.command in ("export", "import"):
        return snapshot.run(namespace)
    try:
        config = settings.from_sources(vars(namespace), os.environ)
    except SettingsError as error:
        parser.exit(2, f"harvest-emulator: error: {error}\n")
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from harvest.server import run

    try:
        _run_loop(run(config))
    except StoreError as error:
        parser.exit(1, f"harvest-emulator: error: {error}\n")
    except OSError as error:
        parser.exit(1, f"harvest-emulator: error: cannot listen: {error}\n")
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
