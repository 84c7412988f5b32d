"""Secrets waiting in the database are sealed: the box, its keys (from SECRETS_KEY or a key file), key
rotation, the settings that refuse an unusable or missing key, and `cspbot secrets-key`."""

from __future__ import annotations

import concurrent.futures
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from cli.main import main as cspbot
from services.sealed_secrets import SecretBox, SecretsKeyError, SecretUnreadable, generate_key, open_secret_box
from services.settings import Settings, SettingsError

PASSWORD = "Qz7!pLm3#Rw9-Zoë"
AUTHENTICATED = {
    "microsoft_app_id": "00000000-0000-0000-0000-00000000b0b0",
    "microsoft_app_password": "app-password",
    "microsoft_app_tenant_id": "00000000-0000-0000-0000-00000000cafe",
}
POSTGRES = "postgresql+asyncpg://cspbot@db.internal/cspbot"


def test_a_sealed_secret_reads_as_nothing_and_opens_with_its_key() -> None:
    box = SecretBox([generate_key()])
    sealed = box.seal(PASSWORD)
    assert sealed.startswith("sealed:v1:") and PASSWORD not in sealed
    assert box.seal(PASSWORD) != sealed  # a fresh IV each time: equal passwords do not look equal
    assert box.open(sealed) == PASSWORD


def test_another_key_cannot_open_it_and_says_so() -> None:
    sealed = SecretBox([generate_key()]).seal(PASSWORD)
    with pytest.raises(SecretUnreadable) as error:
        SecretBox([generate_key()]).open(sealed)
    assert "another key" in error.value.message and PASSWORD not in error.value.message


def test_a_tampered_seal_does_not_open() -> None:
    box = SecretBox([generate_key()])
    sealed = box.seal(PASSWORD)
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(SecretUnreadable):
        box.open(tampered)


def test_a_value_stored_before_sealing_existed_opens_as_it_is() -> None:
    assert SecretBox([generate_key()]).open(PASSWORD) == PASSWORD


def test_keys_rotate_the_first_seals_and_all_open() -> None:
    old, new = generate_key(), generate_key()
    sealed_before = SecretBox.from_keys(old).seal(PASSWORD)
    rotating = SecretBox.from_keys(f" {new} , {old} ")
    assert rotating.open(sealed_before) == PASSWORD
    sealed_after = rotating.seal(PASSWORD)
    assert SecretBox.from_keys(new).open(sealed_after) == PASSWORD
    with pytest.raises(SecretUnreadable):
        SecretBox.from_keys(old).open(sealed_after)


def test_without_secrets_key_a_private_key_file_is_made_once_and_kept(tmp_path: Path) -> None:
    key_file = tmp_path / "var" / "cspbot.secrets.key"
    sealed = open_secret_box("", key_file).seal(PASSWORD)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    Fernet(key_file.read_text().strip().encode())  # a real key
    assert open_secret_box("", key_file).open(sealed) == PASSWORD  # the next start reads the same key
    with pytest.raises(SecretUnreadable):  # SECRETS_KEY, when set, wins over the file
        open_secret_box(generate_key(), key_file).open(sealed)


def test_an_unusable_key_is_refused_without_repeating_it(tmp_path: Path) -> None:
    key_file = tmp_path / "secrets.key"
    key_file.write_text("not-a-key-at-all\n")
    with pytest.raises(SecretsKeyError) as from_file:
        open_secret_box("", key_file)
    assert str(key_file) in str(from_file.value) and "not-a-key-at-all" not in str(from_file.value)
    key_file.write_bytes(b"\xff\xfe not text")
    with pytest.raises(SecretsKeyError, match="cannot be read"):
        open_secret_box("", key_file)
    with pytest.raises(SecretsKeyError, match="cannot be read"):  # a folder where the file should be
        open_secret_box("", tmp_path)
    with pytest.raises(SecretsKeyError) as from_setting:
        SecretBox.from_keys(f"{generate_key()},hunter2-is-no-key")
    assert "hunter2" not in str(from_setting.value)


def test_the_key_file_sits_beside_the_sqlite_database_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRETS_KEY_FILE", raising=False)
    beside = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")  # type: ignore[call-arg]
    assert beside.secrets_key_path == tmp_path / "bot.secrets.key"
    told = Settings(_env_file=None, database_url=POSTGRES, secrets_key_file=tmp_path / "k")  # type: ignore[call-arg]
    assert told.secrets_key_path == tmp_path / "k"
    assert Settings(_env_file=None, database_url=POSTGRES).secrets_key_path.name == "secrets.key"  # type: ignore[call-arg]
    monkeypatch.setenv("SECRETS_KEY_FILE", "")
    assert Settings(_env_file=None, database_url=POSTGRES).secrets_key_file is None  # type: ignore[call-arg]


def test_serving_refuses_a_bad_secrets_key_without_repeating_it() -> None:
    settings = Settings(_env_file=None, secrets_key="my-secret-passphrase")  # type: ignore[call-arg]
    with pytest.raises(SettingsError) as error:
        settings.check_safe_to_serve()
    assert "SECRETS_KEY" in str(error.value) and "my-secret-passphrase" not in str(error.value)


def test_replicas_on_a_shared_database_must_share_a_secrets_key() -> None:
    with pytest.raises(SettingsError, match="SECRETS_KEY is required"):
        Settings(_env_file=None, database_url=POSTGRES, **AUTHENTICATED).check_safe_to_serve()  # type: ignore[call-arg]
    Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=POSTGRES,
        secrets_key=generate_key(),
        **AUTHENTICATED,
    ).check_safe_to_serve()
    Settings(_env_file=None, **AUTHENTICATED).check_safe_to_serve()  # type: ignore[call-arg]  # SQLite: one process


def test_cspbot_secrets_key_prints_a_new_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert cspbot(["secrets-key"]) == 0
    first = capsys.readouterr()
    assert cspbot(["secrets-key"]) == 0
    second = capsys.readouterr()
    key = first.out.strip()
    assert SecretBox.from_keys(key).open(SecretBox.from_keys(key).seal(PASSWORD)) == PASSWORD
    assert second.out.strip() != key
    assert "SECRETS_KEY" in first.err


def test_processes_making_the_key_file_at_once_all_read_the_one_key(tmp_path):
    """Workers (or replicas) starting together on a new key file: one key is made, and none of them reads the
    file before it holds it."""
    path = tmp_path / "keys" / "secrets.key"
    with concurrent.futures.ProcessPoolExecutor(max_workers=4) as pool:
        sealed = list(pool.map(_sealed_with_the_key_file, [path] * 8))
    box = open_secret_box("", path)
    assert [box.open(value) for value in sealed] == [PASSWORD] * 8
    assert [p.name for p in path.parent.iterdir()] == ["secrets.key"]  # no temporary file left behind
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _sealed_with_the_key_file(path: Path) -> str:
    return open_secret_box("", path).seal(PASSWORD)
