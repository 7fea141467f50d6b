"""benchmarks/get_data.py against a local HTTP server that serves the public files, rebuilt
from the team's copies in their public layouts (gzipped IDX, the TEXMEX tar and the start of
BIGANN's gzipped base, more than the script reads): every set comes out byte for byte as
the copies the figures were measured on (bigann10k's ground truth up to tied neighbours)."""
import functools
import gzip
import hashlib
import http.server
import shutil
import tarfile
import threading

import numpy as np
import pytest

from benchmarks import get_data

from .conftest import data_path


def idx_gz(images: np.ndarray) -> bytes:
    """uint8 (n, 784) images as a gzipped IDX file."""
    header = np.array([2051, len(images), 28, 28], ">u4").tobytes()
    return gzip.compress(header + images.astype(np.uint8).tobytes(), compresslevel=1)


def fvecs_rows(path) -> np.ndarray:
    raw = np.fromfile(path, "<f4")
    return raw.reshape(-1, int(raw[:1].view("<i4")[0]) + 1)[:, 1:]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, folder served): the public files in their layouts, on 127.0.0.1."""
    root = tmp_path_factory.mktemp("public")
    for sub in ("mnist", "texmex", "fashion-mnist"):
        (root / sub).mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(data_path("mnist", name), root / "mnist" / name)
    with tarfile.open(root / "texmex" / "siftsmall.tar.gz", "w:gz", compresslevel=1) as tar:
        for name in ("base.fvecs", "query.fvecs", "groundtruth.ivecs"):
            tar.add(data_path("siftsmall", f"siftsmall_{name}"), f"siftsmall/siftsmall_{name}")
        tar.add(data_path("siftsmall", "siftsmall_base.fvecs"), "siftsmall/siftsmall_learn.fvecs")
    rng = np.random.default_rng(0)
    base = data_path("bigann10k", "bigann10k_base.bvecs").read_bytes()
    more = np.hstack([np.full((50, 4), [128, 0, 0, 0], np.uint8),
                      rng.integers(0, 256, (50, 128), np.uint8)]).tobytes()
    (root / "texmex" / "bigann_base.bvecs.gz").write_bytes(gzip.compress(base + more, 1))
    for name, folder, extra in (("train-images-idx3-ubyte.gz", "base", 20),
                                ("t10k-images-idx3-ubyte.gz", "query", 30)):
        x = fvecs_rows(data_path("fmnistsmall", f"fmnistsmall_{folder}.fvecs"))
        images = np.vstack([x, rng.integers(0, 256, (extra, 784))])
        (root / "fashion-mnist" / name).write_bytes(idx_gz(images))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


def test_every_set_comes_out_as_the_reference_copy(server, tmp_path, capsys):
    url, _ = server
    assert get_data.main(["--dest", str(tmp_path), "--base-url", url]) == 0
    for key, md5 in get_data.MD5.items():
        data = (tmp_path / key).read_bytes()
        if key == "bigann10k/bigann10k_groundtruth.ivecs":   # ties in another order
            ours = np.frombuffer(data, "<i4").reshape(100, 101)
            ref = np.fromfile(data_path(*key.split("/")), "<i4").reshape(100, 101)
            assert (ours != ref).sum() == 8 and get_data.check(key, data) is None
            np.testing.assert_array_equal(np.sort(ours, axis=1), np.sort(ref, axis=1))
        else:
            assert hashlib.md5(data).hexdigest() == md5, key
    assert get_data.main(["--dest", str(tmp_path), "--base-url", url]) == 0
    assert capsys.readouterr().out.count("already in") == 4


def test_a_bad_download_writes_nothing_and_says_why(server, tmp_path, capsys):
    url, root = server
    labels = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    good = labels.read_bytes()
    try:
        labels.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
        assert get_data.main(["--dest", str(tmp_path), "--base-url", url, "--sets",
                              "mnist,siftsmall"]) == 1
    finally:
        labels.write_bytes(good)
    err = capsys.readouterr().err
    assert "mnist: failed: checksum mismatch, nothing written" in err
    assert not (tmp_path / "mnist").exists() and get_data.is_there(tmp_path, "siftsmall")
    assert get_data.main(["--dest", str(tmp_path), "--base-url", url + "/nowhere",
                          "--sets", "fmnistsmall"]) == 1
    assert "could not download train-images-idx3-ubyte.gz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        get_data.main(["--dest", str(tmp_path), "--sets", "imagenet"])


def test_the_reference_copies_follow_the_recipe():
    """The recipe of the derived sets on the reference copies: the queries of bigann10k are
    its first 100 vectors, and each ground truth is the exact top 100."""
    base = data_path("bigann10k", "bigann10k_base.bvecs").read_bytes()
    query = data_path("bigann10k", "bigann10k_query.bvecs").read_bytes()
    assert query == base[:100 * 132]
    x = fvecs_rows(data_path("fmnistsmall", "fmnistsmall_base.fvecs"))
    q = fvecs_rows(data_path("fmnistsmall", "fmnistsmall_query.fvecs"))
    gt = get_data.vecs_bytes(get_data.ground_truth(x, q))
    assert gt == data_path("fmnistsmall", "fmnistsmall_groundtruth.ivecs").read_bytes()
