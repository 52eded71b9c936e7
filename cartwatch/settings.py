"""One settings object: defaults per profile, then a TOML file, then environment variables, then flags.

Profiles (`CART_ENV`): `local` (default) and `ci` run on data/sample/ into var/; `prod` expects a
settings file naming real paths. Secrets never live here: notifiers read them from the environment.

Every layer is checked strictly, because a setting that is silently ignored is worse than one
that stops the run: a settings file named explicitly must exist and be readable, a section or key
that is not a setting is refused, a boolean must be true or false, a number must be a number.
docs/cartwatch.toml lists every setting with its default and what it does.

This module imports nothing heavy: the command line checks settings before Prefect or Great
Expectations is imported.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "CARTWATCH_"
SECTION = "cartwatch"
PROFILES = ("local", "ci", "prod")


class SettingsError(ValueError):
    """A settings file or variable is unusable; the message names it and says why (one line)."""


@dataclass(frozen=True)
class Settings:
    db_path: Path
    inbox: Path
    digest_dir: Path
    site_tz: str
    rules_path: Path
    mask_ids: bool = False           # pseudonymize patient and infusion ids in digests and exports
    notify_url: str = ""             # apprise URL(s); empty: the digest is written to a file only
    notify_unmasked: bool = False    # messages sent out show real ids (they are masked otherwise)
    artifact_digest: bool = False    # the Prefect artifact holds the digest, ids masked (counts only otherwise)
    artifact_unmasked: bool = False  # the Prefect artifact holds the digest with real ids
    nightly_cron: str = "0 2 * * *"  # when `cartwatch serve` runs the nightly job, in site_tz
    lock_wait_seconds: int = 600     # how long a job waits for another job holding the database
    prefect_api_url: str = ""        # an existing Prefect server; empty: see docs/operations.md
    prefect_home: Path = REPO_ROOT / "var" / "prefect"   # Prefect's state (runs, logs, artifacts); PREFECT_HOME if set
    prefect_port: int = 4200         # the port of the Prefect server `cartwatch serve` starts
    prefect_startup_seconds: int = 600  # how long a Prefect server may take to start
    profile: str = "local"


PATH_SETTINGS = ("db_path", "inbox", "digest_dir", "rules_path", "prefect_home")
BOOL_SETTINGS = ("mask_ids", "notify_unmasked", "artifact_digest", "artifact_unmasked")
INT_SETTINGS = {"lock_wait_seconds": (0, 7 * 24 * 3600), "prefect_port": (1, 65535),
                "prefect_startup_seconds": (1, 3600)}
SETTING_NAMES = tuple(f.name for f in fields(Settings) if f.name != "profile")


def _profile_defaults(profile: str) -> Settings:
    var = REPO_ROOT / "var"
    return Settings(
        db_path=var / ("ci.duckdb" if profile == "ci" else "cartwatch.duckdb"),
        inbox=REPO_ROOT / "data" / "sample",
        digest_dir=var / "digest",
        site_tz="America/New_York",
        rules_path=REPO_ROOT / "transforms" / "clinical_rules.yaml",
        prefect_home=Path(os.environ["PREFECT_HOME"]).expanduser() if os.environ.get("PREFECT_HOME")
        else var / "prefect",
        profile=profile,
    )


def parse_bool(value: object, where: str) -> bool:
    """true or false (any case); anything else is an error, never a silent 'off'."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise SettingsError(f"{where}: {str(value)!r} is not true or false")


def _coerce(name: str, value: object, where: str) -> object:
    if name in PATH_SETTINGS:
        if not isinstance(value, (str, Path)) or not str(value).strip():
            raise SettingsError(f"{where}: {value!r} is not a path")
        return Path(str(value)).expanduser()
    if name in BOOL_SETTINGS:
        return parse_bool(value, where)
    if name in INT_SETTINGS:
        low, high = INT_SETTINGS[name]
        try:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            number = int(str(value).strip()) if not isinstance(value, (int, float)) else int(value)
        except ValueError:
            raise SettingsError(f"{where}: {str(value)!r} is not a whole number") from None
        if not low <= number <= high:
            raise SettingsError(f"{where}: {number} is outside {low}..{high}")
        return number
    if not isinstance(value, str):
        raise SettingsError(f"{where}: {value!r} is not text")
    return value.strip()


def config_path(config_file: str | Path | None) -> tuple[Path, bool]:
    """The settings file and whether it was asked for (then it must exist)."""
    if config_file:
        return Path(config_file).expanduser(), True
    if os.environ.get(f"{ENV_PREFIX}CONFIG"):
        return Path(os.environ[f"{ENV_PREFIX}CONFIG"]).expanduser(), True
    return REPO_ROOT / "cartwatch.toml", False


def read_config(path: Path, required: bool) -> dict[str, object]:
    """The [cartwatch] table of a settings file; refuses anything it does not know."""
    if not path.exists():
        if required:
            raise SettingsError(f"settings file {path}: no such file")
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"settings file {path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SettingsError(f"settings file {path}: not UTF-8 text") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path}: not valid TOML ({exc})") from None
    for key, value in doc.items():
        if key != SECTION:
            what = f"section [{key}]" if isinstance(value, dict) else f"key '{key}' outside [{SECTION}]"
            raise SettingsError(f"settings file {path}: unknown {what}; settings go under [{SECTION}]")
    table = doc.get(SECTION, {})
    for key, value in table.items():
        if isinstance(value, dict):
            raise SettingsError(f"settings file {path}: unknown section [{SECTION}.{key}]")
        if key not in SETTING_NAMES:
            raise SettingsError(f"settings file {path}: unknown setting '{key}' in [{SECTION}]"
                                + _did_you_mean(key))
    return table


def _did_you_mean(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, SETTING_NAMES, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def load_settings(config_file: str | Path | None = None, **overrides: object) -> Settings:
    """Settings from profile defaults < file (`CARTWATCH_CONFIG` or cartwatch.toml) < env < overrides."""
    profile = os.environ.get("CART_ENV", "local").strip() or "local"
    if profile not in PROFILES:
        raise SettingsError(f"CART_ENV: {profile!r} is not a profile ({', '.join(PROFILES)})")
    settings = _profile_defaults(profile)
    path, required = config_path(config_file)
    if profile == "prod" and not path.exists():
        raise SettingsError(f"CART_ENV=prod needs a settings file (cartwatch.toml or {ENV_PREFIX}CONFIG); "
                            f"{path} does not exist")
    layers: list[tuple[dict[str, object], str]] = [
        (read_config(path, required), f"settings file {path}: setting '{{name}}'"),
        ({n: os.environ[ENV_PREFIX + n.upper()] for n in SETTING_NAMES if ENV_PREFIX + n.upper() in os.environ},
         f"{ENV_PREFIX}{{NAME}}"),
    ]
    unknown = set(k for k, v in overrides.items() if v is not None) - set(SETTING_NAMES)
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    layers.append(({k: v for k, v in overrides.items() if v is not None}, "option for '{name}'"))
    for layer, where in layers:
        values = {name: _coerce(name, value, where.format(name=name, NAME=name.upper()))
                  for name, value in layer.items()}
        settings = replace(settings, **values)
    check(settings)
    return settings


def check(settings: Settings) -> None:
    """Values that are well-typed but unusable."""
    try:
        ZoneInfo(settings.site_tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"site_tz {settings.site_tz!r} is not an IANA time zone") from None
    problem = cron_problem(settings.nightly_cron)
    if problem:
        raise SettingsError(f"nightly_cron {settings.nightly_cron!r}: {problem}")
    url = settings.prefect_api_url
    if url and not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
        raise SettingsError(f"prefect_api_url {url!r} is not an http(s) URL")


# ---------------------------------------------------------------------------------------------
# cron: checked here, without importing Prefect (whose checker needs the whole package)

_CRON_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
                ("month", 1, 12, {m: i + 1 for i, m in enumerate(
                    "jan feb mar apr may jun jul aug sep oct nov dec".split())}),
                ("day of week", 0, 7, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}))


def cron_problem(expression: str) -> str | None:
    """Why a five-field cron expression is unusable, or None."""
    parts = expression.split()
    if len(parts) != 5:
        return f"needs 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}"
    for text, (name, low, high, names) in zip(parts, _CRON_FIELDS):
        for item in text.lower().split(","):
            if not _cron_item_ok(item, low, high, names):
                return f"{name} field {text!r} is not valid (allowed {low}-{high}, *, ranges, lists, steps)"
    return None


def _cron_item_ok(item: str, low: int, high: int, names: dict[str, int]) -> bool:
    base, _, step = item.partition("/")
    if step and not (step.isdigit() and int(step) > 0):
        return False
    if base == "*":
        return True

    def number(token: str) -> int | None:
        if token in names:
            return names[token]
        return int(token) if token.isdigit() else None

    ends = [number(t) for t in base.split("-")]
    if len(ends) not in (1, 2) or any(e is None or not low <= e <= high for e in ends):
        return False
    return len(ends) == 1 or ends[0] <= ends[1]
