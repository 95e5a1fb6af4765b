"""One version folder of a product on disk: written whole or not at all, read back strictly.

``write_version`` builds the folder under a temp name beside the others (``.v0004.tmp-<pid>``),
fsyncs every file and the folder, then renames it to ``v0004``; a rename is atomic, so a version
folder is complete or absent, whatever kills the process. The layout as a whole is described in
edge/products/registry.py, which owns CURRENT and the lock.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import yaml

from edge.atomic import fsync_folder
from edge.products.product import (
    MEMORY_FILE,
    Product,
    ProductError,
    stored_memory_shape,
    utc_now_iso,
)

PRODUCT_FILE = "product.yaml"
_VERSION_FOLDER = re.compile(r"v(\d{4,})")
_LEFTOVER = re.compile(r"\.v\d+\.tmp-\d+|\.CURRENT\..+\.tmp")  # a killed save's temp folder or file


def version_folder_name(version: int) -> str:
    return f"v{version:04d}"


def version_numbers(folder: Path) -> list[int]:
    """The saved versions in a product folder, oldest first (temp folders are not versions)."""
    if not folder.is_dir():
        return []
    matches = (_VERSION_FOLDER.fullmatch(path.name) for path in folder.iterdir())
    return sorted(int(match.group(1)) for match in matches if match)


def write_version(folder: Path, product: Product, *, saved_at: str = "", note: str = "") -> Path:
    """Write ``product`` (its ``version`` set) as ``folder/vNNNN``, atomically; OSError on failure."""
    final = folder / version_folder_name(product.version)
    temp = folder / f".{final.name}.tmp-{os.getpid()}"
    document = product.to_yaml_dict(saved_at=saved_at or utc_now_iso(), note=note)
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    try:
        temp.mkdir()
        _write_synced(temp / PRODUCT_FILE, lambda handle: handle.write(text.encode("utf-8")))
        if product.memory is not None:
            memory = product.memory
            _write_synced(temp / MEMORY_FILE, lambda handle: np.save(handle, memory, allow_pickle=False))
        fsync_folder(temp)
        os.rename(temp, final)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    fsync_folder(folder)
    return final


def read_version(folder: Path, name: str, version: int) -> tuple[Product, dict[str, Any]]:
    """(the product without its memory, its parsed product.yaml) of ``folder`` (``.../name/vNNNN``)."""
    path = folder / PRODUCT_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise damaged(name, folder, f"{PRODUCT_FILE} is missing") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise damaged(name, folder, f"{PRODUCT_FILE} cannot be read: {exc}") from None
    product = Product.from_yaml_dict(data, path)
    if (product.name, product.version) != (name, version):
        raise damaged(name, folder, f"{PRODUCT_FILE} describes {product.label()}")
    return product, data


def with_memory(product: Product, folder: Path, data: dict[str, Any]) -> Product:
    """``product`` with the memory its product.yaml (``data``) declares, read from ``folder``."""
    shape = stored_memory_shape(data)
    if shape is None:
        return product
    file = MEMORY_FILE
    try:
        array = np.load(folder / file, allow_pickle=False)
    except FileNotFoundError:
        raise damaged(product.name, folder, f"{file} is missing") from None
    except (OSError, ValueError, EOFError) as exc:
        raise damaged(product.name, folder, f"{file} cannot be read: {exc}") from None
    if array.shape != shape or array.dtype != np.float32:
        found = f"{array.dtype} {array.shape}"
        raise damaged(product.name, folder, f"{file} holds {found}, {PRODUCT_FILE} says float32 {shape}")
    return replace(product, memory=array)


def remove_leftovers(folder: Path) -> None:
    """Temp folders and files of saves that were killed (call it holding the product's lock)."""
    for path in folder.iterdir():
        if _LEFTOVER.fullmatch(path.name):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def damaged(name: str, folder: Path, what: str) -> ProductError:
    return ProductError(
        f"product version folder {folder} is incomplete or damaged: {what}",
        fix=f"restore it from a backup, or make another version current: inp-edge products rollback {name} --to N",
    )


def _write_synced(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    with open(path, "xb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
