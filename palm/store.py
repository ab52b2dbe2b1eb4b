"""The store: the source of truth of every build, on any fsspec filesystem.

Layout under the store's root URL::

    models/<name>/                          base models the project pretrained
    builds/<build>/spec.json                the validated build spec
    builds/<build>/policies/<policy>/adapter/   one LoRA adapter (with _COMPLETE)
    builds/<build>/policies/<policy>/train_log.json
    builds/<build>/rewards/<policy>.json    one reward vector
    builds/<build>/portfolios/v000001.json  every portfolio version, never rewritten
    builds/<build>/portfolio.json           the latest version, replaced whole

Every write is atomic. A file is written aside and renamed (or put whole on object
stores, where a put is atomic). A folder is written aside (a hidden `.NAME.staging-*`
sibling) with a `_COMPLETE` marker last, then renamed into place; a reader treats a
folder without the marker as absent, so a worker killed halfway never leaves something
that looks finished, and the next publish of that folder sweeps its leftovers away.
Writing a thing that is already there keeps the first copy: tasks run twice leave one
result.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from palm.errors import NotFound, StoreError

log = logging.getLogger(__name__)

COMPLETE = "_COMPLETE"


class Store:
    """A store rooted at `url`: a local folder or any fsspec URL."""

    def __init__(self, url: str):
        self.url = str(url).rstrip("/") or "/"
        try:
            self.fs, root = fsspec.core.url_to_fs(self.url)
        except (ValueError, ImportError) as e:
            raise StoreError(f"store URL {url!r} cannot be opened: {e}") from e
        self.local = isinstance(self.fs, LocalFileSystem)
        self.root = os.path.abspath(root) if self.local else root.rstrip("/")
        if self.local:
            os.makedirs(self.root, exist_ok=True)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # -- paths ---------------------------------------------------------------
    def path(self, rel: str) -> str:
        """The filesystem path of `rel` (relative to the store root)."""
        rel = rel.strip("/")
        if rel.startswith("..") or "/../" in f"/{rel}/":
            raise StoreError(f"store path {rel!r} leaves the store")
        return posixpath.join(self.root, rel) if rel else self.root

    def uri(self, rel: str) -> str:
        """A location another process can open: a local path or a full URL."""
        path = self.path(rel)
        return path if self.local else self.fs.unstrip_protocol(path)

    # -- files ---------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def read_bytes(self, rel: str) -> bytes:
        try:
            with self.fs.open(self.path(rel), "rb") as f:
                return f.read()
        except FileNotFoundError as e:
            raise NotFound(f"{rel} is not in the store {self.url}") from e

    def read_json(self, rel: str) -> Any:
        data = self.read_bytes(rel)
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise StoreError(f"{rel} in the store {self.url} is not JSON: {e}") from e

    def write_bytes(self, rel: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Write `data` at `rel` atomically. With `exclusive`, keep an existing file
        and return False instead of replacing it."""
        target = self.path(rel)
        if exclusive and self.fs.exists(target):
            return False
        parent = posixpath.dirname(target)
        if self.local:
            os.makedirs(parent, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                if exclusive:
                    # link() fails if the target appeared meanwhile: first wins.
                    try:
                        os.link(tmp, target)
                    except FileExistsError:
                        return False
                else:
                    os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return True
        # Object stores: a single put is atomic and visible whole or not at all.
        self.fs.pipe_file(target, data)
        return True

    def write_json(self, rel: str, obj: Any, *, exclusive: bool = False) -> bool:
        data = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False)
        return self.write_bytes(rel, data.encode() + b"\n", exclusive=exclusive)

    def list(self, rel: str) -> list[str]:
        """Names directly under `rel` (empty when it does not exist)."""
        path = self.path(rel)
        if not self.fs.exists(path):
            return []
        names = [posixpath.basename(p.rstrip("/")) for p in self.fs.ls(path, False)]
        return sorted(n for n in names if not n.startswith("."))

    def delete(self, rel: str) -> None:
        path = self.path(rel)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    # -- folders -------------------------------------------------------------
    def has_dir(self, rel: str) -> bool:
        """True when the folder was published whole (its marker is there)."""
        return self.fs.exists(posixpath.join(self.path(rel), COMPLETE))

    def put_dir(self, local_dir: str | Path, rel: str) -> bool:
        """Publish the local folder at `rel`: staged aside, marker last, renamed.

        Returns False (and discards the upload) when a complete copy is there.
        """
        if self.has_dir(rel):
            return False
        target = self.path(rel)
        parent, name = posixpath.split(target)
        # Hidden (a leading '.'), so `list` never shows the folder of a writer that
        # was killed halfway; the next successful publish sweeps it away.
        staging = posixpath.join(parent, f".{name}.staging-{uuid.uuid4().hex[:12]}")
        try:
            if self.local:
                shutil.copytree(local_dir, staging)
            else:
                self.fs.put(str(local_dir).rstrip("/") + "/", staging, recursive=True)
            self.fs.pipe_file(posixpath.join(staging, COMPLETE), b"")
            published = self._move_into_place(staging, target, rel)
        except OSError:
            if self.has_dir(rel):  # a twin task published first (and swept ours)
                return False
            raise
        finally:
            # A twin's sweep may remove it first: gone is what we want either way.
            with contextlib.suppress(FileNotFoundError):
                if self.fs.exists(staging):
                    self.fs.rm(staging, recursive=True)
        if published:
            self._sweep_staging(parent, name)
        return published

    def _move_into_place(self, staging: str, target: str, rel: str) -> bool:
        if self.fs.exists(target):
            # A partial folder from a killed writer (no marker): replace it.
            if self.has_dir(rel):
                return False
            self.fs.rm(target, recursive=True)
        if self.local:
            try:
                os.rename(staging, target)
            except OSError:
                if self.has_dir(rel):  # a twin task won the race
                    return False
                raise
        else:
            self.fs.mv(staging, target, recursive=True)
        return True

    def _sweep_staging(self, parent: str, name: str) -> None:
        """Remove the staging folders that killed writers left beside `name`."""
        prefix = f".{name}.staging-"
        for path in self.fs.ls(parent, detail=False):
            if posixpath.basename(path.rstrip("/")).startswith(prefix):
                try:
                    self.fs.rm(path, recursive=True)
                except OSError as e:  # a live twin still writing it: it gives up
                    log.debug("staging folder %s not removed: %s", path, e)

    def local_dir(self, rel: str, cache: str | Path | None = None) -> str:
        """A local path holding the complete folder `rel` (downloaded if remote)."""
        if not self.has_dir(rel):
            raise NotFound(f"{rel} is not in the store {self.url} (or is incomplete)")
        if self.local:
            return self.path(rel)
        cache = Path(cache or Path(tempfile.gettempdir()) / "palm-store-cache")
        dest = cache / rel.strip("/")
        if not (dest / COMPLETE).exists():
            tmp = Path(f"{dest}.tmp-{uuid.uuid4().hex[:8]}")
            self.fs.get(self.path(rel).rstrip("/") + "/", str(tmp), recursive=True)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(tmp, dest)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        return str(dest)


def build_prefix(build: str) -> str:
    return f"builds/{build}"


def open_location(url: str) -> tuple[Store, str]:
    """Split a location such as a member's adapter URL into (store, relative path)."""
    parent, name = posixpath.split(str(url).rstrip("/"))
    return Store(parent), name


def local_folder(location: str, *, published: bool = True) -> str:
    """A local folder holding `location`, downloaded if remote.

    A published folder (an adapter, a bundled model) must carry its `_COMPLETE`
    marker. A base model given by path in a spec was never published: with
    `published=False` an existing local folder is used where it is.
    """
    if not published and os.path.isdir(location):
        return str(location)
    store, name = open_location(location)
    return store.local_dir(name)
