"""Settings: read once from AUTHGATE_* (and .env), validated, secrets refused when weak."""

from __future__ import annotations

from pathlib import Path

import pytest

from authgate.config import Settings
from authgate.errors import ConfigurationError
from authgate.keyfiles import signing_key

STRONG = "k" * 40


def test_defaults_need_no_configuration() -> None:
    settings = Settings.from_env({}, dotenv=None)
    assert settings.env == "development"
    assert settings.port == 8080
    assert settings.host == "127.0.0.1"
    assert settings.access_token_ttl_seconds == 900
    assert settings.refresh_token_ttl_seconds == 7 * 86400
    assert settings.refresh_rotation is True
    assert settings.cors_origins == ()
    assert settings.resolved_database_url == "sqlite:///data/authgate.db"


def test_the_documented_variables_are_read() -> None:
    settings = Settings.from_env(
        {
            "AUTHGATE_DATABASE_URL": "postgresql://db/authgate",
            "AUTHGATE_SIGNING_KEY": STRONG,
            "AUTHGATE_ACCESS_TOKEN_TTL_SECONDS": "60",
            "AUTHGATE_REFRESH_TOKEN_TTL_SECONDS": "3600",
            "AUTHGATE_REFRESH_ROTATION": "false",
            "AUTHGATE_CORS_ORIGINS": "http://localhost:8081, https://app.example",
            "AUTHGATE_ENV": "production",
            "UNRELATED": "ignored",
        },
        dotenv=None,
    )
    assert settings.database_url == "postgresql://db/authgate"
    assert settings.access_token_ttl_seconds == 60
    assert settings.refresh_token_ttl_seconds == 3600
    assert settings.refresh_rotation is False
    assert settings.cors_origins == ("http://localhost:8081", "https://app.example")
    assert settings.env == "production"


def test_a_dotenv_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("AUTHGATE_PORT=9000\nAUTHGATE_ISSUER=from-file\n")
    settings = Settings.from_env({"AUTHGATE_PORT": "9100"}, dotenv=dotenv)
    assert settings.port == 9100
    assert settings.issuer == "from-file"


def test_the_signing_key_never_appears_in_the_repr() -> None:
    settings = Settings.from_env({"AUTHGATE_SIGNING_KEY": STRONG}, dotenv=None)
    assert STRONG not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUTHGATE_ACCESS_TOKEN_TTL_SECONDS", "abc"),
        ("AUTHGATE_ACCESS_TOKEN_TTL_SECONDS", "0"),
        ("AUTHGATE_PORT", "70000"),
        ("AUTHGATE_REFRESH_ROTATION", "maybe"),
        ("AUTHGATE_ENV", "staging"),
    ],
)
def test_invalid_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env({variable: value}, dotenv=None)


def test_unknown_authgate_variables_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="AUTHGATE_ACCES_TOKEN_TTL"):
        Settings.from_env({"AUTHGATE_ACCES_TOKEN_TTL": "60"}, dotenv=None)


def test_production_refuses_to_start_without_a_key() -> None:
    with pytest.raises(ConfigurationError, match="AUTHGATE_SIGNING_KEY"):
        Settings.from_env({"AUTHGATE_ENV": "production"}, dotenv=None)


@pytest.mark.parametrize("key", ["short", "x" * 31, "bezkoder-secret-key", "secret", "changeme"])
@pytest.mark.parametrize("env", ["production", "development"])
def test_weak_or_well_known_keys_are_refused(key: str, env: str) -> None:
    with pytest.raises(ConfigurationError, match="AUTHGATE_SIGNING_KEY"):
        Settings.from_env({"AUTHGATE_ENV": env, "AUTHGATE_SIGNING_KEY": key}, dotenv=None)


def test_development_generates_one_private_key_and_keeps_it(tmp_path: Path) -> None:
    settings = Settings.from_env({"AUTHGATE_DATA_DIR": str(tmp_path)}, dotenv=None)
    first = signing_key(settings)
    path = tmp_path / "signing.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(first) >= 32
    assert signing_key(settings) == first


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    settings = Settings.from_env({"AUTHGATE_DATA_DIR": str(tmp_path)}, dotenv=None)
    signing_key(settings)
    (tmp_path / "signing.key").chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        signing_key(settings)


def test_unsupported_database_urls_are_refused() -> None:
    from authgate.storage.database import async_url

    with pytest.raises(ConfigurationError, match="AUTHGATE_DATABASE_URL"):
        async_url("oracle://db/x")
    with pytest.raises(ConfigurationError, match="AUTHGATE_DATABASE_URL"):
        async_url("not a url")


@pytest.mark.parametrize(
    ("plain", "driver"),
    [
        ("sqlite:///data/a.db", "sqlite+aiosqlite"),
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("mysql://u@h/db", "mysql+asyncmy"),
        ("mariadb://u@h/db", "mysql+asyncmy"),
    ],
)
def test_plain_urls_get_the_async_driver(plain: str, driver: str) -> None:
    from authgate.storage.database import async_url

    assert async_url(plain).drivername == driver


def test_the_suites_own_variables_are_not_settings() -> None:
    settings = Settings.from_env({"AUTHGATE_TEST_POSTGRES_URL": "postgresql://x/y"}, dotenv=None)
    assert settings.database_url == ""


@pytest.mark.parametrize(("field", "value"), [("port", 70000), ("workers", -1), ("workers", 0)])
def test_replaced_values_are_validated_like_the_environments(field: str, value: int) -> None:
    with pytest.raises(ConfigurationError, match=f"AUTHGATE_{field.upper()}"):
        Settings.from_env({}, dotenv=None).replace(**{field: value})
