"""The one frozen :class:`Settings`, parsed once at the entry point.

Sources, lowest precedence first: the defaults below, an optional TOML file (``--config`` or
``HARVEST_CONFIG``), ``HARVEST_*`` environment variables, then command-line flags. Every field
has the same name everywhere: ``max_payload_bytes`` is ``max_payload_bytes = 2048`` in TOML,
``HARVEST_MAX_PAYLOAD_BYTES=2048`` in the environment and ``--max-payload-bytes 2048`` as a flag.
Unknown keys, unknown ``HARVEST_*`` variables and bad values fail at start with a message that
names the source. Nothing here reads the environment at import time.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import tomllib
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from harvest import wire
from harvest.logcaps import MIN_REQUEST_LOG_FILE_BYTES
from quotas.limits import DEFAULT_MAX_PAYLOAD_BYTES, FILES_MAX_BYTES, FILES_MAX_DEVICE_BYTES

ENV_PREFIX = "HARVEST_"
CONFIG_ENV = "HARVEST_CONFIG"
LOG_LEVELS = ("debug", "info", "warning", "error")


class SettingsError(ValueError):
    """A setting is unknown or has a bad value; the message names the source."""


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the emulator can be told at start; see docs/settings.md."""

    host: str = _setting(
        "127.0.0.1", "address(es) every listener binds, comma-separated (0.0.0.0 or :: for all)"
    )
    port: int = _setting(
        wire.EDGE_PORT, "HTTP edge port: device writes, /v1 API, /_emulator (0 = free)"
    )
    harvest_port: int = _setting(wire.HARVEST_PORT, "raw TCP and UDP Harvest port (0 = free)")
    unified_port: int = _setting(
        wire.UNIFIED_PORT, "raw TCP and UDP Unified Endpoint port (0 = free)"
    )
    tcp_idle_timeout: float = _setting(65.0, "raw TCP: close a connection idle this long (s)")
    tcp_max_connections: int = _setting(1024, "raw TCP: most open connections per listener")
    # Connection limits and timeouts below: why each default, in docs/security.md. A device
    # keeps one connection; the per-source caps leave room for reconnects and pools, and are
    # far enough below the totals that one address cannot lock the others out (issue 9).
    tcp_max_connections_per_source: int = _setting(
        64, "raw TCP: most open connections from one address (an IPv6 /64) per listener"
    )
    http_max_connections: int = _setting(1024, "HTTP edge: most open connections")
    http_max_connections_per_source: int = _setting(
        256, "HTTP edge: most open connections from one address (an IPv6 /64)"
    )
    first_byte_timeout: float = _setting(
        20.0, "raw TCP and HTTP edge: close a connection that sends nothing this long (s)"
    )
    udp_max_in_flight: int = _setting(20000, "raw UDP: most datagrams being stored at once")
    beam_psk: str = _setting("", "Beam pre-shared key; set, X-Soracom-IMSI writes must be signed")
    beam_max_skew_ms: int = _setting(0, "Beam: largest signature timestamp skew in ms (0 = any)")
    ue_map: str = _setting(
        "", "private core: ADDRESS-or-CIDR=IMSI pairs, comma-separated (TOML: a table)"
    )
    dns: str = _setting(
        "",
        "DNS responder on HOST:PORT, UDP and TCP (e.g. 0.0.0.0:53; empty = off): SORACOM's names"
        " answer the emulator's own address as the asker sees it",
    )
    dns_names: str = _setting(
        "", "more names the DNS responder answers with the emulator's address, comma-separated"
    )
    dns_other: str = _setting(
        "refuse", "names the DNS responder does not serve: refuse (REFUSED) or forward"
    )
    dns_upstream: str = _setting(
        "", "the resolver dns_other = forward asks, HOST or HOST:PORT (port 53 by default)"
    )
    dns_ttl: int = _setting(60, "TTL in seconds of the DNS responder's answers")
    link_seed: int = _setting(0, "seed of the link profiles' random draws (reproducible runs)")
    session_status: str = _setting(
        "traffic",
        "sessionStatus.online: traffic (while the SIM holds a TCP connection or sent within"
        " session_idle_timeout) or address (whenever it has a session address)",
    )
    session_idle_timeout: float = _setting(
        300.0, "seconds after a SIM's last traffic that its session shows offline"
    )
    sessionless_sims: str = _setting(
        "drop",
        "inactive, suspended, terminated or barred SIMs: drop (no reply at all, as the network"
        " gives them no data session) or refuse (an explicit 403)",
    )
    invalid_json: str = _setting(
        "refuse",
        "a body sent as application/json that is not JSON: refuse (400 HEM4006) or store (kept"
        " as sent); the real service's answer is not documented",
    )
    device_error_body: str = _setting(
        "json",
        'device HTTP refusals: json ({"code","message"}) or empty (the status alone); the real'
        " service documents only the status",
    )
    device_http: str = _setting(
        "lean",
        "device HTTP writes: lean (the edge serves a plain device write itself, without aiohttp's"
        " application layer; anything else goes to aiohttp) or aiohttp (aiohttp serves every"
        " request)",
    )
    unified_harvest_status: int = _setting(
        201,
        "Harvest's statusCode inside a Unified-format reply: 201 (what Harvest answers) or 204"
        " (SORACOM's documentation example)",
    )
    quota_policy: str = _setting(
        "bill", "past the 2,000 daily writes: bill (accept) or reject (429)"
    )
    rate_limits: bool = _setting(True, "enforce the rate ceilings below (real time, spec B9)")
    rate_limit_counting: str = _setting(
        "concurrent",
        "which requests the ceilings count: concurrent (only those that overlap another of the"
        " same SIM or operator: a client that waits for each answer is never limited) or every",
    )
    device_writes_per_second: int = _setting(100, "per-SIM write rate ceiling (token bucket)")
    device_write_burst: int = _setting(1000, "per-SIM write burst (bucket size)")
    api_calls_per_minute: int = _setting(1000, "per-operator management API budget a minute")
    balance_ceiling: str = _setting("", "USD the default operator's month may reach (empty = none)")
    retention_sweep_interval: float = _setting(60.0, "seconds between retention sweep passes")
    retention_sweep_rows: int = _setting(1000, "most expired entries one sweep pass deletes")
    metrics_per_sim: bool = _setting(False, "per-SIM write series in /metrics (unbounded: capped)")
    metrics_per_sim_cap: int = _setting(1000, "most SIMs that get their own metric series")
    request_log: str = _setting("plain", "one line per request: off, plain or json")
    request_log_size: int = _setting(1000, "requests kept for GET /_emulator/requests")
    request_log_rate: int = _setting(
        100, "most request log lines a second to the log (the others are counted)"
    )
    request_log_file: str = _setting(
        "", "write every request log line to this file instead of the log (empty = the log)"
    )
    request_log_file_bytes: int = _setting(
        64 * 1024 * 1024, "most bytes the request log file and its one rotated file take"
    )
    log_repeat_interval: float = _setting(
        10.0, "seconds between two lines about the same kind of abuse from one source"
    )
    data_dir: Path = _setting(Path(".harvest"), "directory of the SQLite database")
    memory: bool = _setting(False, "keep everything in memory; nothing touches the disk")
    max_payload_bytes: int = _setting(
        DEFAULT_MAX_PAYLOAD_BYTES, "largest device write in bytes; 413 above (spec A2)"
    )
    files_device_max_bytes: int = _setting(
        FILES_MAX_DEVICE_BYTES,
        "largest Harvest Files upload from a device (harvest-files.soracom.io); 413 above",
    )
    files_max_bytes: int = _setting(
        FILES_MAX_BYTES, "largest Harvest Files upload through the API (putFile); 413 above"
    )
    files_url_seconds: int = _setting(
        3600, "how long getFile's download URL stays valid (emulator clock), seconds"
    )
    keepalive_timeout: float = _setting(65.0, "HTTP keep-alive idle timeout, seconds (spec A1)")
    control: bool = _setting(True, "serve the /_emulator control plane")
    control_token: str = _setting("", "if set, /_emulator needs X-Emulator-Token: <token>")
    console: bool = _setting(
        True, "serve the web console at /console/ (part of the control plane: off with it)"
    )
    console_clients: int = _setting(
        8, "web console: most live-update streams open at once (/console/stream)"
    )
    operator_id: str = _setting("OP0000000000", "operator provisioned on first start")
    auth_key_id: str = _setting("keyId-harvest-emulator", "its auth key id")
    auth_key: str = _setting("secret-harvest-emulator", "its auth key secret")
    email: str = _setting("emulator@example.com", "its root email")
    password: str = _setting("emulator", "its root password")
    default_imsi: str = _setting("001010000000001", "IMSI of the SIM provisioned on first start")
    default_session_address: str = _setting("127.0.0.1", "that SIM's session address")
    group_commit_max: int = _setting(2048, "most writes committed in one SQLite transaction")
    journal_fold_rows: int = _setting(
        20_000, "journalled writes that make the SQLite store fold its journal at once"
    )
    log_level: str = _setting("info", "debug, info, warning or error")

    def __post_init__(self) -> None:
        for name in ("port", "harvest_port", "unified_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise SettingsError(f"{name} must be a port from 0 to 65535, not {value}")
        if not 1 <= self.max_payload_bytes <= 16 * 1024 * 1024:
            raise SettingsError("max_payload_bytes must be from 1 to 16777216")
        for name in (
            "keepalive_timeout",
            "tcp_idle_timeout",
            "first_byte_timeout",
            "log_repeat_interval",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        for name in (
            "tcp_max_connections",
            "tcp_max_connections_per_source",
            "http_max_connections",
            "http_max_connections_per_source",
            "udp_max_in_flight",
            "request_log_rate",
        ):
            if not 1 <= getattr(self, name) <= 1_000_000:
                raise SettingsError(f"{name} must be from 1 to 1000000")
        if not self.hosts:
            raise SettingsError("host must name at least one address")
        if self.request_log not in ("off", "plain", "json"):
            raise SettingsError("request_log must be off, plain or json")
        if not 1 <= self.request_log_size <= 1_000_000:
            raise SettingsError("request_log_size must be from 1 to 1000000")
        if not MIN_REQUEST_LOG_FILE_BYTES <= self.request_log_file_bytes <= 2**40:
            raise SettingsError(
                f"request_log_file_bytes must be from {MIN_REQUEST_LOG_FILE_BYTES} to {2**40}"
            )
        if self.rate_limit_counting not in ("concurrent", "every"):
            raise SettingsError("rate_limit_counting must be concurrent or every")
        if self.sessionless_sims not in ("drop", "refuse"):
            raise SettingsError("sessionless_sims must be drop or refuse")
        if self.invalid_json not in ("refuse", "store"):
            raise SettingsError("invalid_json must be refuse or store")
        if self.device_error_body not in ("json", "empty"):
            raise SettingsError("device_error_body must be json or empty")
        if self.device_http not in ("lean", "aiohttp"):
            raise SettingsError("device_http must be lean or aiohttp")
        if self.unified_harvest_status not in (201, 204):
            raise SettingsError("unified_harvest_status must be 201 or 204")
        if self.quota_policy not in ("bill", "reject"):
            raise SettingsError("quota_policy must be bill or reject")
        for name in (
            "device_writes_per_second",
            "device_write_burst",
            "api_calls_per_minute",
            "retention_sweep_rows",
        ):
            if not 1 <= getattr(self, name) <= 10_000_000:
                raise SettingsError(f"{name} must be from 1 to 10000000")
        if self.retention_sweep_interval <= 0:
            raise SettingsError("retention_sweep_interval must be positive")
        if self.balance_ceiling:
            try:
                ceiling = Decimal(self.balance_ceiling)
            except ArithmeticError:
                raise SettingsError("balance_ceiling must be an amount in USD") from None
            if not ceiling.is_finite() or ceiling < 0:
                raise SettingsError("balance_ceiling must be a non-negative amount in USD")
        if not 1 <= self.files_device_max_bytes <= self.files_max_bytes <= FILES_MAX_BYTES:
            raise SettingsError(
                f"files_device_max_bytes and files_max_bytes must satisfy 1 <="
                f" files_device_max_bytes <= files_max_bytes <= {FILES_MAX_BYTES}"
            )
        if not 1 <= self.files_url_seconds <= 604_800:
            raise SettingsError("files_url_seconds must be from 1 to 604800 (7 days)")
        if not 1 <= self.console_clients <= 1000:
            raise SettingsError("console_clients must be from 1 to 1000")
        if self.beam_max_skew_ms < 0:
            raise SettingsError("beam_max_skew_ms must not be negative")
        self.ue_routes  # noqa: B018 - validates the map at start
        self.dns_address  # noqa: B018 - validates the DNS listener's address at start
        self.dns_upstream_address  # noqa: B018
        self.dns_extra_names  # noqa: B018
        if self.dns_other not in ("refuse", "forward"):
            raise SettingsError("dns_other must be refuse or forward")
        if self.dns_other == "forward" and not self.dns_upstream:
            raise SettingsError("dns_other = forward needs dns_upstream")
        if not 0 <= self.dns_ttl <= 2**31 - 1:  # RFC 2181 section 8
            raise SettingsError("dns_ttl must be from 0 to 2147483647")
        if self.session_status not in ("traffic", "address"):
            raise SettingsError("session_status must be traffic or address")
        if self.session_idle_timeout <= 0:
            raise SettingsError("session_idle_timeout must be positive")
        if not 1 <= self.group_commit_max <= 100_000:
            raise SettingsError("group_commit_max must be from 1 to 100000")
        if not 1 <= self.journal_fold_rows <= 10_000_000:
            raise SettingsError("journal_fold_rows must be from 1 to 10000000")
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        if not self.operator_id.startswith("OP"):
            raise SettingsError("operator_id must start with OP")
        if not self.auth_key_id.startswith("keyId-"):
            raise SettingsError("auth_key_id must start with keyId-")
        if not wire.is_imsi(self.default_imsi):
            raise SettingsError("default_imsi must be 6 to 15 digits")
        try:
            ipaddress.ip_address(self.default_session_address)
        except ValueError:
            raise SettingsError("default_session_address must be an IP address") from None

    @property
    def console_on(self) -> bool:
        """Whether the web console is served: it is part of the control plane."""
        return self.control and self.console

    @property
    def exposed(self) -> bool:
        """Whether a listener binds an address other hosts can reach: anything but loopback
        addresses and ``localhost`` (``0.0.0.0`` and ``::`` are every address)."""
        for host in self.hosts:
            if host.lower() == "localhost":
                continue
            try:
                if ipaddress.ip_address(host).is_loopback:
                    continue
            except ValueError:
                pass  # a host name: assume it is reachable
            return True
        return False

    def secured(self, token: Callable[[], str]) -> Settings:
        """These settings, safe to serve: bound off loopback with the control plane on and no
        ``control_token``, the control plane gets the token ``token()`` makes (as Jupyter
        does): reset, snapshots with credentials and SIM provisioning must not be open to the
        network (docs/security.md)."""
        if self.control and not self.control_token and self.exposed:
            return dataclasses.replace(self, control_token=token())
        return self

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every address to bind (``host`` may list several, e.g. ``127.0.0.1,::1``)."""
        return tuple(h.strip() for h in self.host.split(",") if h.strip())

    @property
    def ue_routes(self) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]:
        """``ue_map`` as (network, IMSI) pairs, most specific network first."""
        routes = []
        for pair in (p.strip() for p in self.ue_map.split(",") if p.strip()):
            where, sep, imsi = pair.partition("=")
            imsi = imsi.strip()
            try:
                network = ipaddress.ip_network(where.strip(), strict=False)
            except ValueError:
                raise SettingsError(
                    f"ue_map: {where.strip()!r} is not an address or CIDR"
                ) from None
            if not sep or not wire.is_imsi(imsi):
                raise SettingsError(f"ue_map: {pair!r} must be ADDRESS-or-CIDR=IMSI")
            routes.append((network, imsi))
        return tuple(sorted(routes, key=lambda r: -r[0].prefixlen))

    @property
    def dns_address(self) -> tuple[str, int] | None:
        """``dns`` as (host, port), ``None`` when the responder is off."""
        if not self.dns:
            return None
        return _host_port("dns", self.dns, None)

    @property
    def dns_upstream_address(self) -> tuple[str, int] | None:
        """``dns_upstream`` as (host, port), ``None`` when unset."""
        if not self.dns_upstream:
            return None
        return _host_port("dns_upstream", self.dns_upstream, wire.DNS_PORT)

    @property
    def dns_extra_names(self) -> tuple[str, ...]:
        """``dns_names``, lowercase and without a trailing dot."""
        names = tuple(n.strip().lower().rstrip(".") for n in self.dns_names.split(",") if n.strip())
        for name in names:
            labels = name.split(".")
            if len(name) > 253 or not all(0 < len(label) <= 63 for label in labels):
                raise SettingsError(f"dns_names: {name!r} is not a host name")
        return names

    @property
    def database_path(self) -> Path | None:
        """The SQLite file, or ``None`` with ``memory``."""
        return None if self.memory else self.data_dir / "harvest.sqlite3"


def _host_port(name: str, text: str, default_port: int | None) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or, with a ``default_port``, a bare address."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":") if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise SettingsError(f"{name}: {host!r} is not an IP address") from None
    if port_text is None:
        if default_port is None:
            raise SettingsError(f"{name} must be HOST:PORT, not {text!r}")
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) <= 65535:
        raise SettingsError(f"{name}: {port_text!r} is not a port from 0 to 65535")
    return host, int(port_text)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_TYPES: dict[str, Any] = typing.get_type_hints(Settings)


def _convert(name: str, raw: Any, source: str, *, typed: bool = False) -> Any:
    """Turn ``raw`` into the field's type, strictly.

    Flags and environment variables are text and are parsed; TOML values are ``typed`` and must
    already have the field's type (``port = "8080"`` is an error, not a port).
    """
    kind = _TYPES[name]
    where = f"{source}: {name}"
    if typed and isinstance(raw, str) and kind not in (str, Path):
        expected = {bool: "true or false", int: "a whole number", float: "a number"}[kind]
        raise SettingsError(f"{where} must be {expected}, not the string {raw!r}")
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(raw, str) and raw.lower() in ("false", "0", "no", "off"):
            return False
        raise SettingsError(f"{where} must be true or false, not {raw!r}")
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            try:
                return int(raw.strip(), 10)
            except ValueError:
                pass
        raise SettingsError(f"{where} must be a whole number, not {raw!r}")
    if kind is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw)
            except ValueError:
                pass
        raise SettingsError(f"{where} must be a number, not {raw!r}")
    if not isinstance(raw, str):
        raise SettingsError(f"{where} must be a string, not {raw!r}")
    return Path(raw) if kind is Path else raw


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path} is not valid TOML: {error}") from None
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in _FIELDS:
            raise SettingsError(f"config file {path}: unknown setting {key!r}")
        if key == "ue_map" and isinstance(raw, dict):
            # [ue_map] "10.45.0.0/16" = "001010000000001": the natural TOML form
            if not all(isinstance(v, str) for v in raw.values()):
                raise SettingsError(f"config file {path}: ue_map values must be IMSI strings")
            raw = ",".join(f"{k}={v}" for k, v in raw.items())
        values[key] = _convert(key, raw, f"config file {path}", typed=True)
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting, plus ``--config``; every flag defaults to "not given"."""
    parser.add_argument("--config", metavar="FILE", help="TOML file of settings")
    for name, spec in _FIELDS.items():
        flag = "--" + name.replace("_", "-")
        if _TYPES[name] is bool:
            parser.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=spec.metadata["help"],
            )
        else:
            parser.add_argument(
                flag,
                dest=name,
                default=None,
                metavar=name.upper(),
                help=f"{spec.metadata['help']} (default: {spec.default})",
            )


def from_sources(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from parsed flags (``argparse`` namespace vars) and an environment."""
    flags = dict(flags or {})
    environ = environ or {}
    values: dict[str, Any] = {}

    config = flags.pop("config", None) or environ.get(CONFIG_ENV)
    if config:
        values.update(_read_toml(Path(config)))

    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key == CONFIG_ENV:
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in _FIELDS:
            raise SettingsError(f"environment: unknown variable {key}")
        values[name] = _convert(name, raw, f"environment {key}")

    for name, raw in flags.items():
        if name in _FIELDS and raw is not None:
            values[name] = _convert(name, raw, "flag --" + name.replace("_", "-"))

    return Settings(**values)


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> Settings:
    """Parse ``serve``'s flags alone (used by tests and embedders)."""
    parser = argparse.ArgumentParser(prog="harvest-emulator serve", exit_on_error=False)
    add_arguments(parser)
    try:
        namespace, extra = parser.parse_known_args(list(argv))
    except argparse.ArgumentError as error:
        raise SettingsError(str(error)) from None
    if extra:
        raise SettingsError(f"unrecognized arguments: {' '.join(extra)}")
    return from_sources(vars(namespace), environ)
