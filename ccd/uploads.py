"""Untrusted uploads -> a workflow's files: a YAML body, or a .tar/.tar.gz with the YAML and
its scripts. Bounded in size and member count; no absolute paths, no `..`, no links, no
devices. Nothing is written here: the caller gets relative paths and their bytes.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path, PurePosixPath

from ccd.errors import UploadError

MAX_BODY = 32 * 1024 * 1024
MAX_MEMBERS = 1000
MAX_UNPACKED = 128 * 1024 * 1024


def unpack(data: bytes, filename: str) -> dict[str, bytes]:
    """The files of an upload by relative POSIX path; a bare YAML becomes `{filename: data}`."""
    if len(data) > MAX_BODY:
        raise UploadError(f"upload is {len(data):,} bytes; the limit is {MAX_BODY:,}", 413)
    if data[:2] == b"\x1f\x8b" or data[257:262] == b"ustar":
        return _untar(data)
    name = PurePosixPath(filename or "workflow.yaml").name
    if not name.endswith((".yaml", ".yml")):
        name += ".yaml"
    return {name: data}


def _untar(data: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise UploadError(f"archive has more than {MAX_MEMBERS} members", 413)
                path = _safe_path(member.name)
                if member.isdir():
                    continue
                if not member.isfile():
                    raise UploadError(f"archive member {member.name!r} is a link or a device; "
                                      "only regular files and directories are accepted")
                total += member.size
                if total > MAX_UNPACKED:
                    raise UploadError(f"archive unpacks to more than {MAX_UNPACKED:,} bytes", 413)
                f = tar.extractfile(member)
                assert f is not None
                files[path] = f.read(member.size)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise UploadError(f"not a readable tar archive: {e}") from None
    return _strip_common_directory(files)


def _safe_path(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\x00" in name:
        raise UploadError(f"archive member {name!r} points outside the archive")
    parts = [p for p in path.parts if p not in ("", ".")]
    return "/".join(parts)


def _strip_common_directory(files: dict[str, bytes]) -> dict[str, bytes]:
    """A tar of a directory (`wf/wf.yaml`, `wf/a.sh`) reads as its content."""
    tops = {p.split("/", 1)[0] for p in files}
    if len(tops) == 1 and all("/" in p for p in files):
        return {p.split("/", 1)[1]: d for p, d in files.items()}
    return files


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
