"""Where a folder lives: on a local disk, or on a pyarrow file system named by a URI
(`s3://bucket/runs`, `gs://bucket/runs`, `hdfs://host/path`).

A cluster's nodes need storage they all see; users give it as a URI, and pyarrow's file systems
(which Ray Tune and Ray Data use too) reach it. `locate(where)` turns what the user typed into a
`Location`: the file system, the path on it and the URI to show. Local paths stay plain paths
(`Location.local`), so local code keeps its atomic renames; a remote file system has no rename,
and its writers put each object whole instead.

Errors of a remote file system become one VoxpopError line that says what to fix: an endpoint
nothing answers on, a bucket that does not exist, missing or refused credentials. pyarrow gives
these only as the AWS SDK's message text (an OSError without errno), so the text is matched.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from voxpop.data.errors import VoxpopError

# scheme://... ; "file://" is a local path written as a URI
_URI = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)")
# Where the AWS SDK (inside pyarrow) finds credentials besides the instance metadata service.
_AWS_CREDENTIAL_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def is_uri(where) -> bool:
    """True for a file-system URI other than `file://` (`s3://bucket/key`)."""
    match = _URI.match(str(where)) if isinstance(where, str) else None
    return bool(match) and match["scheme"].lower() != "file"


@dataclass(frozen=True)
class Location:
    """A folder or file on a local disk or a pyarrow file system."""

    filesystem: object  # pyarrow.fs.FileSystem
    path: str  # on `filesystem`: an absolute local path, or bucket/key
    uri: str  # what the user sees and passes to the next command

    def __str__(self) -> str:
        return self.uri

    @property
    def local(self) -> Path | None:
        """The local path, or None on a remote file system."""
        return Path(self.path) if self.filesystem.type_name == "local" else None

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def parent(self) -> Location:
        return Location(
            self.filesystem,
            str(PurePosixPath(self.path).parent),
            self.uri.rsplit("/", 1)[0] if self.local is None else str(Path(self.path).parent),
        )

    def child(self, *parts: str) -> Location:
        if self.local is not None:
            path = self.local.joinpath(*parts)
            return Location(self.filesystem, str(path), str(path))
        suffix = "/".join(parts)
        return Location(
            self.filesystem, f"{self.path.rstrip('/')}/{suffix}", f"{self.uri.rstrip('/')}/{suffix}"
        )

    # -- asking
    def _kind(self) -> str:
        """ "NotFound", "File" or "Directory"."""
        with self.errors():
            return self.filesystem.get_file_info(self.path).type.name

    def exists(self) -> bool:
        return self._kind() != "NotFound"

    def is_dir(self) -> bool:
        return self._kind() == "Directory"

    def is_file(self) -> bool:
        return self._kind() == "File"

    def files(self) -> list[str]:
        """Every file below this folder, as paths relative to it, sorted."""
        import pyarrow.fs as pafs

        with self.errors():
            infos = self.filesystem.get_file_info(
                pafs.FileSelector(self.path, recursive=True, allow_not_found=True)
            )
        base = self.path.rstrip("/") + "/"
        return sorted(
            info.path[len(base) :]
            for info in infos
            if info.type == pafs.FileType.File and info.path.startswith(base)
        )

    # -- reading and writing whole files
    def read_bytes(self) -> bytes:
        if not self.is_file():
            raise VoxpopError(f"{self.uri}: file not found")
        with self.errors(), self.filesystem.open_input_stream(self.path) as stream:
            return stream.read()

    @contextlib.contextmanager
    def open(self) -> Iterator[object]:
        """A seekable binary file (pyarrow's NativeFile), e.g. for `np.load`."""
        if not self.is_file():
            raise VoxpopError(f"{self.uri}: file not found")
        with self.errors(), self.filesystem.open_input_file(self.path) as handle:
            yield handle

    def write_bytes(self, data: bytes) -> None:
        """The object appears whole when the stream closes (S3 completes its upload then)."""
        with self.errors(), self.filesystem.open_output_stream(self.path) as stream:
            stream.write(data)

    def upload(self, source: Path) -> None:
        self.write_bytes(Path(source).read_bytes())

    def download(self, target: Path) -> Path:
        """Copy the file to local `target` (which appears whole or not at all)."""
        from voxpop.data.atomic import write_bytes

        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(target, self.read_bytes())
        return target

    def make_dirs(self) -> None:
        with self.errors():
            self.filesystem.create_dir(self.path, recursive=True)

    def remove_tree(self) -> None:
        with self.errors():
            self.filesystem.delete_dir(self.path)

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """OSErrors of a remote file system as one VoxpopError line naming this location; a
        local one's stay OSErrors (the CLI's boundary names the path and the cause)."""
        try:
            yield
        except OSError as err:
            if self.local is not None:
                raise
            raise remote_error(self.uri, err, filesystem=self.filesystem.type_name) from None


def locate(where: str | os.PathLike | Location) -> Location:
    """The Location of a local path (made absolute) or a file-system URI."""
    if isinstance(where, Location):
        return where
    import pyarrow.fs as pafs

    text = os.fspath(where)
    match = _URI.match(text)
    if match and match["scheme"].lower() == "file":
        text = match["rest"]
    if not is_uri(text):
        path = Path(text).expanduser().resolve()
        return Location(pafs.LocalFileSystem(), str(path), str(path))
    try:
        filesystem, path = pafs.FileSystem.from_uri(text)
    except (OSError, ValueError) as err:  # unknown scheme, a malformed URI, no such endpoint
        raise remote_error(text, err, filesystem=match["scheme"].lower()) from None
    uri = f"{match['scheme']}://{path}" if "?" in text else text.rstrip("/")
    return Location(filesystem, path.rstrip("/"), uri)


def check_writable(location: Location, *, what: str) -> None:
    """Refuse, before any work, a folder that cannot be written (see `atomic.check_writable`;
    `what` names it there); on a remote file system a probe object is written into it and
    removed, and the error names the URI."""
    if location.local is not None:
        from voxpop.data.atomic import check_writable as check_local

        check_local(location.local, what=what)
        return
    probe = location.child(f".voxpop-probe-{uuid.uuid4().hex}")
    location.make_dirs()
    probe.write_bytes(b"")
    with probe.errors():
        location.filesystem.delete_file(probe.path)


def remote_error(uri: str, err: Exception, *, filesystem: str) -> VoxpopError:
    """One line saying what went wrong with a remote file system and what to do about it."""
    text = " ".join(str(err).split())
    bucket = re.search(r"[Bb]ucket '([^']*)' not found", text)
    if "NETWORK_CONNECTION" in text or "curlCode: 7" in text or "Could not resolve" in text:
        detail = re.search(r"Failed to connect to [^;]*|Could not resolve [^;]*", text)
        return VoxpopError(
            f"{uri}: cannot reach the storage endpoint "
            f"({(detail[0] if detail else _last_part(text)).strip()}); check "
            f"{'AWS_ENDPOINT_URL or ' if filesystem == 's3' else ''}the network"
        )
    if bucket or "NO_SUCH_BUCKET" in text:
        name = bucket[1] if bucket else uri.split("://", 1)[-1].split("/", 1)[0]
        return VoxpopError(f"{uri}: bucket {name!r} does not exist (create it first)")
    refused = re.search(
        r"ACCESS_DENIED|INVALID_ACCESS_KEY_ID|SIGNATURE_DOES_NOT_MATCH|"
        r"HTTP status (?:401|403|5\d\d)",
        text,
    )
    if filesystem == "s3" and refused:
        if not aws_credentials_configured():
            return VoxpopError(
                f"{uri}: no AWS credentials found (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or ~/.aws/credentials); "
                f"the storage refused the request ({refused[0]})"
            )
        return VoxpopError(
            f"{uri}: access denied with the configured AWS credentials "
            f"({refused[0]}); check the key, its permissions and the bucket"
        )
    return VoxpopError(f"{uri}: {_last_part(text) or type(err).__name__}")


def aws_credentials_configured() -> bool:
    """Whether the AWS SDK's credential chain has a source besides instance metadata (which only
    a request can tell): the environment, or a credentials or config file."""
    if any(os.environ.get(name) for name in _AWS_CREDENTIAL_ENV):
        return True
    files = (
        os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
        os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"),
    )
    return any(Path(name).expanduser().is_file() for name in files)


def _last_part(text: str) -> str:
    """The SDK's message without its leading context ("When getting information for ...:")."""
    return text.split(": ", 1)[-1] if text.startswith("When ") else text
