"""The product registry: every product's versions on disk, written atomically (contract 2).

On disk, under the station's state dir::

    <state_dir>/products/
      cookie/
        CURRENT                the current version number as text ("3")
        v0001/product.yaml     one version: the product (edge/products/product.py, schema 1)
        v0001/memory.npy       its few-shot memory, float32 (M, C), when it has one
        v0002/ ...
        .lock                  held (flock) while a version is saved or a rollback is made
        .v0004.tmp-1234/       a save in progress, or one killed mid-way (ignored; the next save removes it)

Versions are append-only: saving writes the next version and makes it current; a rollback writes
a NEW version with the old content (and a "rollback" calibration record), so the history only grows.

A save writes the version into a temp folder beside the others, fsyncs every file and the folder,
renames it to ``vNNNN`` (atomic: a version folder is whole or absent), fsyncs the product folder,
then replaces CURRENT atomically (edge/atomic.py). ``kill -9`` or a power cut at any moment leaves
the old or the new version current, both loadable. Without CURRENT (a first save killed between
the rename and CURRENT) the newest version is current.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from edge.atomic import fsync_folder, write_text_atomic
from edge.products.product import (
    MEMORY_FUSIONS,
    NAME_PATTERN,
    CalibrationRecord,
    Product,
    ProductError,
    check_model,
    check_name,
    utc_now_iso,
)
from edge.products.version_files import (
    read_version,
    remove_leftovers,
    version_folder_name,
    version_numbers,
    with_memory,
    write_version,
)

PRODUCTS_FOLDER = "products"
CURRENT_FILE = "CURRENT"
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class VersionInfo:
    """One saved version, as ``history`` lists it."""

    version: int
    saved_at: str  # ISO-8601 UTC
    note: str
    current: bool
    image_threshold: float


class ProductRegistry:
    """Products under ``<state_dir>/products`` (see the module docstring)."""

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir) / PRODUCTS_FOLDER

    def folder(self, name: str) -> Path:
        """``<root>/<name>``; a name that is not allowed (``..``, ``a/b``) is a ProductError."""
        return self.root / check_name(name)

    def names(self) -> list[str]:
        """Products with at least one saved version, sorted."""
        if not self.root.is_dir():
            return []
        found = (path for path in self.root.iterdir() if NAME_PATTERN.fullmatch(path.name))
        return sorted(path.name for path in found if version_numbers(path))

    def versions(self, name: str) -> list[int]:
        return version_numbers(self.folder(name))

    def exists(self, name: str) -> bool:
        return bool(self.versions(name))

    def current_version(self, name: str) -> int:
        versions = self._require(name)
        path = self.folder(name) / CURRENT_FILE
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return versions[-1]
        except (OSError, UnicodeDecodeError) as exc:
            raise ProductError(f"cannot read {path}: {exc}", fix=_current_fix(name, versions)) from None
        if not text.isdigit() or int(text) not in versions:
            raise ProductError(
                f"{path} says {text!r}, which is not a version of product {name} ({_listing(versions)})",
                fix=_current_fix(name, versions),
            )
        return int(text)

    def load(
        self,
        name: str,
        *,
        version: int | None = None,
        model_sha256: str | None = None,
        model_id: str | None = None,
        memory: bool = True,
    ) -> Product:
        """A version (None = the current one), with its memory unless ``memory`` is False.

        ``model_sha256`` (of the model in use, ``model_id`` its id for the message) must match the
        model the product was enrolled with.
        """
        versions = self._require(name)
        number = self.current_version(name) if version is None else version
        if number not in versions:
            raise ProductError(
                f"product {name} has no version {number} ({_listing(versions)})",
                fix=f"pick one of those (inp-edge products show {name} lists them)",
            )
        folder = self.folder(name) / version_folder_name(number)
        product, data = read_version(folder, name, number)
        if model_sha256 is not None:
            check_model(product, model_sha256, model_id)
        return with_memory(product, folder, data) if memory else product

    def save(self, product: Product, note: str = "") -> Product:
        """Write ``product`` as the next version and make it current; returned with its ``version``."""
        if product.fusion in MEMORY_FUSIONS and product.memory is None:
            raise ProductError(
                f"product {product.name}: fusion {product.fusion!r} scores with the few-shot memory, "
                "and the product has none",
                fix='enroll it with a model that outputs patch_features, or use fusion "inp"',
            )
        with self._locked(product.name):
            return self._save_locked(product, note)

    def rollback(self, name: str, to_version: int | None = None) -> Product:
        """Make an earlier version's content current again, as a NEW version (None = the one before)."""
        self._require(name)
        with self._locked(name):
            versions = self.versions(name)
            try:
                current: int | None = self.current_version(name)
            except ProductError:  # a damaged CURRENT: --to repairs it
                if to_version is None:
                    raise
                current = None
            target = _version_before(name, current, versions) if to_version is None else to_version
            if target == current:
                raise ProductError(
                    f"product {name}: v{target} is already the current version",
                    fix=f"name another version with --to ({_listing(versions)})",
                )
            old = self.load(name, version=target)
            restored = replace(old, calibrations=(*old.calibrations, _rollback_record(old, target)))
            was = "CURRENT was damaged" if current is None else f"v{current} was current"
            return self._save_locked(restored, f"rollback to v{target} ({was})")

    def history(self, name: str) -> list[VersionInfo]:
        """Every saved version, oldest first."""
        current = self.current_version(name)
        rows = []
        for number in self.versions(name):
            product, data = read_version(self.folder(name) / version_folder_name(number), name, number)
            image = product.thresholds.image
            rows.append(VersionInfo(number, data["saved_at"], data["note"], number == current, image))
        return rows

    def _require(self, name: str) -> list[int]:
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise ProductError(
                f"no product {name!r} in {self.root} (products there: {known})",
                fix=f"enroll it first: inp-edge enroll --product {name} ...",
            )
        return versions

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """One save at a time per product, across processes (the kernel releases it if killed)."""
        folder = self.folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    def _save_locked(self, product: Product, note: str) -> Product:
        folder = self.folder(product.name)
        versions = version_numbers(folder)
        saved = replace(product, version=(versions[-1] if versions else 0) + 1)
        try:
            remove_leftovers(folder)
            write_version(folder, saved, note=note)
            fsync_folder(self.root)  # the product folder itself, on its first save
            write_text_atomic(folder / CURRENT_FILE, f"{saved.version}\n")
        except OSError as exc:
            raise ProductError(
                f"cannot save {saved.label()} in {folder}: {exc.strerror or exc}",
                fix="check free space and that the state dir is writable by this user",
            ) from None
        return saved


def _version_before(name: str, current: int | None, versions: list[int]) -> int:
    earlier = [number for number in versions if current is not None and number < current]
    if not earlier:
        raise ProductError(
            f"product {name}: v{current} is the first version, there is none before it to roll back to",
            fix=f"name a version with --to ({_listing(versions)})",
        )
    return earlier[-1]


def _rollback_record(old: Product, target: int) -> CalibrationRecord:
    """The threshold in effect again, with the counts of the calibration that set it."""
    last = old.calibrations[-1] if old.calibrations else None
    return CalibrationRecord(
        at=utc_now_iso(),
        rule="rollback",
        threshold=old.thresholds.image,
        n_good=last.n_good if last else old.good_scores.n,
        n_bad=last.n_bad if last else 0,
        expected_false_reject=last.expected_false_reject if last else None,
        expected_escape=last.expected_escape if last else None,
        note=f"rolled back to v{target}",
    )


def _current_fix(name: str, versions: list[int]) -> str:
    return f"make a version current: inp-edge products rollback {name} --to N ({_listing(versions)})"


def _listing(versions: list[int]) -> str:
    return "versions: " + ", ".join(f"v{number}" for number in versions)
