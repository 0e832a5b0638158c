"""``RedisConfig``'s TLS options: checked where the config is written, and handed to redis-py in
both the host and the url form (the connections themselves: tests/test_tls_acl.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gcache import RedisConfig


@pytest.fixture
def pem(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_text("not checked here: redis-py reads it on connect\n")
    return str(path)


def test_plain_connections_get_no_tls_options() -> None:
    for config in (RedisConfig(), RedisConfig(url="redis://h:1/0")):
        assert not config.uses_tls
        assert not any(name.startswith("ssl_") for name in config.client_kwargs())


def test_host_form_passes_every_tls_option(pem: str) -> None:
    kwargs = RedisConfig(
        ssl=True,
        ssl_ca_certs=pem,
        ssl_certfile=pem,
        ssl_keyfile=pem,
        ssl_cert_reqs="optional",
        ssl_check_hostname=False,
    ).client_kwargs()
    assert kwargs["ssl"] is True
    assert kwargs["ssl_ca_certs"] == kwargs["ssl_certfile"] == kwargs["ssl_keyfile"] == pem
    assert kwargs["ssl_cert_reqs"] == "optional"
    assert kwargs["ssl_check_hostname"] is False


def test_rediss_url_takes_the_tls_options_too(pem: str) -> None:
    config = RedisConfig(url="rediss://u:p@h:6380/0", ssl_ca_certs=pem)
    assert config.uses_tls
    kwargs = config.client_kwargs()
    assert kwargs["ssl_ca_certs"] == pem
    assert kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["ssl_check_hostname"] is True
    assert "host" not in kwargs and "ssl" not in kwargs  # the url carries those


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ssl_ca_certs": "PEM"}, "ssl_ca_certs given without TLS"),
        ({"url": "redis://h:1/0", "ssl_ca_certs": "PEM"}, "without TLS"),
        ({"ssl_check_hostname": False}, "ssl_check_hostname given without TLS"),
        ({"ssl_cert_reqs": "none"}, "without TLS"),
        ({"url": "redis://h:1/0", "ssl": True}, "needs a rediss:// url"),
        ({"ssl": True, "ssl_keyfile": "PEM"}, "ssl_keyfile needs ssl_certfile"),
        ({"ssl": True, "ssl_cert_reqs": "none"}, "needs ssl_check_hostname=False"),
        ({"ssl": True, "ssl_cert_reqs": "sometimes"}, "ssl_cert_reqs must be"),
        ({"ssl": True, "ssl_ca_certs": "/nonexistent/ca.pem"}, "ssl_ca_certs: no such file"),
        ({"url": "rediss://h:1/0", "ssl_certfile": "/nonexistent/c.pem"}, "no such file"),
    ],
)
def test_bad_tls_options_fail_where_written(pem: str, fields: dict[str, Any], message: str) -> None:
    fields = {name: pem if value == "PEM" else value for name, value in fields.items()}
    with pytest.raises(ValueError, match=message):
        RedisConfig(**fields)


def test_verification_may_be_turned_off_explicitly() -> None:
    config = RedisConfig(ssl=True, ssl_cert_reqs="none", ssl_check_hostname=False)
    assert config.client_kwargs()["ssl_cert_reqs"] == "none"
