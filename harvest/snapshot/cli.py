"""The ``harvest-emulator export FILE`` and ``import FILE`` commands: offline on a data
directory, or through a running emulator's control plane with ``--endpoint``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
from pathlib import Path

from harvest.clock import EmulatorClock
from harvest.control_client import (
    ControlClient,
    ControlPlaneBrokeOff,
    ControlPlaneError,
    ControlPlaneUnreachable,
)
from harvest.files.blobs import DiskBlobs
from harvest.files.index import SqliteFileIndex
from harvest.files.service import FileService
from harvest.snapshot.format import MEDIA_TYPE, SnapshotError, SnapshotInfo, check_file
from harvest.snapshot.transfer import (
    BATCH,
    ImportFailed,
    apply_file,
    export_to_file,
    write_atomically_sync,
)
from harvest.storage.sqlite import SqliteStore, StoreError

DEFAULT_DATA_DIR = ".harvest"
DATABASE_NAME = "harvest.sqlite3"
DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
#: Seconds to connect to a running emulator; reading has no bound (a large import is
#: answered only once it is applied).
CONNECT_TIMEOUT_S = 10.0


class _CommandError(Exception):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``export FILE`` and ``import FILE``, offline on a data dir or through a running emulator."""
    for name, summary in (
        ("export", "write the whole state and data to a snapshot FILE"),
        ("import", "replace the whole state and data with the snapshot in FILE"),
    ):
        command = subparsers.add_parser(
            name,
            help=summary,
            description=summary
            + ". Offline on a data directory (the default), or through a running emulator's "
            "control plane with --endpoint.",
        )
        command.add_argument("file", metavar="FILE", type=Path, help="the snapshot file")
        where = command.add_mutually_exclusive_group()
        where.add_argument(
            "--data-dir",
            metavar="DIR",
            type=Path,
            help="the emulator's data directory, used directly (default: $HARVEST_DATA_DIR or "
            f"{DEFAULT_DATA_DIR}); "
            + (
                "safe while an emulator runs on it"
                if name == "export"
                else "refused while an emulator runs on it"
            ),
        )
        where.add_argument(
            "--endpoint",
            metavar="URL",
            help=f"a running emulator's HTTP edge, e.g. {DEFAULT_ENDPOINT}",
        )
        command.add_argument(
            "--control-token",
            metavar="TOKEN",
            help="the control plane's token, if it has one (default: $HARVEST_CONTROL_TOKEN)",
        )


def _database(namespace: argparse.Namespace) -> Path:
    data_dir = namespace.data_dir or Path(os.environ.get("HARVEST_DATA_DIR") or DEFAULT_DATA_DIR)
    return Path(data_dir) / DATABASE_NAME


def _in_use(database: Path) -> bool:
    """Whether another connection (a running emulator) has the database open.

    A connection in exclusive locking mode cannot take its lock while any other connection to
    a WAL database is open, even an idle one; the probe lets go at once.
    """
    if not database.exists():
        return False
    db = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        db.execute("PRAGMA locking_mode = EXCLUSIVE")
        db.execute("BEGIN EXCLUSIVE")
        db.execute("COMMIT")
    except sqlite3.OperationalError as error:
        return "locked" in str(error) or "busy" in str(error)
    except sqlite3.DatabaseError:
        return False  # not a database: opening the store says so
    finally:
        db.close()
    return False


async def _offline(command: str, file: Path, database: Path) -> SnapshotInfo:
    if command == "export":
        if not await asyncio.to_thread(database.exists):
            raise _CommandError(f"there is no emulator database at {database}")
        info = None
    else:
        # check the file before the database is even opened (or created)
        info = await asyncio.to_thread(check_file, file)
        if await asyncio.to_thread(_in_use, database):
            raise _CommandError(
                f"{database} is in use: is an emulator running on it? Stop it first, or "
                "import through it with --endpoint URL"
            )
    store = SqliteStore(database)
    await store.open()
    # Harvest Files beside the database (harvest/files/app.py lays them out the same way)
    files = FileService(
        index=SqliteFileIndex(database),
        blobs=DiskBlobs(database.parent / "files"),
        store=store,
        clock=EmulatorClock(),
    )
    try:
        if info is None:
            await files.index.open()  # read only: the bodies are left as they are
            return await export_to_file(store, file, files=files)
        await files.start()
        await files.reset()
        await apply_file(store, file, BATCH, files)
        return info
    finally:
        await files.close()
        await store.close()


def _online(command: str, file: Path, endpoint: str, token: str | None) -> SnapshotInfo:
    try:
        client = ControlClient(
            endpoint, token=token, timeout=None, connect_timeout=CONNECT_TIMEOUT_S
        )
    except ValueError as error:
        raise _CommandError(str(error), 2) from None
    try:
        if command == "export":
            with client.export_snapshot() as chunks:
                info = write_atomically_sync(file, chunks, check_file)
            assert info is not None
            return info
        info = check_file(file)  # a bad file is refused here
        client.import_snapshot(file, content_type=MEDIA_TYPE)
        return info
    except ControlPlaneError as error:
        raise _CommandError(f"the emulator answered {error.status}: {error.message}") from None
    except ControlPlaneBrokeOff as error:
        raise _CommandError(f"the export from {endpoint} broke off: {error.reason}") from None
    except ControlPlaneUnreachable as error:
        raise _CommandError(f"cannot reach the emulator at {endpoint}: {error.reason}", 2) from None


def run(namespace: argparse.Namespace) -> int:
    """Run ``export`` or ``import`` as parsed by :func:`add_commands`; the exit status."""
    command: str = namespace.command
    file: Path = namespace.file
    try:
        if namespace.endpoint:
            token = namespace.control_token or os.environ.get("HARVEST_CONTROL_TOKEN")
            info = _online(command, file, namespace.endpoint, token)
        else:
            info = asyncio.run(_offline(command, file, _database(namespace)))
    except SnapshotError as error:
        print(f"harvest-emulator: error: {file}: {error}", file=sys.stderr)
        return 1
    except (_CommandError, ImportFailed, StoreError, sqlite3.Error, OSError) as error:
        print(f"harvest-emulator: error: {error}", file=sys.stderr)
        return error.status if isinstance(error, _CommandError) else 1
    verb = "exported to" if command == "export" else "imported from"
    print(f"{verb} {file}: {info.describe()}")
    return 0
