"""The store: atomic files and folders, first writer wins, partial folders unseen."""

import json
import os
import signal
import subprocess
import sys

import pytest

from palm.errors import NotFound, StoreError
from palm.store import COMPLETE, Store


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / "store"))


def test_store_json_round_trip(store):
    store.write_json("builds/b/spec.json", {"a": [1, 2.5]})
    assert store.read_json("builds/b/spec.json") == {"a": [1, 2.5]}
    assert store.list("builds/b") == ["spec.json"]


def test_store_missing_file_is_not_found(store):
    with pytest.raises(NotFound, match="builds/x/spec.json is not in the store"):
        store.read_json("builds/x/spec.json")


def test_store_exclusive_write_keeps_the_first_copy(store):
    assert store.write_json("r.json", {"v": 1}, exclusive=True)
    assert not store.write_json("r.json", {"v": 2}, exclusive=True)
    assert store.read_json("r.json") == {"v": 1}


def test_store_replacing_write_leaves_no_temporary_files(store):
    store.write_json("p.json", {"v": 1})
    store.write_json("p.json", {"v": 2})
    assert store.read_json("p.json") == {"v": 2}
    assert os.listdir(store.path("")) == ["p.json"]


def test_store_interrupted_write_leaves_previous_state(store, monkeypatch):
    store.write_json("p.json", {"v": 1})

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        store.write_json("p.json", {"v": 2})
    assert store.read_json("p.json") == {"v": 1}
    assert os.listdir(store.path("")) == ["p.json"]


def test_store_put_dir_publishes_whole_folder_once(store, tmp_path):
    src = tmp_path / "adapter"
    src.mkdir()
    (src / "weights.bin").write_bytes(b"x" * 10)
    assert store.put_dir(src, "builds/b/policies/p0/adapter")
    (src / "weights.bin").write_bytes(b"y" * 10)
    assert not store.put_dir(src, "builds/b/policies/p0/adapter")
    path = store.path("builds/b/policies/p0/adapter")
    with open(os.path.join(path, "weights.bin"), "rb") as f:
        assert f.read() == b"x" * 10
    assert sorted(os.listdir(path)) == [COMPLETE, "weights.bin"]
    assert store.list("builds/b/policies/p0") == ["adapter"]


def test_store_folder_without_marker_is_absent_and_replaced(store, tmp_path):
    partial = store.path("builds/b/policies/p0/adapter")
    os.makedirs(partial)
    open(os.path.join(partial, "half.bin"), "wb").close()
    assert not store.has_dir("builds/b/policies/p0/adapter")
    with pytest.raises(NotFound, match="incomplete"):
        store.local_dir("builds/b/policies/p0/adapter")
    src = tmp_path / "adapter"
    src.mkdir()
    (src / "weights.bin").write_bytes(b"z")
    assert store.put_dir(src, "builds/b/policies/p0/adapter")
    assert sorted(os.listdir(partial)) == [COMPLETE, "weights.bin"]


def test_store_refuses_paths_that_leave_it(store):
    with pytest.raises(StoreError, match="leaves the store"):
        store.read_json("../outside.json")


def test_store_memory_filesystem_round_trip(tmp_path):
    store = Store("memory://palm-test-store")
    src = tmp_path / "adapter"
    src.mkdir()
    (src / "a.json").write_text(json.dumps({"r": 8}))
    assert store.put_dir(src, "builds/b/policies/p1/adapter")
    local = store.local_dir("builds/b/policies/p1/adapter", cache=tmp_path / "cache")
    with open(os.path.join(local, "a.json")) as f:
        assert json.load(f) == {"r": 8}
    store.write_json("x.json", [1])
    assert store.read_json("x.json") == [1]


def test_store_put_dir_killed_halfway_leaves_nothing_visible(store, tmp_path):
    src = tmp_path / "adapter"
    src.mkdir()
    for name in ("a.bin", "b.bin", "c.bin"):
        (src / name).write_bytes(name.encode() * 100)
    # A real writer process, killed by SIGKILL after its first file is copied.
    script = (
        "import os, shutil, signal, sys\n"
        "from palm.store import Store\n"
        "copy = shutil.copyfile\n"
        "def copy_then_die(*args, **kwargs):\n"
        "    copy(*args, **kwargs)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "shutil.copyfile = copy_then_die\n"
        "Store(sys.argv[1]).put_dir(sys.argv[2], 'builds/b/policies/p0/adapter')\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script, store.url, str(src)], timeout=120
    )
    assert killed.returncode == -signal.SIGKILL
    policy = store.path("builds/b/policies/p0")
    leftovers = os.listdir(policy)
    assert len(leftovers) == 1 and leftovers[0].startswith(".adapter.staging-")
    assert store.list("builds/b/policies/p0") == []
    assert not store.has_dir("builds/b/policies/p0/adapter")

    # The next writer publishes whole and sweeps the dead writer's staging away.
    assert store.put_dir(src, "builds/b/policies/p0/adapter")
    assert os.listdir(policy) == ["adapter"]
    assert sorted(os.listdir(os.path.join(policy, "adapter"))) == [
        COMPLETE,
        "a.bin",
        "b.bin",
        "c.bin",
    ]
