"""Settings: `config.toml`, overridden by environment variables, validated into frozen dataclasses.

Resolution order, highest first: environment (`MONITOR_<SECTION>__<KEY>`, e.g.
`MONITOR_STORAGE__PATH=/data/monitor.db`), the TOML file, the defaults below. Credentials never come
from the TOML file itself: it names the environment variables or secret files that hold them.

Every problem is collected and reported at once, each with its dotted key, by ConfigError.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from monitor import schedule_config
from monitor.core import rules
from monitor.errors import ConfigError

ENV_PREFIX = "MONITOR_"

# API hosts per region, from the official SDK's region table; login and streaming hosts follow
# the SDK's rule (replace "api." by "login.").
REGIONS: dict[str, str] = {
    "us_east_1": "mypurecloud.com",
    "eu_west_1": "mypurecloud.ie",
    "ap_southeast_2": "mypurecloud.com.au",
    "ap_northeast_1": "mypurecloud.jp",
    "eu_central_1": "mypurecloud.de",
    "us_west_2": "usw2.pure.cloud",
    "ca_central_1": "cac1.pure.cloud",
    "ap_northeast_2": "apne2.pure.cloud",
    "eu_west_2": "euw2.pure.cloud",
    "ap_south_1": "aps1.pure.cloud",
    "us_east_2": "use2.us-gov-pure.cloud",
    "sa_east_1": "sae1.pure.cloud",
    "me_central_1": "mec1.pure.cloud",
    "ap_northeast_3": "apne3.pure.cloud",
    "eu_central_2": "euc2.pure.cloud",
    "mx_central_1": "mxc1.pure.cloud",
    "ap_southeast_1": "apse1.pure.cloud",
    "eusc_de_east_1": "edee1.eusc-pure.cloud",
}


@dataclass(frozen=True)
class ClientSettings:
    """One OAuth client (client-credentials grant). The secret is resolved at load time."""

    client_id_env: str = "GENESYS_CLIENT_ID"
    client_secret_env: str = "GENESYS_CLIENT_SECRET"
    client_id_file: str = ""
    client_secret_file: str = ""
    client_id: str = field(default="", repr=False)
    client_secret: str = field(default="", repr=False)


@dataclass(frozen=True)
class GenesysSettings:
    region: str = "us_east_1"
    api_url: str = ""  # overrides region (e.g. the simulator)
    login_url: str = ""
    clients: tuple[ClientSettings, ...] = (ClientSettings(),)
    # One combined topic per agent (`v2.users.{id}?presence&routingStatus`) or two topics.
    topics: Literal["combined", "separate"] = "combined"
    users_page_size: int = 100
    # Genesys refuses to page past this many results of one listing (pageNumber*pageSize).
    users_result_cap: int = 10_000
    search_page_size: int = 100
    requests_per_minute: int = 300  # per token, Genesys's documented limit
    request_timeout_s: float = 30.0
    max_retry_after_s: float = (
        180.0  # a longer Retry-After is a daily cap: give up, as the SDK does
    )

    def resolved_api_url(self) -> str:
        return (self.api_url or f"https://api.{REGIONS[self.region]}").rstrip("/")

    def resolved_login_url(self) -> str:
        if self.login_url:
            return self.login_url.rstrip("/")
        if self.api_url:
            return self.api_url.rstrip("/").replace("//api.", "//login.", 1)
        return f"https://login.{REGIONS[self.region]}"


@dataclass(frozen=True)
class RosterSettings:
    # Empty lists select every active user. Names or ids.
    divisions: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    refresh_s: float = 600.0


@dataclass(frozen=True)
class ChannelSettings:
    # No heartbeat or pong for this long: send a ping; no answer within pong_timeout_s: the socket
    # is dead. Genesys sends a heartbeat about every 30 s.
    ping_after_s: float = 45.0
    pong_timeout_s: float = 15.0
    # Replace a channel this long before it expires (channels live 24 h unless resubscribed).
    rollover_before_expiry_s: float = 3600.0
    # Refresh the OAuth token this long before it expires, and roll channels over.
    token_refresh_before_s: float = 1800.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    healthy_after_s: float = 60.0  # the backoff resets only after a channel stayed up this long
    open_timeout_s: float = 10.0


@dataclass(frozen=True)
class StorageSettings:
    path: str = "data/monitor.db"
    retention_days: int = 400
    # Rows per transaction at most. Batches this large form only when the writer is behind (under
    # light load a batch is what arrived within batch_delay_ms), and then each row costs less in a
    # larger one: bench.ingest on two million rows measured 29,692/s with 2,000 and about
    # 37,000-42,000/s with 10,000. A batch of 10,000 takes 0.1-0.25 s to commit.
    batch_size: int = 10_000
    batch_delay_ms: int = 50
    queue_size: int = 50_000
    drain_timeout_s: float = 8.0


@dataclass(frozen=True)
class HttpSettings:
    listen: str = "127.0.0.1:9464"
    # The action endpoint (POST /api/v1/presence). On an address other than loopback it needs a
    # token: the monitor refuses to start otherwise.
    actions: bool = True
    token_env: str = "MONITOR_API_TOKEN"
    token_file: str = ""
    token: str = field(default="", repr=False)
    max_body_bytes: int = 65_536

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


@dataclass(frozen=True)
class MetricsSettings:
    per_agent: bool = True
    # Agents per presence/routing status are also broken down by these agent attributes.
    by: tuple[Literal["division", "queue"], ...] = ()


@dataclass(frozen=True)
class HealthSettings:
    channel_down_s: float = 120.0


@dataclass(frozen=True)
class LogSettings:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


@dataclass(frozen=True)
class ActionSettings:
    # Share of each OAuth client's requests a minute that presence changes may use.
    rate_share: float = 0.3
    max_agents: int = 50  # per request, unless explicitly overridden
    bulk_size: int = 50  # presences per bulk write
    timezone: str = "UTC"


@dataclass(frozen=True)
class StuckSettings:
    defaults: bool = True  # the default rules, each overridable by name in [[rules]]
    evaluate_every_s: float = 5.0


@dataclass(frozen=True)
class Settings:
    genesys: GenesysSettings = GenesysSettings()
    roster: RosterSettings = RosterSettings()
    channels: ChannelSettings = ChannelSettings()
    storage: StorageSettings = StorageSettings()
    http: HttpSettings = HttpSettings()
    metrics: MetricsSettings = MetricsSettings()
    health: HealthSettings = HealthSettings()
    log: LogSettings = LogSettings()
    actions: ActionSettings = ActionSettings()
    stuck: StuckSettings = StuckSettings()
    # Checked as a whole by monitor.schedule_config and monitor.core.rules.
    schedules: tuple[dict[str, Any], ...] = ()
    rules: tuple[dict[str, Any], ...] = ()


def load(
    path: str | Path | None,
    env: Mapping[str, str] | None = None,
    *,
    require_credentials: bool = True,
) -> Settings:
    """Read, override and validate settings; raises ConfigError listing every problem.

    Commands that never talk to Genesys (export, backup, audit, ...) pass
    `require_credentials=False`: missing OAuth credentials are then not a problem."""
    env = os.environ if env is None else env
    problems: list[str] = []
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError([f"{path}: no such file"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
        except OSError as exc:
            raise ConfigError([f"{path}: cannot be read: {exc.strerror}"]) from None
    _apply_env(data, env, problems)
    # A value of the wrong type is reported and replaced by its default, so the checks across
    # fields still run on everything else: every problem is listed in one go.
    settings = _build(Settings, data, "", problems)
    secret_problems: list[str] = []
    settings = _resolve_secrets(settings, env, secret_problems)
    if require_credentials:
        problems += secret_problems
    problems += _check(settings)
    if problems:
        raise ConfigError(problems)
    return settings


def _apply_env(data: dict[str, Any], env: Mapping[str, str], problems: list[str]) -> None:
    """Overlay MONITOR_SECTION__KEY=value; values are parsed as TOML values when they can be."""
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
        try:
            value: Any = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare string, e.g. a path
        node = data
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                problems.append(f"{name}: {'.'.join(keys[:-1])} is not a table")
                break
            node = child
        else:
            node[keys[-1]] = value


T = typing.TypeVar("T")


def _build(cls: type[T], data: Any, where: str, problems: list[str]) -> T:
    """Build dataclass `cls` from a TOML table, type-checking each field; collect problems."""
    if not isinstance(data, dict):
        problems.append(f"{where or 'config'}: expected a table")
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{where}.{key}" if where else key
        if key not in fields or not fields[key].init or fields[key].repr is False:
            problems.append(f"{dotted}: unknown setting")
            continue
        coerced = _coerce(hints[key], value, dotted, problems)
        if coerced is not _INVALID:
            kwargs[key] = coerced
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        problems.append(f"{where or 'config'}: {exc}")
        return cls()


_INVALID = object()


def _coerce(hint: Any, value: Any, where: str, problems: list[str]) -> Any:
    """`value` checked against `hint`; _INVALID (after noting the problem) when it does not fit."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where, problems)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            problems.append(f"{where}: {value!r} is not one of {choices}")
            return _INVALID
        return value
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a table")
            return _INVALID
        return value
    if origin is tuple:
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list")
            return _INVALID
        items = [_coerce(args[0], v, f"{where}[{i}]", problems) for i, v in enumerate(value)]
        return _INVALID if _INVALID in items else tuple(items)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where, problems)  # type: ignore[arg-type]
    expected = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    if hint in expected:
        fits = (
            isinstance(value, hint)
            if hint in (bool, str)
            else not isinstance(value, bool)
            and isinstance(value, int if hint is int else int | float)
        )
        if not fits:
            problems.append(f"{where}: expected {expected[hint]}, got {value!r}")
            return _INVALID
        return float(value) if hint is float else value
    return value


def _read_secret(env_name: str, file_name: str, env: Mapping[str, str]) -> str | None:
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError:
            return None
    return env.get(env_name) or None


def _resolve_secrets(settings: Settings, env: Mapping[str, str], problems: list[str]) -> Settings:
    clients = []
    for n, client in enumerate(settings.genesys.clients):
        where = f"genesys.clients[{n}]"
        client_id = _read_secret(client.client_id_env, client.client_id_file, env)
        secret = _read_secret(client.client_secret_env, client.client_secret_file, env)
        if client_id is None:
            source = client.client_id_file or f"environment variable {client.client_id_env}"
            problems.append(f"{where}: no client id ({source} is missing or empty)")
        if secret is None:
            source = client.client_secret_file or f"environment variable {client.client_secret_env}"
            problems.append(f"{where}: no client secret ({source} is missing or empty)")
        clients.append(
            dataclasses.replace(client, client_id=client_id or "", client_secret=secret or "")
        )
    token = _read_secret(settings.http.token_env, settings.http.token_file, env) or ""
    return dataclasses.replace(
        settings,
        genesys=dataclasses.replace(settings.genesys, clients=tuple(clients)),
        http=dataclasses.replace(settings.http, token=token),
    )


def _positive(problems: list[str], **values: float) -> None:
    for key, value in values.items():
        if value <= 0:
            problems.append(f"{key.replace('__', '.')}: must be greater than 0, got {value}")


def _check(s: Settings) -> list[str]:
    """Checks that span more than one field's type."""
    problems: list[str] = []
    g = s.genesys
    if not g.api_url and g.region not in REGIONS:
        problems.append(f"genesys.region: unknown region {g.region!r}; one of {', '.join(REGIONS)}")
    for key, url in (("genesys.api_url", g.api_url), ("genesys.login_url", g.login_url)):
        if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
            problems.append(f"{key}: {url!r} is not an http(s) URL")
    if not g.clients:
        problems.append("genesys.clients: at least one OAuth client is needed")
    if not 1 <= g.users_page_size <= 500:
        problems.append("genesys.users_page_size: must be between 1 and 500")
    _positive(
        problems,
        genesys__requests_per_minute=g.requests_per_minute,
        genesys__users_result_cap=g.users_result_cap,
        genesys__search_page_size=g.search_page_size,
        genesys__request_timeout_s=g.request_timeout_s,
        roster__refresh_s=s.roster.refresh_s,
        channels__ping_after_s=s.channels.ping_after_s,
        channels__pong_timeout_s=s.channels.pong_timeout_s,
        channels__backoff_base_s=s.channels.backoff_base_s,
        channels__open_timeout_s=s.channels.open_timeout_s,
        storage__retention_days=s.storage.retention_days,
        storage__batch_size=s.storage.batch_size,
        storage__batch_delay_ms=s.storage.batch_delay_ms,
        storage__queue_size=s.storage.queue_size,
        storage__drain_timeout_s=s.storage.drain_timeout_s,
        health__channel_down_s=s.health.channel_down_s,
        actions__max_agents=s.actions.max_agents,
        actions__bulk_size=s.actions.bulk_size,
        http__max_body_bytes=s.http.max_body_bytes,
    )
    if s.channels.backoff_cap_s < s.channels.backoff_base_s:
        problems.append("channels.backoff_cap_s: must not be below channels.backoff_base_s")
    if not s.storage.path:
        problems.append("storage.path: must not be empty")
    host, sep, port = s.http.listen.rpartition(":")
    listen_ok = bool(sep and host and port.isdigit() and 0 <= int(port) <= 65535)
    if not listen_ok:
        problems.append(f"http.listen: {s.http.listen!r} is not host:port")
    if not 0 < s.actions.rate_share <= 1:
        problems.append("actions.rate_share: must be a share between 0 (excluded) and 1")
    try:
        ZoneInfo(s.actions.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"actions.timezone: unknown time zone {s.actions.timezone!r}")
    if listen_ok and s.http.actions and not s.http.token and not _loopback(s.http.host):
        problems.append(
            f"http.listen: {s.http.listen!r} is reachable from other hosts, so the action endpoint"
            f" needs a token: set {s.http.token_env} (or http.token_file), or set http.actions ="
            " false"
        )
    _positive(problems, stuck__evaluate_every_s=s.stuck.evaluate_every_s)
    try:
        schedule_config.load(s.schedules)
    except ValueError as exc:
        problems.append(str(exc))
    try:
        rules.load(s.rules, defaults=s.stuck.defaults, known_zones=available_timezones())
    except ValueError as exc:
        problems.append(str(exc))
    return problems


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redacted(settings: Settings) -> dict[str, Any]:
    """The settings as plain data for display, with every secret replaced by `***`."""

    def walk(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out = {}
            for f in dataclasses.fields(value):
                item = getattr(value, f.name)
                if f.repr is False:
                    out[f.name] = "***" if item else ""
                else:
                    out[f.name] = walk(item)
            return out
        if isinstance(value, tuple | list):
            return [walk(v) for v in value]
        return value

    result: dict[str, Any] = walk(settings)
    return result
