"""Harvest Files on a real emulator process (issue 13, item 3 and "Done when"): an answered
upload survives SIGKILL and a restart, a crash mid-upload leaves no half file, and a 100 MiB
upload streams through with bounded memory (the process's RSS is read while it runs)."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.harvest.files.helpers import FILES_HOST
from tests.support.clients import ApiClient, device_session
from tests.support.process import running

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

MIB = 1024 * 1024


async def enable_files(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        api = await ApiClient(session, base).login()
        group_id = (await api.get("/v1/subscribers/001010000000001")).json["groupId"]
        reply = await api.call(
            "PUT",
            f"/v1/groups/{group_id}/configuration/SoracomHarvestFiles",
            json_body=[{"key": "enabled", "value": True}],
        )
        assert reply.status == 200


def pattern(index: int, size: int) -> bytes:
    return hashlib.sha256(str(index).encode()).digest() * (size // 32) + b"!" * (size % 32)


async def chunks(total: int, chunk: int = MIB, pause: float = 0.0) -> AsyncIterator[bytes]:
    """``total`` bytes, made as they are sent (the client holds one chunk at a time)."""
    block = bytes(range(256)) * (chunk // 256)
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece
        if pause:
            await asyncio.sleep(pause)


async def listing(base: str, directory: str) -> list[dict[str, object]]:
    async with aiohttp.ClientSession() as session:
        api = await ApiClient(session, base).login()
        return await api.all_pages(f"/v1/files/private{directory}", limit=100)


async def test_answered_uploads_survive_sigkill_and_a_cut_one_leaves_nothing(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    answered: dict[str, bytes] = {}
    with running(["--port", "0", "--data-dir", str(data_dir)]) as process:
        base = process.base_url
        await enable_files(base)
        async with device_session("127.0.0.1") as device:
            for index in range(20):
                body = pattern(index, 1000 + index * 997)
                async with device.put(
                    f"{base}/kept/{index}.bin", data=body, headers={"Host": FILES_HOST}
                ) as response:
                    assert response.status == 201
                answered[f"/kept/{index}.bin"] = body

            async def slow_upload() -> None:
                with pytest.raises(aiohttp.ClientError):
                    async with device.put(
                        f"{base}/cut/half.bin",
                        data=chunks(20 * MIB, chunk=64 * 1024, pause=0.01),  # 3 s
                        headers={"Host": FILES_HOST},
                    ) as response:
                        await response.read()

            upload = asyncio.create_task(slow_upload())
            await asyncio.sleep(1.0)  # a few MiB are in
            process.popen.send_signal(signal.SIGKILL)
            await asyncio.to_thread(process.popen.wait)
            await upload
    assert any((data_dir / "files" / "tmp").iterdir())  # the cut upload's temporary file

    with running(["--port", "0", "--data-dir", str(data_dir)]) as process:
        base = process.base_url
        kept = await listing(base, "/kept/")
        assert sorted(str(e["filePath"]) for e in kept) == sorted(answered)
        assert all(e["filename"] != "half.bin" for e in await listing(base, "//"))
        async with device_session("127.0.0.1") as device:
            for path, body in answered.items():
                async with device.get(base + path, headers={"Host": FILES_HOST}) as response:
                    assert (response.status, await response.read()) == (200, body)
        # nothing half written is left: no temporary file, one body per file
        assert list((data_dir / "files" / "tmp").iterdir()) == []
        assert len(list((data_dir / "files" / "blobs").glob("*/*"))) == len(answered)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
async def test_a_100_mib_upload_streams_with_bounded_memory(tmp_path: Path) -> None:
    size = 100 * MIB  # the limit over cellular (notes section 2)
    with running(["--port", "0", "--data-dir", str(tmp_path / "data")]) as process:
        base, pid = process.base_url, process.popen.pid
        await enable_files(base)
        baseline = rss_bytes(pid)
        peak = baseline
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_bytes(pid))
                await asyncio.sleep(0.01)

        sampler = asyncio.create_task(sample())
        started = time.monotonic()
        async with device_session("127.0.0.1") as device:
            async with device.put(
                base + "/ota/firmware.img",
                data=chunks(size),
                headers={"Host": FILES_HOST, "Content-Type": "application/octet-stream"},
            ) as response:
                assert response.status == 201
            elapsed = time.monotonic() - started
            digest = hashlib.md5(usedforsecurity=False)
            received = 0
            async with device.get(
                base + "/ota/firmware.img", headers={"Host": FILES_HOST}
            ) as response:
                assert response.status == 200
                async for piece in response.content.iter_chunked(MIB):
                    digest.update(piece)
                    received += len(piece)
            done.set()
            await sampler
            expected = hashlib.md5(usedforsecurity=False)
            async for piece in chunks(size):
                expected.update(piece)
            assert (received, digest.hexdigest()) == (size, expected.hexdigest())
            growth = peak - baseline
            print(
                f"\n100 MiB upload in {elapsed:.1f} s: RSS {baseline / MIB:.1f} MiB before, "
                f"peak {peak / MIB:.1f} MiB (+{growth / MIB:.1f} MiB) during upload and download"
            )
            assert growth < 32 * MIB, f"RSS grew by {growth / MIB:.1f} MiB"
            # one byte more is refused before the body is read (Content-Length says so)
            async with device.put(
                base + "/ota/too-big.img",
                data=chunks(size + 1),
                headers={"Host": FILES_HOST, "Content-Length": str(size + 1)},
            ) as response:
                assert response.status == 413
