"""Client tools live apart from the server (STYLE 15): the simulator, the snapshot command line,
the pytest plugin and the control-plane client they share are clients of the server's public
interfaces, so the server never imports them, and the tools never need pytest."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap

import harvest.pytest_plugin
import harvest.testing
import harvest.testing.plugin

#: What runs only on the client side.
CLIENT_MODULES = (
    "harvest.simulator",
    "harvest.testing",
    "harvest.pytest_plugin",
    "harvest.control_client",
    "harvest.snapshot.cli",
    "harvest.cli",
)


def _modules_after(code: str) -> set[str]:
    """The project's modules imported by ``code``, run in a fresh interpreter."""
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import sys
        print("\\n".join(m for m in sys.modules if m.split(".")[0] in
                        ("harvest", "gateway", "quotas", "pytest", "_pytest")))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(done.stdout.split())


def _client_side(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.startswith(CLIENT_MODULES))


def test_a_running_server_imports_no_client_tool() -> None:
    modules = _modules_after(
        """
        import asyncio

        from harvest.server import serving
        from harvest.settings import Settings

        async def main():
            settings = Settings(memory=True, port=0, harvest_port=0, unified_port=0)
            async with serving(settings):
                pass

        asyncio.run(main())
        """
    )
    assert "harvest.snapshot.handlers" in modules  # the server mounts the snapshot routes
    assert _client_side(modules) == []


def test_the_command_line_tools_need_no_pytest() -> None:
    modules = _modules_after(
        """
        import harvest.cli
        import harvest.control_client
        import harvest.simulator
        import harvest.snapshot.cli
        import harvest.testing

        harvest.testing.HarvestEmulator  # loads the client and the server
        """
    )
    assert "harvest.testing.client" in modules
    assert not [m for m in modules if m.split(".")[0] in ("pytest", "_pytest")]


def test_the_plugin_is_registered_from_its_package() -> None:
    [entry] = [
        e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "harvest_emulator"
    ]
    assert entry.value == "harvest.testing.plugin"
    assert entry.load() is harvest.testing.plugin


def test_pytest_loads_only_the_plugin_until_a_test_asks() -> None:
    modules = _modules_after("import harvest.testing.plugin")
    assert sorted(m for m in modules if m.startswith("harvest")) == [
        "harvest",
        "harvest.testing",
        "harvest.testing.plugin",
    ]


def test_the_old_plugin_module_is_the_same_plugin() -> None:
    old = harvest.pytest_plugin
    for name in harvest.testing.__all__:
        assert getattr(old, name) is getattr(harvest.testing, name), name
    for name in harvest.testing.plugin.__all__:
        assert getattr(old, name) is getattr(harvest.testing.plugin, name), name
