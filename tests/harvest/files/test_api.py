"""The ``/v1/files`` operations with SORACOM's shapes (issue 13, item 2). Every answer goes
through the API client, which validates it against SORACOM's OpenAPI document."""

from __future__ import annotations

import pytest

from harvest import errors
from tests.conftest import Emulator
from tests.harvest.api_helpers import advance, expect_error
from tests.harvest.files.helpers import api_download, api_put, device, enable_files, entries
from tests.support.clients import ApiClient


async def paths(api: ApiClient, directory: str, **params: object) -> list[str]:
    return [
        e["filePath"] for e in entries(await api.get(f"/v1/files/private{directory}", **params))
    ]


async def test_put_is_201_for_a_new_file_and_200_for_an_overwrite(emulator: Emulator) -> None:
    api = await emulator.api()
    assert (await api_put(api, "/a/b.txt", b"first")).status == 201
    assert (await api_put(api, "/a/b.txt", b"second")).status == 200
    assert (await api_download(api, "/a/b.txt"))[:2] == (200, b"second")


async def test_listings_have_directories_with_a_trailing_slash(emulator: Emulator) -> None:
    api = await emulator.api()
    await api_put(api, "/logs/2024/a.txt", b"a", "text/plain")
    await api_put(api, "/logs/b.txt", b"bb", "text/csv")
    await api_put(api, "/top.txt", b"ccc")
    root = entries(await api.get("/v1/files/private//"))  # soracom-cli's root listing
    assert [(e["filename"], e["isDirectory"]) for e in root] == [
        ("logs/", True),
        ("top.txt", False),
    ]
    logs = entries(await api.get("/v1/files/private/logs/"))
    assert [e["filename"] for e in logs] == ["2024/", "b.txt"]
    [directory, file] = logs
    assert directory == {
        "filePath": "/logs/2024/",
        "filename": "2024/",
        "directory": "/logs/",
        "isDirectory": True,
        "createdTime": directory["createdTime"],
        "lastModifiedTime": directory["lastModifiedTime"],
    }
    assert file["directory"] == "/logs/"
    assert (file["contentType"], file["contentLength"]) == ("text/csv", 2)


async def test_listing_pages_by_filename(emulator: Emulator) -> None:
    api = await emulator.api()
    for name in ("e", "a", "d", "c", "b"):
        await api_put(api, f"/dir/{name}.txt", name.encode())
    first = await api.get("/v1/files/private/dir/", limit=2)
    assert [e["filename"] for e in entries(first)] == ["a.txt", "b.txt"]
    assert first.next_key == "b.txt"
    assert "last_evaluated_key=b.txt" in first.headers["link"]
    assert await paths(api, "/dir/", limit=2, last_evaluated_key="b.txt") == [
        "/dir/c.txt",
        "/dir/d.txt",
    ]
    everything = await api.all_pages("/v1/files/private/dir/", limit=2)
    assert [e["filename"] for e in everything] == ["a.txt", "b.txt", "c.txt", "d.txt", "e.txt"]
    assert (await api.get("/v1/files/private/dir/")).next_key is None  # default limit 10


async def test_find_matches_a_prefix_in_utf8_byte_order(emulator: Emulator) -> None:
    api = await emulator.api()
    for path in ("/x/ä.txt", "/x/z.txt", "/x/a/1.txt", "/y/a.txt", "/x.txt"):
        await api_put(api, path, b"1")
    reply = await api.get("/v1/files", scope="private", prefix="/x/")
    assert [e["filePath"] for e in entries(reply)] == ["/x/a/1.txt", "/x/z.txt", "/x/ä.txt"]
    first = await api.get("/v1/files", scope="private", prefix="x", limit=2)
    assert [e["filePath"] for e in entries(first)] == ["/x.txt", "/x/a/1.txt"]
    assert first.next_key == "/x/a/1.txt"
    rest = await api.all_pages("/v1/files", scope="private", prefix="x", limit=2)
    assert len(rest) == 4
    assert entries(await api.get("/v1/files", scope="private", prefix="/nothing")) == []


async def test_get_file_redirects_to_a_download_url_that_expires(emulator: Emulator) -> None:
    api = await emulator.api()
    await api_put(api, "/fw/image.bin", bytes(range(100)), "application/octet-stream")
    reply = await api.call("GET", "/v1/files/private/fw/image.bin", allow_redirects=False)
    assert reply.status == 302
    location = reply.headers["Location"]
    async with api.session.get(location, headers={"Range": "bytes=10-19"}) as response:
        assert (response.status, await response.read()) == (206, bytes(range(10, 20)))
    await advance(emulator, 3601)  # files_url_seconds: 3600
    async with api.session.get(location) as response:
        assert response.status == 403
        assert (await response.json())["code"] == "HEM2009"


async def test_a_tampered_download_url_is_refused(emulator: Emulator) -> None:
    api = await emulator.api()
    await api_put(api, "/a.txt", b"a")
    await api_put(api, "/b.txt", b"b")
    reply = await api.call("GET", "/v1/files/private/a.txt", allow_redirects=False)
    tampered = reply.headers["Location"].replace("/a.txt?", "/b.txt?")
    async with api.session.get(tampered) as response:
        assert response.status == 403


async def test_get_file_on_a_directory_redirects_to_its_listing(emulator: Emulator) -> None:
    api = await emulator.api()
    await api_put(api, "/logs/a.txt", b"a")
    reply = await api.call("GET", "/v1/files/private/logs", allow_redirects=False)
    assert (reply.status, reply.headers["Location"]) == (302, "/v1/files/private/logs/")
    assert await paths(api, "/logs/") == ["/logs/a.txt"]


async def test_head_gives_length_type_and_etag(emulator: Emulator) -> None:
    api = await emulator.api()
    await api_put(api, "/a.json", b'{"a":1}', "application/json")
    reply = await api.call("HEAD", "/v1/files/private/a.json")
    assert reply.status == 200
    assert reply.headers["Content-Length"] == "7"
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["ETag"].startswith('"')
    assert (await api.call("HEAD", "/v1/files/private/none.json")).status == 404


async def test_delete_file_and_then_its_empty_directory(emulator: Emulator) -> None:
    api = await emulator.api()
    await api_put(api, "/d/a.txt", b"a")
    expect_error(await api.call("DELETE", "/v1/files/private/d/"), errors.DIRECTORY_NOT_EMPTY)
    assert (await api.call("DELETE", "/v1/files/private/d/a.txt")).status == 204
    expect_error(await api.call("DELETE", "/v1/files/private/d/a.txt"), errors.NO_SUCH_FILE)
    assert await paths(api, "/d/") == []  # the directory stays until it is deleted
    assert (await api.call("DELETE", "/v1/files/private/d/")).status == 204
    expect_error(await api.get("/v1/files/private/d/"), errors.NO_SUCH_DIRECTORY)
    expect_error(await api.call("DELETE", "/v1/files/private/d/"), errors.NO_SUCH_DIRECTORY)
    expect_error(await api.call("DELETE", "/v1/files/private//"), errors.NO_SUCH_DIRECTORY)


@pytest.mark.parametrize(
    ("put", "get"),
    [
        pytest.param("/a/b.txt", "/v1/files/private/a%2Fb.txt", id="generated-client-%2F"),
        pytest.param("/a b/c.txt", "/v1/files/private/a%20b/c.txt", id="escaped-segments"),
        pytest.param("/a/b.txt", "/v1/files/private//a//b.txt", id="double-slashes"),
        pytest.param("/ä/€.txt", "/v1/files/private/%C3%A4/%E2%82%AC.txt", id="utf-8"),
    ],
)
async def test_every_path_encoding_reaches_the_same_file(
    emulator: Emulator, put: str, get: str
) -> None:
    api = await emulator.api()
    await api_put(api, put, b"same")
    reply = await api.call("GET", get, allow_redirects=False)
    assert reply.status == 302
    async with api.session.get(reply.headers["Location"]) as response:
        assert await response.read() == b"same"
    assert await paths(api, put.rsplit("/", 1)[0] + "/") == [put]


async def test_a_generated_clients_encoded_trailing_slash_is_a_directory(
    emulator: Emulator,
) -> None:
    api = await emulator.api()
    await api_put(api, "/a/b.txt", b"b")
    reply = await api.call("GET", "/v1/files/private/a%2F", allow_redirects=False)
    assert (reply.status, reply.headers["Location"]) == (302, "/v1/files/private/a/")


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/" + "a" * 1024, id="1025-bytes"),
        pytest.param("/d" * 17 + "/f.txt", id="17-directories"),
        pytest.param("/a%FF.txt", id="not-utf-8"),
    ],
)
async def test_bad_paths_are_400(emulator: Emulator, path: str) -> None:
    api = await emulator.api()
    expect_error(await api_put(api, path, b"x"), errors.INVALID_FILE_PATH)


async def test_the_public_scope_is_empty_and_read_only(emulator: Emulator) -> None:
    api = await emulator.api()
    await api_put(api, "/mine.txt", b"x")
    assert entries(await api.get("/v1/files/public//")) == []
    assert entries(await api.get("/v1/files", scope="public", prefix="/")) == []
    expect_error(await api.get("/v1/files/public/a/"), errors.NO_SUCH_DIRECTORY)
    expect_error(
        await api.call("GET", "/v1/files/public/mine.txt", allow_redirects=False),
        errors.NO_SUCH_FILE,
    )
    reply = await api.call("PUT", "/v1/files/public/x.txt", data=b"x")
    expect_error(reply, errors.READ_ONLY_SCOPE)
    expect_error(await api.call("DELETE", "/v1/files/public/mine.txt"), errors.READ_ONLY_SCOPE)


async def test_an_unknown_scope_is_404(emulator: Emulator) -> None:
    api = await emulator.api()
    expect_error(await api.get("/v1/files", scope="shared", prefix="/"), errors.NO_SUCH_SCOPE)
    expect_error(await api.get("/v1/files/shared/a/"), errors.NO_SUCH_SCOPE)
    expect_error(await api.get("/v1/files"), errors.INVALID_PARAMETER)


async def test_no_export_is_known(emulator: Emulator) -> None:
    api = await emulator.api()
    expect_error(await api.get("/v1/files/exported/fe_1234"), errors.NO_SUCH_EXPORT)


@pytest.mark.settings(files_max_bytes=1000, files_device_max_bytes=1000)
async def test_an_api_upload_over_the_limit_is_413(emulator: Emulator) -> None:
    api = await emulator.api()
    expect_error(await api_put(api, "/big.bin", b"x" * 1001), errors.FILE_TOO_LARGE)
    assert await paths(api, "//") == []


async def test_files_are_the_operators_own(emulator: Emulator) -> None:
    mine = await emulator.api()
    other = await emulator.new_operator()
    await api_put(mine, "/secret.txt", b"mine")
    assert await paths(other, "//") == []
    expect_error(
        await other.call("GET", "/v1/files/private/secret.txt", allow_redirects=False),
        errors.NO_SUCH_FILE,
    )


async def test_a_devices_upload_is_listed_and_downloaded_through_the_api(
    emulator: Emulator,
) -> None:
    api = await emulator.api()
    await enable_files(api)
    await device(emulator, "PUT", "/camera/shot.jpg", b"\xff\xd8jpeg", content_type="image/jpeg")
    [entry] = entries(await api.get("/v1/files/private/camera/"))
    assert (entry["filename"], entry["contentType"], entry["contentLength"]) == (
        "shot.jpg",
        "image/jpeg",
        6,
    )
    assert (await api_download(api, "/camera/shot.jpg"))[:2] == (200, b"\xff\xd8jpeg")
    # and what the API puts, a device downloads
    await api_put(api, "/ota/fw-2.bin", b"firmware", "application/octet-stream")
    assert await device(emulator, "GET", "/ota/fw-2.bin") == (200, b"firmware")


async def test_calls_without_a_token_are_401(emulator: Emulator) -> None:
    client = emulator.api_client()
    expect_error(await client.get("/v1/files/private//"), errors.TOKEN_REQUIRED)
