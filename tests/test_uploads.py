"""ccd.uploads on its own: what an untrusted upload may hold, and how it is refused."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from ccd.errors import Forbidden, UploadError
from ccd.uploads import MAX_HEADER, MAX_NAME, MAX_PATH, form_file, server_file, unpack

YAML = b"workflow:\n  nodes: {a: {exec: 'true'}}\n  dependencies: []\n"


def header(name: str, kind: bytes, size: int) -> bytes:
    """One 512-byte tar header block, with no data after it."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    return info.tobuf(tarfile.USTAR_FORMAT)


def tar(*members: tuple[str, bytes | None]) -> bytes:
    """A tar of regular files (bytes) and directories (None), written as GNU tar would."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def refusal(data: bytes) -> UploadError:
    with pytest.raises(UploadError) as caught:
        unpack(data, "upload.tar")
    return caught.value


@pytest.mark.parametrize(("kind", "what"), [
    (tarfile.GNUTYPE_LONGNAME, "GNU long-name"), (tarfile.GNUTYPE_LONGLINK, "GNU long-link"),
    (tarfile.XHDTYPE, "pax"), (tarfile.XGLTYPE, "pax global"),
])
def test_a_big_header_member_is_refused_before_it_is_read(kind: bytes, what: str) -> None:
    # 1,000 MB announced, none of it sent: reading it first would fail differently.
    e = refusal(header("././@LongLink", kind, 1_000_000_000) + bytes(1024))
    assert e.status == 413
    assert str(e) == (f"archive member '././@LongLink' is a {what} header of 1,000,000,000 "
                      f"bytes; the limit is {MAX_HEADER:,}")


def test_header_members_in_a_row_are_bounded() -> None:
    # Each one makes tarfile recurse: 2,000 of them overflowed the stack (a 500).
    e = refusal(header("././@LongLink", tarfile.GNUTYPE_LONGNAME, 0) * 2000 + bytes(1024))
    assert "header members in a row" in str(e)


def test_global_pax_headers_together_are_bounded() -> None:
    record = b"65536 " + b"k" * 10 + b"="
    body = record + b"v" * (65536 - len(record) - 1) + b"\n"
    one = header("pax_global_header", tarfile.XGLTYPE, len(body)) + body
    e = refusal(one + (header("w.yaml", tarfile.REGTYPE, 0) + one) * 2 + bytes(1024))
    assert e.status == 413 and "global" in str(e)


def test_sparse_members_are_refused_before_their_map_is_read() -> None:
    e = refusal(header("big", tarfile.GNUTYPE_SPARSE, 0) + bytes(1024))
    assert "'big'" in str(e) and "sparse" in str(e)


@pytest.mark.parametrize(("name", "complaint"), [
    ("x" * 300 + ".sh", f"a part of its path is over {MAX_NAME} bytes"),
    ("d/" * 600 + "f.sh", f"its path is over {MAX_PATH:,} bytes"),
])
def test_overlong_names_are_refused(name: str, complaint: str) -> None:
    e = refusal(tar(("w.yaml", YAML), (name, b"echo")))
    assert e.status == 400 and complaint in str(e) and name[:40] in str(e)


@pytest.mark.parametrize("order", [["x", "x/y"], ["x/y", "x"]])
def test_a_path_that_is_both_a_file_and_a_directory_is_refused(order: list[str]) -> None:
    e = refusal(tar(("w.yaml", YAML), *[(n, b"echo") for n in order]))
    assert str(e) == "archive member 'x' is both a file and a directory"


@pytest.mark.parametrize("name", [".", "./"])
def test_the_archives_own_directory_as_a_file_is_refused(name: str) -> None:
    buffer = io.BytesIO(tar(("w.yaml", YAML)))
    with tarfile.open(fileobj=buffer, mode="a") as t:
        info = tarfile.TarInfo(name)
        info.size = 4
        t.addfile(info, io.BytesIO(b"oops"))
    e = refusal(buffer.getvalue())
    assert f"archive member {name!r} is a file" in str(e)


def test_a_directory_member_named_dot_is_fine() -> None:
    assert unpack(tar((".", None), ("./w.yaml", YAML), ("./a.sh", b"echo")), "u.tar") == \
        {"w.yaml": YAML, "a.sh": b"echo"}


def test_a_tar_within_every_bound_unpacks() -> None:
    name = "d/" * 100 + "x" * 200
    assert unpack(tar(("wf/w.yaml", YAML), (f"wf/{name}", b"ok")), "u.tar") == \
        {"w.yaml": YAML, name: b"ok"}


def form(*parts: tuple[str, str | None, bytes], end: bool = True) -> bytes:
    """A multipart/form-data body with boundary `b0`: (field, file name, content) parts."""
    out = b""
    for field, filename, content in parts:
        name = f'; filename="{filename}"' if filename is not None else ""
        out += (f'--b0\r\nContent-Disposition: form-data; name="{field}"{name}\r\n\r\n'
                .encode() + content + b"\r\n")
    return out + (b"--b0--\r\n" if end else b"")


FORM = "multipart/form-data; boundary=b0"


def test_the_file_field_of_a_form_is_the_upload() -> None:
    body = form(("note", None, b"hello"), ("file", "w.yaml", YAML), ("other", None, b"x"))
    assert form_file(body, FORM) == (YAML, "w.yaml")


@pytest.mark.parametrize(("body", "content_type", "complaint"), [
    (form(("note", None, b"hello")), FORM, "the form needs a `file` field"),
    (form(("file", "a.yaml", YAML), ("file", "b.yaml", YAML)), FORM, "more than one `file`"),
    (form(("file", "w.yaml", YAML), end=False), FORM, "ends before its closing boundary"),
    (form(("file", "w.yaml", YAML)), "multipart/form-data", "no boundary"),
    (b"--b0\r\nno headers at all", FORM, "unreadable multipart form"),
])
def test_a_broken_form_is_refused(body: bytes, content_type: str, complaint: str) -> None:
    with pytest.raises(UploadError) as caught:
        form_file(body, content_type)
    assert caught.value.status == 400 and complaint in str(caught.value)


def test_an_archive_is_read_only_from_an_allowed_directory(tmp_path: Path) -> None:
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    allowed.mkdir()
    other.mkdir()
    (allowed / "w.yaml").write_bytes(YAML)
    (other / "w.yaml").write_bytes(YAML)
    (allowed / "out.yaml").symlink_to(other / "w.yaml")
    os.mkfifo(allowed / "fifo.yaml")
    assert server_file(str(allowed / "w.yaml"), [allowed]) == (YAML, "w.yaml")
    assert server_file(str(allowed / "sub" / ".." / "w.yaml"), [allowed]) == (YAML, "w.yaml")
    for outside in (other / "w.yaml", allowed / "out.yaml", allowed / ".." / "other" / "w.yaml"):
        with pytest.raises(Forbidden, match="--archive-dir"):
            server_file(str(outside), [allowed])
    with pytest.raises(UploadError, match="is not a file") as caught:
        server_file(str(allowed / "fifo.yaml"), [allowed])  # and does not hang
    assert caught.value.status == 404


def test_an_archive_that_is_neither_tar_nor_yaml_is_refused_unread(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("password: hunter2\n")
    with pytest.raises(UploadError) as caught:
        server_file(str(tmp_path / "notes.txt"), [tmp_path])
    assert caught.value.status == 415 and "hunter2" not in str(caught.value)
    (tmp_path / "w.tgz").write_bytes(tar(("w.yaml", YAML)))
    assert server_file(str(tmp_path / "w.tgz"), [tmp_path])[1] == "w.tgz"
