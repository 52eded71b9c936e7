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


def test_defaults_make_the_demo_work(monkeypatch):
    monkeypatch.delenv("CART_ENV", raising=False)
    monkeypatch.delenv("CARTWATCH_CONFIG", raising=False)
    settings = load_settings()          # no cartwatch.toml in the repository: the defaults
    assert settings.inbox.name == "sample" and settings.db_path.suffix == ".duckdb"


@pytest.mark.parametrize("text, message", [
    ('[cartwatch]\nsite_tz = "Mars/Base"\n', "site_tz 'Mars/Base' is not an IANA time zone"),
    ('[cartwatch]\ncolour = "blue"\n', "settings file {config}: unknown setting 'colour' in [cartwatch]"),
    ('[cartwatch]\nmask_id = true\n',
     "settings file {config}: unknown setting 'mask_id' in [cartwatch] (did you mean 'mask_ids'?)"),
    ('[cartwach]\nmask_ids = true\n',
     "settings file {config}: unknown section [cartwach]; settings go under [cartwatch]"),
    ('mask_ids = true\n', "settings file {config}: unknown key 'mask_ids' outside [cartwatch]; "
                           "settings go under [cartwatch]"),
    ('[cartwatch]\nmask_ids = "ture"\n',
     "settings file {config}: setting 'mask_ids': 'ture' is not true or false"),
    ('[cartwatch]\nlock_wait_seconds = "soon"\n',
     "settings file {config}: setting 'lock_wait_seconds': 'soon' is not a whole number"),
    ('[cartwatch]\nnightly_cron = "0 25 * * *"\n',
     "nightly_cron '0 25 * * *': hour field '25' is not valid (allowed 0-23, *, ranges, lists, steps)"),
    ("[cartwatch\n", "settings file {config}: not valid TOML"),
])
def test_bad_settings_are_refused(tmp_path, text, message):
    config = tmp_path / "cartwatch.toml"
    config.write_text(text)
    with pytest.raises(SettingsError) as exc:
        load_settings(config)
    assert str(exc.value).startswith(message.format(config=config))


def test_a_settings_file_asked_for_must_exist(tmp_path, monkeypatch):
    with pytest.raises(SettingsError, match="no such file"):
        load_settings(tmp_path / "absent.toml")
    monkeypatch.setenv("CARTWATCH_CONFIG", str(tmp_path))
    with pytest.raises(SettingsError, match="cannot be read"):
        load_settings()


@pytest.mark.parametrize("value, expected", [("true", True), ("FALSE", False), ("ture", None), ("1", None),
                                             ("yes", None), ("", None)])
def test_booleans_are_true_or_false_only(monkeypatch, value, expected):
    monkeypatch.setenv("CARTWATCH_MASK_IDS", value)
    if expected is None:
        with pytest.raises(SettingsError) as exc:
            load_settings()
        assert str(exc.value) == f"CARTWATCH_MASK_IDS: {value!r} is not true or false"
    else:
        assert load_settings().mask_ids is expected


def test_profiles(monkeypatch, tmp_path):
    monkeypatch.setenv("CART_ENV", "staging")
    with pytest.raises(SettingsError, match="CART_ENV: 'staging' is not a profile"):
        load_settings()
    monkeypatch.setenv("CART_ENV", "prod")
    monkeypatch.delenv("CARTWATCH_CONFIG", raising=False)
    with pytest.raises(SettingsError, match="CART_ENV=prod needs a settings file"):
        load_settings()


@pytest.mark.parametrize("cron, ok", [("0 2 * * *", True), ("* * * * *", True), ("*/15 1-5 * * mon-fri", True),
                                      ("30 3 1,15 jan *", True), ("0 2 * *", False), ("60 2 * * *", False),
                                      ("0 2 * * 8", False), ("H 2 * * *", False), ("5-1 2 * * *", False)])
def test_cron_expressions(cron, ok):
    from cartwatch.settings import cron_problem

    assert (cron_problem(cron) is None) is ok
