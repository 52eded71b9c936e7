"""Delivery: nothing leaves unless configured; secrets only from the environment; scrubbed errors."""

from __future__ import annotations

import pytest

from cartwatch import notify
from cartwatch.settings import load_settings


def test_nothing_is_sent_without_a_configured_url(tmp_path):
    settings = load_settings(db_path=str(tmp_path / "x.duckdb"), digest_dir=str(tmp_path), notify_url="")
    assert notify.send(settings, notify.Message("t", "b")) is False


def test_urls_take_secrets_from_the_environment_only():
    assert notify.resolve_urls("json://${HOOK_HOST}/x, slack://a", {"HOOK_HOST": "h:1"}) == ["json://h:1/x", "slack://a"]
    with pytest.raises(notify.NotifyConfigError, match="HOOK_HOST"):
        notify.resolve_urls("json://${HOOK_HOST}/x", {})


def test_an_unreachable_channel_is_an_io_error_and_the_failure_log_is_scrubbed(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK", "127.0.0.1:9")
    settings = load_settings(db_path=str(tmp_path / "x.duckdb"), digest_dir=str(tmp_path),
                             notify_url="json://${HOOK}/cartwatch")
    with pytest.raises(notify.DeliveryError) as caught:
        notify.send(settings, notify.Message("t", "b"))
    assert isinstance(caught.value, OSError)                 # the delivery task retries it
    message = notify.report_failure(settings, run="nightly r1", step="build",
                                    error=ValueError("patient 'MRN12345' value 9000"))
    log = (tmp_path / "failures.log").read_text()
    assert "step=build" in log and "MRN12345" not in log and "9000" not in log and message.title in "".join(
        [message.title])
