"""Real Harvest Files clients against the running emulator (issue 13, item 6).

* ``soracom-lib`` 0.1.9 from PyPI (``soracomlib``, requests, synchronous; its calls run in a
  worker thread), changed only in its base URL: it lists recursively, downloads and uploads.
  Its quirk: it reports an upload answered ``201`` (a new file, the real status) as a
  failure, and only an overwrite (``200``) as a success (notes section 5.2).
* ``soracom-api`` 0.0.2 (the generated client): it escapes ``/`` in paths as ``%2F``.
* soracom-cli, re-enacted (``files put``, ``files get``, ``files list``, ``files find``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import soracomlib
import soracomlib.soracom_harvest_files as harvest_files
from soracom_api.api.file_entry_api import FileEntryApi

from tests.conftest import Emulator
from tests.harvest.files.helpers import api_put
from tests.harvest.test_soracom_clients import Sdk
from tests.support.clients import DEFAULT_KEY, DEFAULT_KEY_ID
from tests.support.soracom_cli import CliError, SoracomCli

# urllib3 1.26 deprecates the getheader()/getheaders() that soracom-api's rest.py calls.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:HTTPResponse\.getheaders?\(\) is deprecated:DeprecationWarning"
)


@pytest.fixture
async def soracom_lib(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """soracom-lib pointed at the emulator (its one constant, ``API_BASE``), logged in with an
    auth key: its token dict."""
    monkeypatch.setattr(harvest_files, "API_BASE", emulator.base_url + "/v1")
    auth = soracomlib.AuthInfo(api_key=DEFAULT_KEY_ID, api_token=DEFAULT_KEY)
    token: dict[str, str] = await asyncio.to_thread(soracomlib.authenticate, auth)
    return token


async def test_soracom_lib_uploads_lists_recursively_and_downloads(
    emulator: Emulator, soracom_lib: dict[str, str], tmp_path: Path
) -> None:
    token = soracom_lib
    local = tmp_path / "report.csv"
    local.write_text("a,b\n1,2\n")
    # a new file is 201, which soracom-lib counts as a failure (only 200/204 pass)...
    assert (
        await asyncio.to_thread(
            soracomlib.upload_file_to_soracom, str(local), "reports/2024/report.csv", token
        )
        is False
    )
    # ...though it was stored; uploading it again is an overwrite, 200, a success for it
    assert (
        await asyncio.to_thread(
            soracomlib.upload_file_to_soracom, str(local), "reports/2024/report.csv", token
        )
        is True
    )
    api = await emulator.api()
    for name in ("a", "b", "c"):
        await api_put(api, f"/reports/{name}.txt", name.encode())
    found = await asyncio.to_thread(soracomlib.list_files_iterative, "/", token, page_size=2)
    assert sorted(entry.path for entry in found) == [
        "/reports/2024/report.csv",
        "/reports/a.txt",
        "/reports/b.txt",
        "/reports/c.txt",
    ]
    assert all(entry.last_modified is not None for entry in found)
    target = tmp_path / "copy.csv"
    assert await asyncio.to_thread(
        soracomlib.download_and_save, "reports/2024/report.csv", str(target), token
    )
    assert target.read_text() == "a,b\n1,2\n"
    # the content type comes from the file name, as soracom-lib guesses it
    [entry] = (await api.get("/v1/files/private/reports/2024/")).json
    assert entry["contentType"] == "text/csv"


# --- soracom-api (the generated client) ----------------------------------------------------------
@pytest.fixture
async def sdk(emulator: Emulator) -> AsyncIterator[Sdk]:
    sdk = Sdk.connect(emulator.base_url)
    await asyncio.to_thread(sdk.login)
    yield sdk
    sdk.close()


async def test_the_generated_client_lists_finds_and_reads_metadata(
    emulator: Emulator, sdk: Sdk
) -> None:
    api = await emulator.api()
    await api_put(api, "/a/b.txt", b"hello", "text/plain")
    files = FileEntryApi(sdk.client)
    root = await asyncio.to_thread(files.list_files, scope="private", path="/")  # "%2F/"
    assert [e["filename"] for e in root] == ["a/"]
    found = await asyncio.to_thread(files.find_files, "private", "/a/")
    assert [(e["file_path"], e["content_length"]) for e in found] == [("/a/b.txt", 5)]
    # the path "a/b.txt" goes as "a%2Fb.txt". This old client expects a FileEntry body from
    # HEAD (an older document); the current one declares headers only, so read those.
    head = await asyncio.to_thread(
        files.get_file_metadata, "a/b.txt", scope="private", _preload_content=False
    )
    assert (head.status, head.headers["Content-Length"]) == (200, "5")
    await asyncio.to_thread(files.delete_file, "a/b.txt", scope="private")
    assert (await api.get("/v1/files/private/a/")).json == []


# --- soracom-cli, re-enacted ---------------------------------------------------------------------
@pytest.fixture
async def cli(emulator: Emulator) -> AsyncIterator[SoracomCli]:
    async with aiohttp.ClientSession() as session:
        yield SoracomCli(session, emulator.base_url, DEFAULT_KEY_ID, DEFAULT_KEY)


async def test_cli_files_put_get_list_and_find(emulator: Emulator, cli: SoracomCli) -> None:
    assert await cli.files_put("/logs/a.txt", "first", content_type="text/plain") is None
    assert cli.sent[-1].status == 201
    await cli.files_put("logs//a.txt", "second", content_type="text/plain")
    assert cli.sent[-1].status == 200
    await cli.files_put("/logs/b c.txt", "b")
    assert cli.sent[-1].target == "/v1/files/private/logs/b%20c.txt"
    assert await cli.files_get("/logs/a.txt") == "second"
    root = await cli.files_list("/")
    assert cli.sent[-1].target == "/v1/files/private//"
    assert [e["filename"] for e in root] == ["logs/"]
    listed = await cli.files_list("/logs/", limit=1, fetch_all=True)
    assert [e["filename"] for e in listed] == ["a.txt", "b c.txt"]
    found = await cli.files_find("/logs/", limit=1, fetch_all=True)
    assert [e["filePath"] for e in found] == ["/logs/a.txt", "/logs/b c.txt"]
    with pytest.raises(CliError) as missing:
        await cli.files_get("/logs/none.txt")
    assert (missing.value.status, missing.value.json["code"]) == (404, "HEM2005")
