"""Settings: TOML, environment overrides, secrets and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import config
from monitor.errors import ConfigError

CREDS = {"GENESYS_CLIENT_ID": "id-1", "GENESYS_CLIENT_SECRET": "secret-1"}
SHIPPED = Path(__file__).resolve().parents[1] / "config.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_shipped_config_is_valid() -> None:
    """The config.toml in the repository loads with only the credentials set."""
    settings = config.load(SHIPPED, env=CREDS)
    assert settings.genesys.clients[0].client_secret == "secret-1"
    assert settings.genesys.resolved_api_url() == "https://api.mypurecloud.com"
    assert settings.genesys.resolved_login_url() == "https://login.mypurecloud.com"


def test_every_problem_is_reported_at_once_with_its_key(tmp_path: Path) -> None:
    """Several mistakes give one ConfigError listing each, by dotted key."""
    path = write(
        tmp_path,
        """
[genesys]
region = "mars_north_1"
users_page_size = "lots"
[storage]
batch_size = 0
colour = "blue"
[http]
listen = "nowhere"
[actions]
timezone = "Mars/Olympus"
""",
    )
    with pytest.raises(ConfigError) as caught:
        config.load(path, env=CREDS)
    problems = caught.value.problems
    assert "genesys.users_page_size: expected a whole number, got 'lots'" in problems
    assert "storage.colour: unknown setting" in problems
    assert any(p.startswith("genesys.region: unknown region 'mars_north_1'") for p in problems)
    assert "storage.batch_size: must be greater than 0, got 0" in problems
    assert "http.listen: 'nowhere' is not host:port" in problems
    assert "actions.timezone: unknown time zone 'Mars/Olympus'" in problems
    assert len(problems) == 6


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    """MONITOR_SECTION__KEY wins over the file, with TOML-typed values."""
    path = write(tmp_path, '[storage]\npath = "a.db"\n[metrics]\nper_agent = true\n')
    settings = config.load(
        path,
        env={**CREDS, "MONITOR_STORAGE__PATH": "/data/b.db", "MONITOR_METRICS__PER_AGENT": "false"},
    )
    assert settings.storage.path == "/data/b.db"
    assert settings.metrics.per_agent is False


def test_missing_credentials_name_their_source(tmp_path: Path) -> None:
    """Without credentials the error names the variable or file to set."""
    path = write(
        tmp_path,
        '[[genesys.clients]]\nclient_id_env = "A_ID"\nclient_secret_file = "/nonexistent/secret"\n',
    )
    with pytest.raises(ConfigError) as caught:
        config.load(path, env={})
    assert caught.value.problems == [
        "genesys.clients[0]: no client id (environment variable A_ID is missing or empty)",
        "genesys.clients[0]: no client secret (/nonexistent/secret is missing or empty)",
    ]


def test_secrets_cannot_be_written_in_the_file(tmp_path: Path) -> None:
    """A client secret in the TOML file is refused: secrets come from the environment."""
    path = write(tmp_path, '[[genesys.clients]]\nclient_secret = "oops"\n')
    with pytest.raises(ConfigError) as caught:
        config.load(path, env=CREDS)
    assert caught.value.problems == ["genesys.clients[0].client_secret: unknown setting"]


def test_secret_file_and_several_clients(tmp_path: Path) -> None:
    """Each OAuth client resolves its own credentials, from a file or the environment."""
    secret = tmp_path / "secret"
    secret.write_text("s2\n")
    path = write(
        tmp_path,
        f"""
[[genesys.clients]]
[[genesys.clients]]
client_id_env = "SECOND_ID"
client_secret_file = "{secret}"
""",
    )
    settings = config.load(path, env={**CREDS, "SECOND_ID": "id-2"})
    assert [(c.client_id, c.client_secret) for c in settings.genesys.clients] == [
        ("id-1", "secret-1"),
        ("id-2", "s2"),
    ]


def test_redacted_hides_secrets() -> None:
    """The printable form of the settings holds no secret."""
    settings = config.load(SHIPPED, env={**CREDS, "MONITOR_API_TOKEN": "tok"})
    shown = str(config.redacted(settings))
    assert "secret-1" not in shown
    assert "tok'" not in shown
    assert "***" in shown


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    """Unreadable files give one clear problem each."""
    with pytest.raises(ConfigError, match="no such file"):
        config.load(tmp_path / "absent.toml", env=CREDS)
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(write(tmp_path, "[genesys\n"), env=CREDS)


def test_api_url_derives_login_url(tmp_path: Path) -> None:
    """An explicit api_url without login_url: login is on the same host (e.g. the simulator)."""
    path = write(tmp_path, '[genesys]\napi_url = "http://127.0.0.1:8080/"\n')
    settings = config.load(path, env=CREDS)
    assert settings.genesys.resolved_api_url() == "http://127.0.0.1:8080"
    assert settings.genesys.resolved_login_url() == "http://127.0.0.1:8080"
