"""Loom files read over s3:// from a moto S3 server on loopback: the same values as the local file
(loomfile and loompy reading the local copy are the oracles), through the engine and through h5py."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import scipy.sparse as sparse

import loomfile
from loomfile._store import remote as _remote

moto_server = pytest.importorskip("moto.server")

BUCKET = "loomfile-tests"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A moto S3 server on loopback with one bucket; ``put(path, key)`` uploads a file."""
    import boto3

    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, **KEYS)
    client.create_bucket(Bucket=BUCKET)
    options = {
        "endpoint_url": endpoint,
        "key": KEYS["aws_access_key_id"],
        "secret": KEYS["aws_secret_access_key"],
        "client_kwargs": {"region_name": KEYS["region_name"]},
    }

    def put(path: str, key: str, public: bool = False) -> str:
        client.upload_file(path, BUCKET, key, ExtraArgs={"ACL": "public-read"} if public else None)
        return f"s3://{BUCKET}/{key}"

    try:
        yield {"put": put, "options": options, "endpoint": endpoint}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stored(s3: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A loomfile-written file (two layers, a graph, a contiguous layer h5py must read) locally and on S3."""
    rng = np.random.default_rng(11)
    m = rng.poisson(0.4, (700, 900)).astype(np.float32)
    path = os.fspath(tmp_path_factory.mktemp("remote") / "file.loom")
    loomfile.create(
        path,
        {"": m, "spliced": (m * 2).astype(np.uint16)},
        {"Gene": np.array([f"g{i}" for i in range(700)]), "Mean": m.mean(axis=1)},
        {"CellID": np.array([f"c{j}" for j in range(900)]), "PCA": rng.normal(size=(900, 3))},
        file_attrs={"title": "remote"},
    )
    with loomfile.connect(path) as ds:
        ds.col_graphs["KNN"] = sparse.random(900, 900, density=0.01, format="coo", random_state=3)
    with h5py.File(path, "r+") as f:
        f.create_dataset("layers/flat", data=(m * 3).astype(np.float64))  # contiguous: no engine
    return {"path": path, "url": s3["put"](path, "dir/file.loom"), "options": s3["options"], "matrix": m}


def test_s3_reads_the_same_values_as_the_local_file(stored: dict[str, Any]) -> None:
    rows = np.array([699, 3, 3, 250, 64, 0])
    mask = np.arange(900) % 7 == 2
    with (
        loomfile.connect(stored["url"], "r", storage_options=stored["options"]) as remote,
        loomfile.connect(stored["path"], "r") as local,
    ):
        assert remote.shape == local.shape == (700, 900) and remote.mode == "r"
        assert remote._store.chunk_layout("") is not None  # read by the engine, not h5py
        assert np.array_equal(remote[:, :], stored["matrix"])
        assert np.array_equal(remote[rows, :][:, mask], local[rows, :][:, mask])
        assert np.array_equal(remote["spliced"][100:300, 850:], local["spliced"][100:300, 850:])
        assert remote._store.chunk_layout("flat") is None  # contiguous: read through h5py
        assert np.array_equal(remote["flat"][::5, 13], local["flat"][::5, 13])
        for name in local.ra.keys():
            assert np.array_equal(remote.ra[name], local.ra[name])
        for name in local.ca.keys():
            assert np.array_equal(remote.ca[name], local.ca[name])
        assert remote.attrs.title == "remote"
        assert (remote.col_graphs.KNN != local.col_graphs.KNN).nnz == 0
        assert (remote.sparse(layer="spliced") != local.sparse(layer="spliced")).nnz == 0
        for axis in (0, 1):
            for a, b in zip(
                remote.map([np.mean, np.max], axis=axis), local.map([np.mean, np.max], axis=axis), strict=True
            ):
                assert np.array_equal(a, b)
        bands = [
            (ix, view["spliced"][:, :])
            for ix, _, view in remote.scan(axis=1, batch_size=256, layers=["spliced"])
        ]
        assert [ix for ix, _ in bands] == [0, 256, 512, 768]
        assert np.array_equal(np.hstack([v for _, v in bands]), local["spliced"][:, :])


def test_s3_reads_a_loompy_file_as_loompy_reads_it(s3: dict[str, Any], tmp_path: Path) -> None:
    import loompy

    rng = np.random.default_rng(4)
    m = rng.poisson(0.3, (200, 333)).astype(np.float32)
    path = os.fspath(tmp_path / "loompy.loom")
    loompy.create(path, m, {"Gene": np.array([f"g{i}" for i in range(200)])}, {"CellID": np.arange(333)})
    url = s3["put"](path, "loompy.loom")
    with loomfile.connect(url, "r", storage_options=s3["options"]) as remote, loompy.connect(path, "r") as lp:
        assert np.array_equal(remote[:, :], lp[:, :])
        assert np.array_equal(remote[[5, 1], 300:], lp[:, :][[5, 1], 300:])  # loompy wants sorted indices
        assert list(remote.ra.Gene) == list(lp.ra.Gene)
        assert np.array_equal(remote.ca.CellID, lp.ca.CellID)


def test_http_reads_a_public_object(s3: dict[str, Any], stored: dict[str, Any]) -> None:
    s3["put"](stored["path"], "public/file.loom", public=True)
    url = f"{s3['endpoint']}/{BUCKET}/public/file.loom"  # plain HTTP range requests, no credentials
    with loomfile.connect(url, "r") as remote:
        assert remote._store.chunk_layout("spliced") is not None
        assert np.array_equal(remote[:, 17:400], stored["matrix"][:, 17:400])
        assert np.array_equal(remote["spliced"][::3, :], (stored["matrix"] * 2).astype(np.uint16)[::3, :])


def test_dask_tasks_open_the_url(stored: dict[str, Any]) -> None:
    import loomfile.dask as ld

    pytest.importorskip("dask")
    got = ld.map(stored["url"], [np.std], 1, client="threads", block=128, storage_options=stored["options"])
    with loomfile.connect(stored["path"], "r") as local:
        assert np.array_equal(got[0], local.map([np.std], axis=1)[0])
    with loomfile.connect(stored["url"], "r", storage_options=stored["options"]) as remote:
        arr = remote.layers["spliced"].to_dask(block=256)
    assert np.array_equal(arr.compute(scheduler="threads"), (stored["matrix"] * 2).astype(np.uint16))


def test_byte_ranges_small_large_and_past_the_end(s3: dict[str, Any], tmp_path: Path) -> None:
    data = (
        np.random.default_rng(1)
        .integers(0, 256, size=_remote.BLOCK_BYTES + 300_000, dtype=np.uint8)
        .tobytes()
    )
    path = tmp_path / "bytes.bin"
    path.write_bytes(data)
    remote = _remote.RemoteFile(s3["put"](os.fspath(path), "bytes.bin"), s3["options"])
    try:
        assert remote.size == len(data)
        for offset, size in [(0, 100), (12345, 70_000), (10, _remote.BLOCK_BYTES), (len(data) - 50, 200)]:
            buf = bytearray(size)
            n = remote.read_into(memoryview(buf), offset)
            assert n == min(size, len(data) - offset)
            assert bytes(buf[:n]) == data[offset : offset + size]
        cursor = remote.cursor()
        cursor.seek(-10, os.SEEK_END)
        assert cursor.read() == data[-10:] and cursor.tell() == len(data)
    finally:
        remote.close()


def test_what_cannot_be_read(s3: dict[str, Any], stored: dict[str, Any], tmp_path: Path) -> None:
    options = s3["options"]
    with pytest.raises(loomfile.LoomReadOnlyError, match="mode='r'"):
        loomfile.connect(stored["url"], "r+", storage_options=options)  # loompy's default mode
    with loomfile.connect(stored["url"], storage_options=options) as ds:  # without a mode: for reading
        assert ds.shape == stored["matrix"].shape
        with pytest.raises(loomfile.LoomReadOnlyError, match=r"opened by URL.*read-only"):
            ds.ca["x"] = np.arange(ds.shape[1])
    with pytest.raises(loomfile.LoomNotFoundError, match="not found"):
        loomfile.connect(f"s3://{BUCKET}/absent.loom", "r", storage_options=options)
    text = tmp_path / "text.loom"
    text.write_text("not HDF5")
    with pytest.raises(loomfile.LoomFormatError, match="not a readable HDF5"):
        loomfile.connect(s3["put"](os.fspath(text), "text.loom"), "r", storage_options=options)
    bare = tmp_path / "bare.h5"
    with h5py.File(bare, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(loomfile.LoomFormatError, match="not a valid Loom file"):
        loomfile.connect(s3["put"](os.fspath(bare), "bare.h5"), "r", storage_options=options)


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("s3://b/k.loom", True),
        ("https://host/x.loom", True),
        ("gcs://b/k", True),
        ("data.loom", False),
        ("/abs/s3://x", False),
        ("C:\\data\\x.loom", False),
    ],
)
def test_urls_are_told_from_paths(name: str, url: bool) -> None:
    assert _remote.is_url(name) is url
