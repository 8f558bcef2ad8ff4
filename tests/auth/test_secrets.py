from __future__ import annotations

import base64
import stat
import threading

import pytest

from identity import MissingSecret, SecretStore


def test_dev_creates_a_secret_once_with_mode_0600(tmp_path):
    store = SecretStore(tmp_path / "secrets", production=False, environ={})
    value = store.get("pepper")
    assert len(value) == 32
    path = tmp_path / "secrets" / "pepper"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SecretStore(tmp_path / "secrets", production=False, environ={}).get("pepper") == value


def test_production_refuses_a_missing_secret(tmp_path):
    store = SecretStore(tmp_path, production=True, environ={})
    with pytest.raises(MissingSecret):
        store.get("pepper")
    with pytest.raises(MissingSecret):
        store.versioned("aes")
    assert list(tmp_path.iterdir()) == []


def test_production_reads_files_and_environment(tmp_path):
    (tmp_path / "pepper").write_text(base64.b64encode(b"p" * 32).decode() + "\n")
    (tmp_path / "aes.v1").write_text(base64.urlsafe_b64encode(b"a" * 32).decode())
    store = SecretStore(tmp_path, production=True, environ={"CHONGJUN_SECRET_OTHER_KEY": base64.b64encode(b"o" * 40).decode()})
    assert store.get("pepper") == b"p" * 32
    assert store.versioned("aes").current == b"a" * 32
    assert store.get("other-key") == b"o" * 40


def test_short_secret_is_refused(tmp_path):
    (tmp_path / "pepper").write_text(base64.b64encode(b"short").decode())
    with pytest.raises(MissingSecret):
        SecretStore(tmp_path, production=True, environ={}).get("pepper")


def test_versioned_secret_rotates_and_keeps_old_versions(tmp_path):
    store = SecretStore(tmp_path, production=False, environ={})
    first = store.versioned("id-aes")
    assert first.current_version == 1
    assert store.rotate("id-aes") == 2
    again = store.versioned("id-aes")
    assert again.current_version == 2
    assert again.get(1) == first.current
    assert again.current != first.current
    with pytest.raises(MissingSecret):
        again.get(3)


def test_racing_creators_agree_on_one_value(tmp_path):
    values = []

    def create():
        values.append(SecretStore(tmp_path, production=False, environ={}).get("shared"))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(values)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["shared"]


def test_bad_names_are_refused(tmp_path):
    store = SecretStore(tmp_path, production=False, environ={})
    for name in ("../escape", "UPPER", "", "a/b"):
        with pytest.raises(ValueError):
            store.get(name)
