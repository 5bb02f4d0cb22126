"""Names in a Maildir: folder directories (Maildir++ as Dovecot lays them out), unique file
names, sizes read back from names, and the per-user path template.

Pure functions of plain data; the files themselves are ``store.maildir``'s.
"""

from __future__ import annotations

import base64
import re

INBOX = "inbox"  # compared case-insensitively (RFC 3501 §5.1: INBOX is case-insensitive)

# Maildir++: a folder is a directory ".Name" beside cur/new/tmp, its hierarchy separated by
# "." (Dovecot's default maildir layout); our folder names separate levels with "/".
SEPARATOR = "/"

_SIZE = re.compile(r",S=(\d+)")


def folder_dir(name: str) -> str:
    """The directory of folder ``name`` inside a Maildir: "" for the Inbox (the Maildir
    itself), ".Processed Requests" for "Processed Requests", ".A.B" for "A/B"."""
    if name.strip().lower() == INBOX:
        return ""
    levels = [level for level in name.split(SEPARATOR) if level]
    if not levels or any(level in (".", "..") for level in levels):
        raise ValueError(f"not a usable folder name: {name!r}")
    return "." + ".".join(encode_mutf7(level) for level in levels)


def encode_mutf7(text: str) -> str:
    """IMAP's modified UTF-7 (RFC 3501 §5.1.3), as Dovecot stores names on disk: printable
    ASCII stands for itself ("&" as "&-"), other runs are "&" + modified BASE64 of UTF-16BE
    + "-"."""
    out: list[str] = []
    run: list[str] = []
    for char in text:
        if 0x20 <= ord(char) <= 0x7E:
            out.append(_shifted(run))
            run = []
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    out.append(_shifted(run))
    return "".join(out)


def _shifted(run: list[str]) -> str:
    if not run:
        return ""
    data = "".join(run).encode("utf-16-be")
    return "&" + base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",") + "-"


def unique_name(seconds: int, micros: int, pid: int, sequence: int, host: str,
                size: int) -> str:
    """A new message's file name, unique as the Maildir specification asks: time, then
    microseconds, process id and a per-process sequence, then the host; ``,S=`` carries the
    size (Dovecot's extension), so the store's size is read from names alone."""
    return f"{seconds}.M{micros}P{pid}Q{sequence}.{host_part(host)},S={size}"


def host_part(host: str) -> str:
    # The specification: "/" and ":" in the host name are written as \057 and \072 (":"
    # starts the flags of a file in cur/).
    return host.replace("/", r"\057").replace(":", r"\072") or "localhost"


def size_in_name(name: str) -> int | None:
    """The size a file name states (",S=1234"), or None when it states none."""
    match = _SIZE.search(name.split(":", 1)[0])
    return int(match.group(1)) if match else None


def expand_path(template: str, user: str, domain: str) -> str:
    """``maildir_path`` for one user: %u the user name, %d the domain, %% a percent sign.

    A user name that would leave its own directory ("a/b", "..") is refused: names come
    from the directory, the paths are the file system's.
    """
    for value in (user, domain):
        if "/" in value or value in (".", "..") or "\x00" in value:
            raise ValueError(f"{value!r} cannot be part of a Maildir path")
    if not user:
        raise ValueError("a Maildir path needs a user name")
    return re.sub(r"%([ud%])", lambda m: {"u": user, "d": domain, "%": "%"}[m.group(1)],
                  template)
