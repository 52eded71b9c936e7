"""One settings object: defaults per profile, then a TOML file, then environment variables.

Profiles (`CART_ENV`): `local` (default) and `ci` run on data/sample/ into var/; `prod` expects a
settings file naming real paths. Secrets never live here: notifiers read them from the environment.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "CARTWATCH_"


class SettingsError(ValueError):
    """A settings file or variable is unusable."""


@dataclass(frozen=True)
class Settings:
    db_path: Path
    inbox: Path
    digest_dir: Path
    site_tz: str
    rules_path: Path
    mask_ids: bool = False
    notify_url: str = ""          # apprise URL(s); empty: the digest is written to a file only
    nightly_cron: str = "0 2 * * *"  # when `cartwatch serve` runs the nightly job, in site_tz
    profile: str = "local"


def _profile_defaults(profile: str) -> Settings:
    var = REPO_ROOT / "var"
    return Settings(
        db_path=var / ("ci.duckdb" if profile == "ci" else "cartwatch.duckdb"),
        inbox=REPO_ROOT / "data" / "sample",
        digest_dir=var / "digest",
        site_tz="America/New_York",
        rules_path=REPO_ROOT / "transforms" / "clinical_rules.yaml",
        profile=profile,
    )


def _coerce(name: str, value: object) -> object:
    if name in ("db_path", "inbox", "digest_dir", "rules_path"):
        return Path(str(value)).expanduser()
    if name == "mask_ids":
        return str(value).strip().lower() in ("1", "true", "yes", "on")
    return str(value)


def load_settings(config_file: str | Path | None = None, **overrides: object) -> Settings:
    """Settings from profile defaults < file (`CARTWATCH_CONFIG` or cartwatch.toml) < env < overrides."""
    profile = os.environ.get("CART_ENV", "local")
    settings = _profile_defaults(profile)
    path = Path(config_file or os.environ.get(f"{ENV_PREFIX}CONFIG", REPO_ROOT / "cartwatch.toml"))
    layers: list[dict[str, object]] = []
    if path.is_file():
        try:
            layers.append(tomllib.loads(path.read_text(encoding="utf-8")).get("cartwatch", {}))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    names = {f.name for f in fields(Settings)}
    layers.append({n: os.environ[ENV_PREFIX + n.upper()] for n in names if ENV_PREFIX + n.upper() in os.environ})
    layers.append({k: v for k, v in overrides.items() if v is not None})
    for layer in layers:
        unknown = set(layer) - names
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        settings = replace(settings, **{k: _coerce(k, v) for k, v in layer.items()})
    _check_time_zone(settings.site_tz)
    return settings


def _check_time_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"site_tz {name!r} is not an IANA time zone") from None
