"""Writing pushed versions (registry/writer.py, registry/record.py) and the admin token check
(server/auth.py): nothing is visible before the commit, numbers follow the highest folder,
limits and digests are enforced, unsafe names are refused, leftovers are swept, a changed file
fails verification, and tokens are compared as documented."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import grpc
import pytest
from ferroserve.errors import InvalidInputError, ModelLoadError, ResourceExhaustedError
from ferroserve.registry.record import read_record, verify_version
from ferroserve.registry.repository import ModelRepository
from ferroserve.registry.writer import (
    STAGING_PREFIX,
    PushConflictError,
    StagedVersion,
    check_model_name,
    check_reference_name,
    remove_version,
    sweep_staging,
)
from ferroserve.server.auth import TokenGuard

DATA = b"onnx bytes " * 1000


def existing_model(root: Path, name: str = "m", versions: tuple[int, ...] = (1,)) -> Path:
    for version in versions:
        (root / name / str(version)).mkdir(parents=True)
        (root / name / str(version) / "model.onnx").write_bytes(b"v")
    return root / name


def test_a_staged_version_is_invisible_until_committed(tmp_path: Path) -> None:
    existing_model(tmp_path, versions=(1, 7))
    repository = ModelRepository(tmp_path)
    staged = StagedVersion(tmp_path, "m", "model.onnx", 1 << 20)
    staged.write(False, DATA[:100])
    staged.write(False, DATA[100:])
    record = staged.finish("first try", hashlib.sha256(DATA).hexdigest())
    assert repository.version_numbers("m") == [1, 7]
    assert staged.stage.name.startswith(STAGING_PREFIX)
    assert staged.commit() == 8  # the highest folder + 1, not the count
    assert repository.version_numbers("m") == [1, 7, 8]
    folder = tmp_path / "m" / "8"
    assert (folder / "model.onnx").read_bytes() == DATA
    assert read_record(folder) == record
    assert record.sha256 == hashlib.sha256(DATA).hexdigest() and record.size_bytes == len(DATA)
    assert record.created.endswith("Z") and record.notes == "first try"
    assert json.loads((folder / "version.json").read_text())["format"] == 1
    assert not list(tmp_path.rglob(f"{STAGING_PREFIX}*"))
    verify_version(folder, folder / "model.onnx")


def test_a_new_model_appears_whole(tmp_path: Path) -> None:
    staged = StagedVersion(tmp_path, "new", "model.onnx", 1 << 20, config_text='name: "new"')
    staged.write(False, DATA)
    staged.finish("")
    assert ModelRepository(tmp_path).model_names() == []  # staging is hidden
    assert staged.commit() == 1
    assert (tmp_path / "new" / "config.pbtxt").read_text() == 'name: "new"'
    assert ModelRepository(tmp_path).source("new").versions == (1,)


def test_a_model_created_meanwhile_is_a_conflict(tmp_path: Path) -> None:
    staged = StagedVersion(tmp_path, "new", "model.onnx", 1 << 20, config_text="")
    staged.write(False, DATA)
    staged.finish("")
    existing_model(tmp_path, "new")
    with pytest.raises(PushConflictError, match="push again"):
        staged.commit()
    staged.discard()
    assert not list(tmp_path.glob(f"{STAGING_PREFIX}*"))


def test_limits_digests_and_missing_parts(tmp_path: Path) -> None:
    existing_model(tmp_path)
    staged = StagedVersion(tmp_path, "m", "model.onnx", 1000)
    with pytest.raises(ResourceExhaustedError, match=r"--admin-max-push-bytes"):
        staged.write(False, b"x" * 1001)
    staged.discard()
    staged = StagedVersion(tmp_path, "m", "model.onnx", 1 << 20)
    staged.write(False, DATA)
    with pytest.raises(InvalidInputError, match="sha256"):
        staged.finish("", "ab" * 32)
    staged.discard()
    staged = StagedVersion(tmp_path, "m", "model.onnx", 1 << 20)
    with pytest.raises(InvalidInputError, match="no MODEL chunks"):
        staged.finish("")
    staged.discard()
    staged = StagedVersion(tmp_path, "m", "model.onnx", 1 << 20)
    with pytest.raises(InvalidInputError, match="drift_reference_name"):
        staged.write(True, b"ref")
    staged.discard()
    staged = StagedVersion(tmp_path, "m", "model.onnx", 1 << 20, reference_name="ref.npz")
    staged.write(False, DATA)
    with pytest.raises(InvalidInputError, match="no DRIFT_REFERENCE chunks"):
        staged.finish("")
    staged.discard()
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1"]


@pytest.mark.parametrize(
    "name", ["", ".", "..", ".git", ".x", "a/b", "a\\b", "nul\0", "x" * 256, "é" * 128, "tab\t"]
)
def test_unsafe_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInputError, match="not usable as a folder name"):
        check_model_name(name)
    with pytest.raises(InvalidInputError):
        StagedVersion(tmp_path, name, "model.onnx", 100, config_text="")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["fraud", "fraud-v2_x.y", "x" * 255, "modèle", "a..b"])
def test_safe_names_pass(name: str) -> None:
    check_model_name(name)


@pytest.mark.parametrize("name", ["ref.txt", "../ref.npz", ".ref.npz", "version.json", ""])
def test_reference_names(name: str) -> None:
    with pytest.raises(InvalidInputError, match="drift reference name"):
        check_reference_name(name)


def test_remove_and_sweep(tmp_path: Path) -> None:
    existing_model(tmp_path, versions=(1, 2))
    remove_version(tmp_path, "m", 2, whole_model=False)
    assert ModelRepository(tmp_path).version_numbers("m") == [1]
    (tmp_path / f"{STAGING_PREFIX}1-dead").mkdir()
    (tmp_path / "m" / f"{STAGING_PREFIX}1-dead").mkdir()
    own = StagedVersion(tmp_path, "m", "model.onnx", 100)  # this process's: kept
    assert sweep_staging(tmp_path, quiet_s=60) == []  # written just now: maybe a live push
    removed = sweep_staging(tmp_path)
    assert len(removed) == 2 and own.stage.exists()
    old = tmp_path / f"{STAGING_PREFIX}2-old"
    (old / "1").mkdir(parents=True)
    (old / "1" / "model.onnx").write_bytes(b"x")
    for path in (old / "1" / "model.onnx", old / "1", old):
        os.utime(path, (1, 1))
    assert sweep_staging(tmp_path, quiet_s=60) == [old]
    remove_version(tmp_path, "m", 1, whole_model=True)
    assert not (tmp_path / "m").exists()


def test_verification_names_both_digests(tmp_path: Path) -> None:
    existing_model(tmp_path)
    staged = StagedVersion(tmp_path, "m", "model.onnx", 1 << 20)
    staged.write(False, DATA)
    staged.finish("")
    folder = tmp_path / "m" / str(staged.commit())
    (folder / "model.onnx").write_bytes(DATA[:-1] + b"!")
    with pytest.raises(ModelLoadError, match=r"does not match its version\.json") as failure:
        verify_version(folder, folder / "model.onnx")
    assert hashlib.sha256(DATA).hexdigest() in str(failure.value)
    (folder / "model.onnx").write_bytes(DATA[:10])
    with pytest.raises(ModelLoadError, match="found 10 bytes"):
        verify_version(folder, folder / "model.onnx")
    (folder / "version.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not a valid version record"):
        read_record(folder)
    verify_version(tmp_path / "m" / "1", tmp_path / "m" / "1" / "model.onnx")  # no record: ok


def test_token_guard(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("  abc123\n")
    guard = TokenGuard.from_file(path, "--admin-token-file")
    assert guard.refusal((("authorization", "Bearer abc123"),)) is None
    assert guard.refusal((("authorization", "bearer abc123"),)) is None
    missing = guard.refusal(())
    assert missing is not None and missing[0] is grpc.StatusCode.UNAUTHENTICATED
    assert "--admin-token-file" in missing[1] and "Bearer <token>" in missing[1]
    basic = guard.refusal((("authorization", "Basic abc123"),))
    assert basic is not None and basic[0] is grpc.StatusCode.UNAUTHENTICATED
    wrong = guard.refusal((("authorization", "Bearer abc1234"),))
    assert wrong is not None and wrong[0] is grpc.StatusCode.PERMISSION_DENIED
    path.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        TokenGuard.from_file(path, "--admin-token-file")
