"""Settings: env prefix, *_FILE secrets, and errors that name the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.config import Settings


def test_env_prefix_and_defaults(monkeypatch) -> None:
    monkeypatch.setenv("AGENT_API_KEYS", "one, two\nthree")
    monkeypatch.setenv("AGENT_TOOLS_ALLOWED", "calculator")
    monkeypatch.setenv("AGENT_RATE_LIMIT_PER_MINUTE", "7")
    monkeypatch.setenv("AGENT_LOG_LEVEL", "debug")
    s = Settings()
    assert s.api_key_list == ["one", "two", "three"]
    assert s.allowed_tools == frozenset({"calculator"})
    assert s.rate_limit_per_minute == 7
    assert s.log_level == "DEBUG"
    assert s.generator == "extractive" and s.redis_url is None and s.milvus_uri is None


@pytest.mark.parametrize(("field", "env"), [
    ("api_keys", "AGENT_API_KEYS"), ("redis_password", "AGENT_REDIS_PASSWORD"),
    ("milvus_token", "AGENT_MILVUS_TOKEN"), ("generator_api_key", "AGENT_GENERATOR_API_KEY"),
])
def test_every_secret_reads_from_a_file(monkeypatch, tmp_path, field: str, env: str) -> None:
    secret = tmp_path / field
    secret.write_text("s3cret-value\n")
    monkeypatch.setenv(f"{env}_FILE", str(secret))
    s = Settings()
    assert s.secret(field) == "s3cret-value"
    assert "s3cret-value" not in repr(s)


def test_secret_and_file_together_is_an_error(monkeypatch, tmp_path) -> None:
    (tmp_path / "k").write_text("a")
    monkeypatch.setenv("AGENT_API_KEYS", "b")
    monkeypatch.setenv("AGENT_API_KEYS_FILE", str(tmp_path / "k"))
    with pytest.raises(ValidationError, match="AGENT_API_KEYS and AGENT_API_KEYS_FILE are both set"):
        Settings()


def test_missing_secret_file_names_the_variable(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("AGENT_REDIS_PASSWORD_FILE", str(tmp_path / "absent"))
    with pytest.raises(ValidationError, match="AGENT_REDIS_PASSWORD_FILE=.*absent cannot be read"):
        Settings()


def test_invalid_values_fail_fast() -> None:
    with pytest.raises(ValidationError, match="AGENT_GENERATOR_BASE_URL"):
        Settings(generator="openai")
    with pytest.raises(ValidationError, match="generator"):
        Settings(generator="magic")
    with pytest.raises(ValidationError, match="AGENT_REDIS_SENTINEL_HOSTS entry 'nohost'"):
        Settings(redis_sentinel_hosts="a:1,nohost")
    assert Settings(redis_sentinel_hosts="a:26379, b:26380").sentinel_hosts == [("a", 26379), ("b", 26380)]
    with pytest.raises(ValidationError, match="AGENT_CHUNK_OVERLAP_TOKENS"):
        Settings(chunk_size_tokens=200, chunk_overlap_tokens=101)
    with pytest.raises(ValidationError, match="phrase_min_coverage"):
        Settings(phrase_min_coverage=1.5)


def test_cli_refuses_invalid_configuration_with_exit_code_2(monkeypatch, capsys) -> None:
    from agent.__main__ import main

    monkeypatch.setenv("AGENT_GENERATOR", "openai")
    assert main(["serve", "--port", "0"]) == 2
    assert "AGENT_GENERATOR_BASE_URL" in capsys.readouterr().err


def test_cli_refuses_to_serve_without_keys_on_a_reachable_address(monkeypatch, capsys) -> None:
    from agent.__main__ import main

    for var in ("AGENT_API_KEYS", "AGENT_API_KEYS_FILE"):
        monkeypatch.delenv(var, raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2  # returns before loading anything
    err = capsys.readouterr().err
    assert "AGENT_API_KEYS" in err and "--allow-no-auth" in err
