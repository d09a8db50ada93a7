"""Snapshots: the whole emulator (state and data) in one file, exported and imported again.

By job:

- :mod:`~harvest.snapshot.format`: the file format, each record encoded, a file read and checked;
- :mod:`~harvest.snapshot.transfer`: export from a store to a file, import from a file into one;
- :mod:`~harvest.snapshot.handlers`: ``GET``/``PUT /_emulator/snapshot``, which the server mounts;
- :mod:`~harvest.snapshot.cli`: ``harvest-emulator export/import``, offline or through
  :mod:`harvest.control_client`.

The server imports the first three only; this package's names below are theirs, so importing it
never pulls in the command line or the control-plane client.
"""

from harvest.snapshot.format import (
    COUNTS,
    FORMAT,
    MEDIA_TYPE,
    VERSION,
    SnapshotError,
    SnapshotInfo,
    check_file,
    msgpack,
)
from harvest.snapshot.handlers import MAX_UPLOAD_BYTES, add_routes, get_snapshot, put_snapshot
from harvest.snapshot.transfer import (
    Export,
    ImportFailed,
    export_to_file,
    import_file,
    write_atomically,
)

__all__ = [
    "COUNTS",
    "FORMAT",
    "MAX_UPLOAD_BYTES",
    "MEDIA_TYPE",
    "VERSION",
    "Export",
    "ImportFailed",
    "SnapshotError",
    "SnapshotInfo",
    "add_routes",
    "check_file",
    "export_to_file",
    "get_snapshot",
    "import_file",
    "msgpack",
    "put_snapshot",
    "write_atomically",
]
