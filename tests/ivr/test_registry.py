"""Reloading flows at run time: a broken edit is refused and the last good flows keep serving."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from callcenter.ivr.registry import FlowRegistry

SHIPPED = Path(__file__).resolve().parents[2] / "ivr_flows"


def test_broken_reload_keeps_the_last_good_flows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("112.yaml", "hotline.yaml", "status.yaml"):
        shutil.copy(SHIPPED / name, tmp_path / name)
    registry = FlowRegistry(tmp_path)
    assert registry.load(initial=True)
    good = registry.current()
    assert sorted(good) == ["112", "hotline", "status"]
    assert not registry.changed()

    hotline = tmp_path / "hotline.yaml"
    hotline.write_text(hotline.read_text().replace("next: lokasi", "next: lokasi_salah", 1))
    assert registry.changed()
    assert not registry.load()
    assert registry.current() is good  # still serving the last good set
    assert "goes to unknown node 'lokasi_salah'" in registry.last_error
    assert "hotline.yaml:" in caplog.text and "keeping the last good ones" in caplog.text
    assert not registry.changed()  # the broken version is not retried until it changes again

    hotline.write_text((SHIPPED / "hotline.yaml").read_text().replace("retries: 2", "retries: 1", 1))
    assert registry.load()
    assert registry.current() is not good and registry.last_error == ""


def test_missing_folder_means_no_flows(tmp_path: Path) -> None:
    registry = FlowRegistry(tmp_path / "nowhere")
    assert not registry.load(initial=True)
    assert registry.current() == {}
