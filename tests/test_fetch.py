"""`harness data fetch`: downloads from a local Range-capable HTTP server (harness.data.fetch)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner
from rich.console import Console

from harness.cli.data import data_group
from harness.data.fetch import ARCHIVE_DIR, MANIFEST, FetchError, Remote, fetch

TRAIN = b"".join(b"TGCATTTTTTTCACATC%s\t%d\n" % (b"ACGT" * (i % 7 + 1), i % 18) for i in range(3000))
TEST = b"ACGT\t0.5\nCCGG\t1.25\n"


def _tar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


SUBSETS = _tar({"test_subset_ids/high_exp_seqs.csv": b"pos\n0\n", "test_subset_ids/._junk.csv": b"x", "test_subset_ids/README": b"x"})
PUBLIC = _tar({"public_leaderboard_ids/high_exp_indices.json": b'{"0": 0.5}'})
FILES = {"train_sequences.txt": TRAIN, "test.txt": TEST, "subsets.tar.gz": SUBSETS, "public.tar.gz": PUBLIC}


class _Handler(BaseHTTPRequestHandler):
    """Serves FILES; honours ``Range: bytes=N-`` (206) unless the server says ignore_range."""

    def do_GET(self):  # noqa: N802 (http.server API)
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        name = self.path.lstrip("/").split("?")[0]
        if name not in server.files:
            self.send_error(404, "Not Found")
            return
        data = server.files[name]
        start = 0
        rng = self.headers.get("Range")
        if rng and not server.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if server.cut_at is not None:  # announce the whole body, then drop the connection early
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: server.cut_at])
            server.cut_at = None
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files = dict(FILES)
    httpd.requests = []
    httpd.ignore_range = False
    httpd.cut_at = None
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _manifest(base: str, train_sha: str | None = None) -> dict:
    return {"demo": (
        Remote("train_sequences.txt", f"{base}/train_sequences.txt?download=1", size=len(TRAIN),
               sha256=train_sha or hashlib.sha256(TRAIN).hexdigest(), rows=3000),
        Remote("filtered_test_data_with_MAUDE_expression.txt", f"{base}/test.txt", rows=2),
        Remote("subsets.tar.gz", f"{base}/subsets.tar.gz", target="test_subset_ids", members=(".csv",)),
        Remote("public.tar.gz", f"{base}/public.tar.gz", target="public_leaderboard_ids", members=(".json",)),
    )}


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def test_full_download_into_official_layout(server, tmp_path):
    out = fetch("demo", tmp_path / "data", manifest=_manifest(server.base), console=_quiet(), progress=False)
    data = tmp_path / "data"
    assert (data / "train_sequences.txt").read_bytes() == TRAIN
    assert (data / "filtered_test_data_with_MAUDE_expression.txt").read_bytes() == TEST
    assert sorted(p.name for p in (data / "test_subset_ids").iterdir()) == ["high_exp_seqs.csv"]
    assert (data / "public_leaderboard_ids" / "high_exp_indices.json").read_text() == '{"0": 0.5}'
    assert out["train_sequences.txt"] == {"status": "downloaded", "bytes": len(TRAIN), "sha256": hashlib.sha256(TRAIN).hexdigest()}
    assert not list(data.rglob("*.part"))
    # a second run verifies what is there and downloads nothing
    server.requests.clear()
    again = fetch("demo", data, manifest=_manifest(server.base), console=_quiet(), progress=False)
    assert {v["status"] for v in again.values()} == {"present"} and server.requests == []
    assert (data / ARCHIVE_DIR / "subsets.tar.gz").is_file()


def test_checksum_mismatch_names_the_file_and_removes_the_download(server, tmp_path):
    with pytest.raises(FetchError, match=r"train_sequences\.txt: checksum mismatch: expected sha256 0{64}, got [0-9a-f]{64}"):
        fetch("demo", tmp_path, manifest=_manifest(server.base, train_sha="0" * 64), console=_quiet(), progress=False,
              only=("train_sequences.txt",))
    assert not (tmp_path / "train_sequences.txt").exists()
    assert not (tmp_path / "train_sequences.txt.part").exists()


def test_resume_a_partial_download_with_range(server, tmp_path):
    half = len(TRAIN) // 2
    (tmp_path / "train_sequences.txt.part").write_bytes(TRAIN[:half])
    fetch("demo", tmp_path, manifest=_manifest(server.base), console=_quiet(), progress=False, only=("train_sequences.txt",))
    assert (tmp_path / "train_sequences.txt").read_bytes() == TRAIN
    assert server.requests == [("/train_sequences.txt?download=1", f"bytes={half}-")]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.ignore_range = True
    (tmp_path / "train_sequences.txt.part").write_bytes(b"garbage that is not the file")
    fetch("demo", tmp_path, manifest=_manifest(server.base), console=_quiet(), progress=False, only=("train_sequences.txt",))
    assert (tmp_path / "train_sequences.txt").read_bytes() == TRAIN


def test_dropped_connection_is_resumed(server, tmp_path):
    server.cut_at = 1000
    fetch("demo", tmp_path, manifest=_manifest(server.base), console=_quiet(), progress=False, only=("train_sequences.txt",))
    assert (tmp_path / "train_sequences.txt").read_bytes() == TRAIN
    assert server.requests[-1][1] == "bytes=1000-"


def test_http_error_status_is_reported(server, tmp_path):
    manifest = {"demo": (Remote("missing.txt", f"{server.base}/missing.txt"),)}
    with pytest.raises(FetchError, match=r"missing\.txt: HTTP 404 Not Found from http://127\.0\.0\.1:\d+/missing\.txt"):
        fetch("demo", tmp_path, manifest=manifest, console=_quiet(), progress=False)


def test_cli_fetch_with_base_url(server, tmp_path, monkeypatch):
    # the real manifest's file names, served by the local mirror
    server.files = {"train_sequences.txt": TRAIN, "filtered_test_data_with_MAUDE_expression.txt": TEST}
    monkeypatch.setitem(MANIFEST, "dream2022", tuple(
        r if r.path != "train_sequences.txt" else Remote(r.path, r.url, size=len(TRAIN), sha256=hashlib.sha256(TRAIN).hexdigest(), rows=3000)
        for r in MANIFEST["dream2022"]))
    result = CliRunner().invoke(data_group, ["fetch", "dream2022", "--to", str(tmp_path), "--base-url", server.base,
                                             "--only", "train_sequences.txt"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "train_sequences.txt").read_bytes() == TRAIN
    # a file that fails its checks (here: 2 rows, the manifest says 71,103) exits with code 2, naming it
    result = CliRunner().invoke(data_group, ["fetch", "dream2022", "--to", str(tmp_path / "other"), "--base-url", server.base,
                                             "--only", "filtered_test_data_with_MAUDE_expression.txt"])
    assert result.exit_code == 2
    assert "filtered_test_data_with_MAUDE_expression.txt: expected 71,103 rows, got 2" in result.output
    assert not (tmp_path / "other" / "filtered_test_data_with_MAUDE_expression.txt").exists()
