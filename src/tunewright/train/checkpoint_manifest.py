"""A checkpoint is complete or it is not used: each `step-<N>` folder gets a manifest of its files with
their sizes and SHA-256, written last, and a resume takes the newest checkpoint whose files all match
it. A full disk while training becomes one line instead of a traceback. Never imports torch."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunewright.errors import TunewrightError

MANIFEST = "tunewright-checkpoint.json"
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# torch's zip writer reports a short write (a full disk) only as "unexpected pos"
DISK_FULL_TEXT = re.compile(r"No space left on device|Disk quota exceeded|File too large|"
                            r"inline_container\.cc.*unexpected pos")


class CheckpointError(TunewrightError):
    """No checkpoint to resume from is complete, or the disk filled up while saving (exit 2)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    """List every file in `folder` with its size and hash; written (atomically) after all of them."""
    files = {str(path.relative_to(folder)): {"bytes": path.stat().st_size, "sha256": _sha256(path)}
             for path in sorted(folder.rglob("*")) if path.is_file() and path.name != MANIFEST}
    partial = folder / f".{MANIFEST}.tmp"
    with partial.open("w", encoding="utf-8") as handle:
        json.dump({"files": files}, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(folder / MANIFEST)


def incomplete_reason(folder: Path) -> str | None:
    """Why `folder` cannot be resumed from (a missing, truncated or changed file), or None if whole."""
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files: dict[str, dict[str, Any]] = manifest["files"]
    except FileNotFoundError:
        return f"no {MANIFEST}"
    except (ValueError, KeyError, TypeError):
        return f"{MANIFEST} is unreadable"
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected["bytes"]:
            return f"{name} is {path.stat().st_size} bytes, {expected['bytes']} were written"
        if _sha256(path) != expected["sha256"]:
            return f"{name} changed after it was written"
    return None


def latest_complete_checkpoint(checkpoints: Path) -> Path | None:
    """The newest `step-<N>` whose files match its manifest. Skipping newer ones says so in one line;
    when there are checkpoints but none is complete, refuses (exit 2). None when there are none."""
    steps = sorted(((int(path.name[5:]), path) for path in checkpoints.glob("step-*") if path.name[5:].isdigit()),
                   reverse=True)
    skipped: list[str] = []
    for _, path in steps:
        reason = incomplete_reason(path)
        if reason is None:
            if skipped:
                print(f"warning: skipped incomplete checkpoint {', '.join(skipped)}; resuming from {path.name}",
                      file=sys.stderr)
            return path
        skipped.append(f"{path.name} ({reason})")
    if skipped:
        raise CheckpointError(f"no complete checkpoint in {checkpoints}: {'; '.join(skipped)}; delete "
                              "the folder and train again without --resume")
    return None


def disk_full(exc: BaseException) -> bool:
    """True for a write that failed because the disk (or quota, or file size limit) is full; torch and
    safetensors report it as RuntimeError or their own errors with the OS message inside."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return True
    return DISK_FULL_TEXT.search(str(exc)) is not None


@contextmanager
def disk_full_as_error(where: Path) -> Iterator[None]:
    """Inside the block, a write that fails on a full disk becomes one CheckpointError line."""
    try:
        yield
    except Exception as exc:
        if disk_full(exc):
            raise CheckpointError(f"the disk is full: writing under {where} failed; free space there (or "
                                  "pick another --out) and continue with --resume") from exc
        raise
