"""A private cellular core in network namespaces, for tests (issue 12, item 3).

:func:`private_core` builds, with ``ip netns`` and veth pairs:

- a **core** namespace with a bridge at ``10.45.0.1/16`` (Open5GS's usual UE pool, which exists
  only on these links), where the emulator runs;
- **UE** namespaces, each with one address of the pool (``10.45.0.2``, ``.3``, ...) and a default
  route through the core, whose resolver is the core's DNS (``/etc/netns/<ue>/resolv.conf``,
  which ``ip netns exec`` mounts over ``/etc/resolv.conf``);
- a private link from this (the test's) namespace to the core (a random ``10.254.x.0/30``), so
  the test can drive the control plane and read the API without being a UE.

Names carry a random suffix, so parallel runs do not collide, and everything is removed on
exit, also when the test fails. :func:`unavailable` says why a machine cannot build it (not
root, no ``ip``), for a skip; with ``CI`` set the test must run instead.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

UE_POOL = ipaddress.ip_network("10.45.0.0/16")
CORE_ADDRESS = "10.45.0.1"
NETNS_ETC = Path("/etc/netns")


def ip(*args: str, namespace: str | None = None) -> str:
    """Run ``ip ARGS`` (in ``namespace``); raise with its stderr when it fails."""
    command = ["ip", *(("-n", namespace) if namespace else ()), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done.stdout


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or ``None`` when they can."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (or CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    probe = f"hvprobe{secrets.token_hex(3)}"
    try:
        ip("netns", "add", probe)
    except RuntimeError as error:
        return f"cannot create a network namespace: {error}"
    ip("netns", "del", probe)
    return None


@dataclass
class PrivateCore:
    core: str
    ues: list[str]
    ue_addresses: list[str]
    #: The core's address on the test's private link, and the test's own.
    core_link_address: str
    host_link_address: str
    _cleanup: list[tuple[str, ...]] = field(default_factory=list)

    def exec_prefix(self, namespace: str) -> list[str]:
        return ["ip", "netns", "exec", namespace]

    def run(
        self, namespace: str, command: Sequence[str], timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """``command`` inside ``namespace`` (with that namespace's resolv.conf)."""
        return subprocess.run(
            [*self.exec_prefix(namespace), *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _free_link() -> ipaddress.IPv4Network:
    """A /30 of 10.254.0.0/16 that no interface of this namespace uses."""
    used = ip("-4", "-o", "addr", "show")
    for _ in range(50):
        network = ipaddress.IPv4Network(f"10.254.{secrets.randbelow(256)}.0/30")
        if f" 10.254.{network.network_address.packed[2]}." not in used:
            return network
    raise RuntimeError("no free /30 in 10.254.0.0/16")


@contextlib.contextmanager
def private_core(ue_count: int = 3) -> Iterator[PrivateCore]:
    suffix = secrets.token_hex(3)
    core = f"hvc{suffix}"
    ues = [f"hvu{i}{suffix}" for i in range(ue_count)]
    addresses = [str(UE_POOL.network_address + 2 + i) for i in range(ue_count)]
    link = _free_link()
    core_link, host_link = str(link.network_address + 2), str(link.network_address + 1)
    made: list[str] = []
    host_veth = f"hvo{suffix}"
    try:
        for namespace in (core, *ues):
            ip("netns", "add", namespace)
            made.append(namespace)
            ip("link", "set", "lo", "up", namespace=namespace)
        ip("link", "add", "br0", "type", "bridge", namespace=core)
        ip("addr", "add", f"{CORE_ADDRESS}/16", "dev", "br0", namespace=core)
        ip("link", "set", "br0", "up", namespace=core)
        for index, (ue, address) in enumerate(zip(ues, addresses, strict=True)):
            core_end, ue_end = f"hva{index}{suffix}", f"hvb{index}{suffix}"
            ip("link", "add", core_end, "netns", core, "type", "veth", "peer", ue_end, "netns", ue)
            ip("link", "set", core_end, "master", "br0", "up", namespace=core)
            ip("addr", "add", f"{address}/16", "dev", ue_end, namespace=ue)
            ip("link", "set", ue_end, "up", namespace=ue)
            ip("route", "add", "default", "via", CORE_ADDRESS, namespace=ue)
            etc = NETNS_ETC / ue
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "resolv.conf").write_text(f"nameserver {CORE_ADDRESS}\n", encoding="utf-8")
        ip("link", "add", host_veth, "type", "veth", "peer", f"hvp{suffix}", "netns", core)
        ip("addr", "add", f"{host_link}/30", "dev", host_veth)
        ip("link", "set", host_veth, "up")
        ip("addr", "add", f"{core_link}/30", "dev", f"hvp{suffix}", namespace=core)
        ip("link", "set", f"hvp{suffix}", "up", namespace=core)
        yield PrivateCore(core, ues, addresses, core_link, host_link)
    finally:
        with contextlib.suppress(RuntimeError):
            ip("link", "del", host_veth)
        for namespace in made:
            with contextlib.suppress(RuntimeError):
                ip("netns", "del", namespace)  # its veth ends, and their peers, go with it
        for ue in ues:
            shutil.rmtree(NETNS_ETC / ue, ignore_errors=True)
        with contextlib.suppress(OSError):
            NETNS_ETC.rmdir()  # only when no other run still has its files there
