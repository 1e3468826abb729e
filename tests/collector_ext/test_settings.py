"""Server settings: a database URL in libpq's form works, any other driver is a clear error."""

from __future__ import annotations

import pytest
from pystrument_collector.settings import ENV_DATABASE_URL, Settings


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://u:p@db:5432/pystrument",
        "postgres://u:p@db:5432/pystrument",
        "postgresql+asyncpg://u:p@db:5432/pystrument",
    ],
)
def test_postgres_urls_get_the_asyncpg_driver(given: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DATABASE_URL, given)
    assert Settings.from_env().database_url == "postgresql+asyncpg://u:p@db:5432/pystrument"
    monkeypatch.delenv(ENV_DATABASE_URL)
    assert Settings.from_env(database_url=given).database_url == "postgresql+asyncpg://u:p@db:5432/pystrument"


@pytest.mark.parametrize("given", ["postgresql+psycopg://u@db/x", "mysql://u@db/x", "sqlite:///x.db", "db:5432"])
def test_other_urls_are_refused_with_the_expected_form(given: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_DATABASE_URL, given)
    with pytest.raises(ValueError, match=r"PYSTRUMENT_DATABASE_URL must be .*postgresql\+asyncpg://user:password@host"):
        Settings.from_env()
