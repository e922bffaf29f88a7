"""Untrusted uploads -> a workflow's files: a YAML file, or a .tar/.tar.gz with the YAML and
its scripts, sent as the request body or as the `file` field of a multipart form, or named
by the paper's `?archive=FILE` on the daemon's machine. No absolute paths, no `..`, no
links, no devices. Nothing is written here: the caller gets relative paths and their bytes.

Every bound below is checked before what it bounds is read. tarfile itself reads a GNU
long-name or pax header member whole, whatever size it announces (a 1 MB gzip announcing a
1,000 MB long name took the daemon to 2 GB), and recurses once per header member in a row
(2,000 empty ones overflowed the stack): `_Member` checks each header member before tarfile
reads it, through `_proc_member`, the hook tarfile's source offers subclasses (that 1 MB
gzip is now refused with the daemon at 38 MB). The cost is depending on private methods,
the same in CPython 3.6 to 3.13. Sparse members are refused for the same reason: tarfile
reads their block maps whole too.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from ccd.errors import Forbidden, UploadError

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_BODY = 32 * 1024 * 1024  # an upload as sent, counted while it streams in
MAX_MEMBERS = 1000
MAX_UNPACKED = 64 * 1024 * 1024  # with the body, keeps any upload under 200 MB of RSS
MAX_HEADER = 64 * 1024  # one long-name or pax header member; also all global ones together
MAX_HEADER_CHAIN = 8  # header members before the member they describe (tar writes up to 3)
MAX_NAME = 255  # bytes in one part of a member's path: NAME_MAX of Linux file systems
MAX_PATH = 1024  # bytes in a member's whole path

_HEADERS = {tarfile.GNUTYPE_LONGNAME: "GNU long-name", tarfile.GNUTYPE_LONGLINK: "GNU long-link",
            tarfile.XHDTYPE: "pax", tarfile.SOLARIS_XHDTYPE: "pax", tarfile.XGLTYPE: "pax global"}


def unpack(data: bytes, filename: str) -> dict[str, bytes]:
    """The files of an upload by relative POSIX path; a bare YAML becomes `{filename: data}`."""
    if len(data) > MAX_BODY:
        raise UploadError(f"upload is {len(data):,} bytes; the limit is {MAX_BODY:,}", 413)
    if _is_tar(data):
        return _untar(data)
    name = PurePosixPath(filename or "workflow.yaml").name
    if not name.endswith((".yaml", ".yml")):
        name += ".yaml"
    return {name: data}


def layout(files: dict[str, bytes], main: str, name: str) -> dict[str, bytes]:
    """The files as a workflow called `name` keeps them: its YAML (`main`) as `name.yaml` at
    the top, the rest as uploaded. Refuses a path that is both a file and a directory."""
    kept = {rel: data for rel, data in files.items() if rel != main}
    kept[f"{name}.yaml"] = files[main]
    _refuse_clashes(kept)
    return kept


def _is_tar(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b" or data[257:262] == b"ustar"


def _untar(data: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    try:
        with _Reader.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise UploadError(f"archive has more than {MAX_MEMBERS} members", 413)
                path = _safe_path(member.name)
                if member.isdir():
                    continue
                if not member.isfile():
                    raise UploadError(f"archive member {member.name!r} is a link or a device; "
                                      "only regular files and directories are accepted")
                if not path:
                    raise UploadError(f"archive member {member.name!r} is a file but names "
                                      "the archive's own top directory")
                total += member.size
                if total > MAX_UNPACKED:
                    raise UploadError(f"archive unpacks to more than {MAX_UNPACKED:,} bytes", 413)
                f = tar.extractfile(member)
                assert f is not None
                files[path] = f.read(member.size)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise UploadError(f"not a readable tar archive: {e}") from None
    _refuse_clashes(files)
    return _strip_common_directory(files)


class _Member(tarfile.TarInfo):
    """A member whose header members (long names, pax headers) are checked before tarfile
    reads them whole."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        assert isinstance(tar, _Reader)
        if self.type == tarfile.GNUTYPE_SPARSE:
            self._refuse_sparse(self)
        kind = _HEADERS.get(self.type)
        if kind is None:
            tar.chain = 0
        else:
            tar.chain += 1
            if tar.chain > MAX_HEADER_CHAIN:
                raise UploadError(f"archive has more than {MAX_HEADER_CHAIN} header members in "
                                  f"a row (long names or pax headers) at {_shown(self.name)}")
            if self.size > MAX_HEADER:
                raise UploadError(f"archive member {_shown(self.name)} is a {kind} header of "
                                  f"{self.size:,} bytes; the limit is {MAX_HEADER:,}", 413)
            if self.type == tarfile.XGLTYPE:  # kept, and applied to every later member
                tar.global_bytes += self.size
                if tar.global_bytes > MAX_HEADER:
                    raise UploadError(f"archive's pax global headers hold more than "
                                      f"{MAX_HEADER:,} bytes", 413)
        member: tarfile.TarInfo = super()._proc_member(tar)  # type: ignore[misc]
        return member

    def _refuse_sparse(self, member: tarfile.TarInfo, *_: object) -> None:
        raise UploadError(f"archive member {_shown(member.name)} is a sparse file; only "
                          "regular files and directories are accepted")

    # What a pax header calls for each of its sparse formats (with the member it describes).
    _proc_gnusparse_00 = _proc_gnusparse_01 = _proc_gnusparse_10 = _refuse_sparse


class _Reader(tarfile.TarFile):
    """A TarFile of `_Member`s, counting its header members."""

    tarinfo = _Member
    chain = 0  # header members in a row so far
    global_bytes = 0  # in pax global headers so far


def _safe_path(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\x00" in name:
        raise UploadError(f"archive member {_shown(name)} points outside the archive")
    parts = [p for p in path.parts if p not in ("", ".")]
    if any(len(os.fsencode(p)) > MAX_NAME for p in parts):
        raise UploadError(f"archive member {_shown(name)} is refused: a part of its path is "
                          f"over {MAX_NAME} bytes")
    joined = "/".join(parts)
    if len(os.fsencode(joined)) > MAX_PATH:
        raise UploadError(f"archive member {_shown(name)} is refused: its path is over "
                          f"{MAX_PATH:,} bytes")
    return joined


def _shown(name: str) -> str:
    """A member's name for a message: its start, if it is long."""
    return repr(name) if len(name) <= 80 else repr(name[:60]) + f"... ({len(name):,} characters)"


def _refuse_clashes(files: dict[str, bytes]) -> None:
    """Refuse `x` beside `x/y`: the file would stand where the directory must be."""
    directories = {p.rsplit("/", n)[0] for p in files for n in range(1, p.count("/") + 1)}
    clashes = sorted(directories.intersection(files))
    if clashes:
        raise UploadError(f"archive member {clashes[0]!r} is both a file and a directory")


def _strip_common_directory(files: dict[str, bytes]) -> dict[str, bytes]:
    """A tar of a directory (`wf/wf.yaml`, `wf/a.sh`) reads as its content."""
    tops = {p.split("/", 1)[0] for p in files}
    if len(tops) == 1 and all("/" in p for p in files):
        return {p.split("/", 1)[1]: d for p, d in files.items()}
    return files


def form_file(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The `file` field of a multipart/form-data body (read whole, within MAX_BODY, before
    this is called) and the file name it was sent with."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise UploadError("the multipart form has no boundary in its Content-Type")
    form = _Form()
    try:
        parser = MultipartParser(boundary, form.callbacks())
        parser.write(body)
        parser.finalize()
    except FormParserError as e:
        raise UploadError(f"unreadable multipart form: {e}") from None
    if form.data is None:
        raise UploadError("the form needs a `file` field holding the workflow")
    if not form.ended:
        raise UploadError("the multipart form ends before its closing boundary")
    return b"".join(form.data), form.filename


class _Form:
    """Keeps the `file` field of a multipart form as python-multipart parses it."""

    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.field = self.value = b""  # the part header being read
        self.keep = False  # the part being read is the file
        self.data: list[bytes] | None = None
        self.filename = ""
        self.ended = False

    def callbacks(self) -> MultipartCallbacks:
        return {"on_part_begin": self.headers.clear, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished,
                "on_part_data": self.on_part_data, "on_end": self.on_end}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.field.lower()] = self.value
        self.field = self.value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition"))
        self.keep = options.get(b"name") == b"file"
        if self.keep:
            if self.data is not None:
                raise UploadError("the form has more than one `file` field; send one")
            self.data = []
            self.filename = options.get(b"filename", b"").decode("utf-8", "replace")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.keep:
            assert self.data is not None
            self.data.append(data[start:end])

    def on_end(self) -> None:
        self.ended = True


def server_file(archive: str, allowed: Sequence[Path]) -> tuple[bytes, str]:
    """The bytes and name of a file named by the paper's `?archive=FILE` on the daemon's
    machine: only under one of the `allowed` directories (links followed), and only a tar
    or a .yaml file, so that no other file's content can reach a message."""
    if "\x00" in archive:
        raise UploadError("archive must be a path, without NUL bytes")
    path = Path(os.path.expanduser(archive)).resolve()
    if not any(path.is_relative_to(d) for d in allowed):
        where = ", ".join(map(str, allowed)) or "none"
        raise Forbidden(f"archive {archive!r} is outside the directories ccd reads archives "
                        f"from ({where}); start ccd with --archive-dir DIR to allow another")
    try:
        # O_NONBLOCK: opening a FIFO must not hang; it is refused below as not a file.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise UploadError(f"archive {archive!r} is not a file on the daemon's machine",
                                  404)
            if info.st_size > MAX_BODY:
                raise UploadError(f"archive {archive!r} is over {MAX_BODY:,} bytes", 413)
            data = f.read(MAX_BODY + 1)
    except OSError as e:
        raise UploadError(f"cannot read archive {archive!r}: {e.strerror}", 404) from None
    name = PurePosixPath(archive).name
    if not _is_tar(data) and not name.endswith((".yaml", ".yml")):
        raise UploadError(f"archive {archive!r} is neither a tar archive nor a .yaml file",
                          415)
    return data, name


def pack(path: Path) -> tuple[bytes, str]:
    """What to upload for a workflow given as a YAML file, a directory holding one, or an
    archive: a tar.gz of the YAML and the scripts it names, or the archive as it is."""
    from ccd.spec import load_spec

    if path.is_dir():
        yamls = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        if len(yamls) != 1:
            raise UploadError(f"{path} holds {len(yamls)} YAML files; name the one to submit")
        path = yamls[0]
    if path.suffix not in (".yaml", ".yml"):
        return path.read_bytes(), path.name
    spec, _ = load_spec(path)  # validate here: errors name the user's own file
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(path, arcname=path.name)
        for job in spec.jobs.values():
            if job.script is not None:
                rel = PurePosixPath(job.script)
                if rel.is_absolute() or ".." in rel.parts:
                    raise UploadError(f"{path}: script {job.script!r} of job {job.name!r} is "
                                      "outside the workflow's directory; it cannot be uploaded")
                tar.add(spec.base_dir / job.script, arcname=str(rel))
    return buffer.getvalue(), path.name.rsplit(".", 1)[0] + ".tar.gz"


def main_yaml(files: dict[str, bytes], prefer: str | None = None) -> str:
    """The workflow file of an upload: the top-level YAML (named `prefer` if several)."""
    yamls = [p for p in files if "/" not in p and p.endswith((".yaml", ".yml"))]
    if prefer is not None:
        for p in yamls:
            if PurePosixPath(p).stem == prefer:
                return p
    if len(yamls) == 1:
        return yamls[0]
    if not yamls:
        raise UploadError("the upload holds no workflow YAML file at its top level", 422)
    raise UploadError(f"the upload holds several YAML files ({', '.join(sorted(yamls))}); "
                      "name the workflow to choose one", 422)
