from pathlib import Path

import pytest

from cartwatch.settings import SettingsError, load_settings


def test_file_then_environment_then_overrides(tmp_path, monkeypatch):
    config = tmp_path / "cartwatch.toml"
    config.write_text('[cartwatch]\nsite_tz = "Europe/Madrid"\ndb_path = "/data/a.duckdb"\nmask_ids = true\n'
                      'nightly_cron = "30 3 * * *"\n')
    monkeypatch.setenv("CARTWATCH_DB_PATH", "/data/b.duckdb")
    settings = load_settings(config, inbox=str(tmp_path))
    assert settings.site_tz == "Europe/Madrid"
    assert settings.db_path == Path("/data/b.duckdb")
    assert settings.inbox == tmp_path and settings.mask_ids is True
    assert settings.nightly_cron == "30 3 * * *"


def test_defaults_make_the_demo_work(monkeypatch, tmp_path):
    monkeypatch.delenv("CART_ENV", raising=False)
    settings = load_settings(tmp_path / "absent.toml")
    assert settings.inbox.name == "sample" and settings.db_path.suffix == ".duckdb"


@pytest.mark.parametrize("text, message", [
    ('[cartwatch]\nsite_tz = "Mars/Base"\n', "site_tz 'Mars/Base' is not an IANA time zone"),
    ('[cartwatch]\ncolour = "blue"\n', "unknown setting(s): colour"),
    ("[cartwatch\n", "not valid TOML"),
])
def test_bad_settings_are_refused(tmp_path, text, message):
    config = tmp_path / "cartwatch.toml"
    config.write_text(text)
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(config)
