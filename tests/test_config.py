"""Settings: read once from AUTHGATE_* (and .env), validated, secrets refused when weak."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from authgate.config import Settings, looks_random
from authgate.errors import ConfigurationError
from authgate.keyfiles import signing_key

STRONG = "q3ZrT8vLm0XbW2yNcA7pHsJ4dK9fUe1G"  # a typical random key, in the source for tests


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


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "AUTHGATE_REFRESH_ROTATION",
            "maybe",
            "AUTHGATE_REFRESH_ROTATION: expected `true` or `false`; got 'maybe'.",
        ),
        (
            "AUTHGATE_ENV",
            "prod",
            "AUTHGATE_ENV: expected one of `development`, `production`; got 'prod'.",
        ),
        (
            "AUTHGATE_LOG_LEVEL",
            "loud",
            "AUTHGATE_LOG_LEVEL: expected one of `DEBUG`, `INFO`, `WARNING`, `ERROR` "
            "(in any case); got 'loud'.",
        ),
        (
            "AUTHGATE_COOKIE_SAMESITE",
            "sometimes",
            "AUTHGATE_COOKIE_SAMESITE: expected one of `strict`, `lax`, `none`; got 'sometimes'.",
        ),
        ("AUTHGATE_PORT", "eighty", "AUTHGATE_PORT: expected a whole number; got 'eighty'."),
    ],
)
def test_invalid_values_say_what_is_accepted(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({variable: value}, dotenv=None)
    assert raised.value.message == message


@pytest.mark.parametrize("level", ["warning", "Warning", "WARNING"])
def test_log_levels_are_accepted_in_any_case(level: str) -> None:
    assert Settings.from_env({"AUTHGATE_LOG_LEVEL": level}, dotenv=None).log_level == "WARNING"


def test_unknown_authgate_variables_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="AUTHGATE_ACCES_TOKEN_TTL"):
        Settings.from_env({"AUTHGATE_ACCES_TOKEN_TTL": "60"}, dotenv=None)


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("AUTHGATE_ACCES_TOKEN_TTL_SECONDS", "AUTHGATE_ACCESS_TOKEN_TTL_SECONDS"),
        ("AUTHGATE_DATABASE", "AUTHGATE_DATABASE_URL"),
        ("AUTHGATE_LOGLEVEL", "AUTHGATE_LOG_LEVEL"),
    ],
)
def test_an_unknown_name_suggests_the_closest_setting(variable: str, suggestion: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({variable: "1"}, dotenv=None)
    assert raised.value.message == f"Unknown setting {variable} (did you mean {suggestion}?)."


def test_an_unknown_name_like_no_setting_suggests_nothing() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({"AUTHGATE_XYZZY": "1"}, dotenv=None)
    assert raised.value.message == "Unknown setting AUTHGATE_XYZZY."


def test_production_refuses_to_start_without_a_key() -> None:
    with pytest.raises(ConfigurationError, match="AUTHGATE_SIGNING_KEY"):
        Settings.from_env({"AUTHGATE_ENV": "production"}, dotenv=None)


@pytest.mark.parametrize("key", ["short", "x" * 31, "bezkoder-secret-key", "secret", "changeme"])
@pytest.mark.parametrize("env", ["production", "development"])
def test_weak_or_well_known_keys_are_refused(key: str, env: str) -> None:
    with pytest.raises(ConfigurationError, match="AUTHGATE_SIGNING_KEY"):
        Settings.from_env({"AUTHGATE_ENV": env, "AUTHGATE_SIGNING_KEY": key}, dotenv=None)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * 40, id="one-character"),
        pytest.param("ab" * 20, id="two-characters"),
        pytest.param("abcd" * 10, id="four-characters"),
        pytest.param("0000000000000000000000000000000000000001", id="almost-one-character"),
        pytest.param("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bcdefghij", id="mostly-one"),
    ],
)
@pytest.mark.parametrize("env", ["production", "development"])
def test_signing_keys_of_too_few_characters_are_refused(key: str, env: str) -> None:
    with pytest.raises(ConfigurationError, match="AUTHGATE_SIGNING_KEY repeats too few") as error:
        Settings.from_env({"AUTHGATE_ENV": env, "AUTHGATE_SIGNING_KEY": key}, dotenv=None)
    assert key not in str(error.value)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: secrets.token_urlsafe(32), id="secrets.token_urlsafe(32)"),
        pytest.param(
            lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
            id="openssl-rand-base64-32",
        ),
        pytest.param(
            lambda: base64.b64encode(secrets.token_bytes(48)).decode(),
            id="openssl-rand-base64-48",
        ),
        pytest.param(lambda: secrets.token_hex(32), id="openssl-rand-hex-32"),
    ],
)
def test_generated_signing_keys_are_accepted(make: Callable[[], str]) -> None:
    for _ in range(200):
        key = make()
        assert Settings.from_env({"AUTHGATE_SIGNING_KEY": key}, dotenv=None).signing_key == key


def test_the_key_authgate_generates_passes_its_own_rule(tmp_path: Path) -> None:
    for attempt in range(50):
        settings = Settings.from_env({"AUTHGATE_DATA_DIR": str(tmp_path / str(attempt))}, None)
        assert looks_random(signing_key(settings).decode())


def test_a_key_file_of_too_few_characters_is_refused(tmp_path: Path) -> None:
    (tmp_path / "signing.key").write_text("k" * 40)
    (tmp_path / "signing.key").chmod(0o600)
    settings = Settings.from_env({"AUTHGATE_DATA_DIR": str(tmp_path)}, dotenv=None)
    with pytest.raises(ConfigurationError, match="repeats too few characters"):
        signing_key(settings)


@pytest.mark.parametrize("origin", ["null", "NULL", "Null"])
def test_the_null_origin_is_refused(origin: str) -> None:
    with pytest.raises(ConfigurationError, match="AUTHGATE_CORS_ORIGINS: 'null' is refused"):
        Settings.from_env({"AUTHGATE_CORS_ORIGINS": f"https://app.example,{origin}"}, dotenv=None)


@pytest.mark.parametrize(
    "origin", ["app.example", "https://app.example/", "https://app.example/path", "file://"]
)
def test_cors_entries_that_are_not_origins_are_refused(origin: str) -> None:
    with pytest.raises(ConfigurationError, match=r"AUTHGATE_CORS_ORIGINS: .* is not an origin"):
        Settings.from_env({"AUTHGATE_CORS_ORIGINS": origin}, dotenv=None)


@pytest.mark.parametrize(
    "origin", ["http://localhost:8081", "https://app.example", "http://[::1]:3000"]
)
def test_exact_origins_are_accepted(origin: str) -> None:
    settings = Settings.from_env({"AUTHGATE_CORS_ORIGINS": origin}, dotenv=None)
    assert settings.cors_origins == (origin,)


@pytest.mark.parametrize(
    "proxies",
    [
        "0.0.0.0/0",
        "::/0",
        "10.0.0.1, 0.0.0.0/0",
        "128.0.0.0/1",
        "10.0.0.0/7",
        "2000::/3",
        "::/7",
        "::ffff:0:0/96",
        "::ffff:0.0.0.0/100",
    ],
)
def test_trusted_proxy_networks_that_trust_everyone_are_refused(proxies: str) -> None:
    with pytest.raises(ConfigurationError, match=r"AUTHGATE_TRUSTED_PROXIES: .* is too wide"):
        Settings.from_env({"AUTHGATE_TRUSTED_PROXIES": proxies}, dotenv=None)


@pytest.mark.parametrize(
    "proxies",
    [
        "127.0.0.1",
        "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16",
        "::1",
        "fc00::/7",
        "fd00::/8",
        "2400:cb00::/32",
        "::ffff:10.0.0.0/104",
    ],
)
def test_proxy_addresses_and_private_networks_are_accepted(proxies: str) -> None:
    settings = Settings.from_env({"AUTHGATE_TRUSTED_PROXIES": proxies}, dotenv=None)
    assert len(settings.trusted_proxies) == proxies.count(",") + 1


def test_a_trusted_proxy_that_is_not_an_address_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"AUTHGATE_TRUSTED_PROXIES: 'proxy\.local'"):
        Settings.from_env({"AUTHGATE_TRUSTED_PROXIES": "proxy.local"}, dotenv=None)


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
