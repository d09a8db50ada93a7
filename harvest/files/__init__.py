"""Harvest Files: whole files that devices upload and download on ``harvest-files.soracom.io``
and backends list, download and delete through ``/v1/files`` (notes real-service.md section 5;
docs/files.md).

- :mod:`harvest.files.paths`: paths, their limits, the group's default path and the entry;
- :mod:`harvest.files.ranges`: the ``Range`` header of a download;
- :mod:`harvest.files.blobs`: file bodies, written to a temporary file, fsynced and renamed;
- :mod:`harvest.files.index`: the metadata, in SQLite beside the rest (or in memory);
- :mod:`harvest.files.service`: the operations, their metering and retention;
- :mod:`harvest.files.api` and :mod:`harvest.files.app`: the ``/v1/files`` handlers, the
  download URLs and how the package plugs into the application.
"""
