"""vigil.fileio.read_private_file: one check of secret files (PostgreSQL DSN files, forwarding
secrets), refusing what its group or others could read, naming the file."""

from __future__ import annotations

import os

import pytest

from vigil.fileio import read_private_file


class Refused(ValueError):
    pass


def test_a_private_file_is_read_whole(tmp_path):
    p = tmp_path / "s.secret"
    p.write_bytes(b" hunter2\n")
    p.chmod(0o600)
    assert read_private_file(p, "secret file", Refused) == b" hunter2\n"  # content is the caller's
    p.chmod(0o400)
    assert read_private_file(p, "secret file", Refused) == b" hunter2\n"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o660])
def test_group_or_others_bits_refuse_it_with_the_mode_and_the_fix(tmp_path, mode):
    p = tmp_path / "s.secret"
    p.write_bytes(b"x")
    p.chmod(mode)
    with pytest.raises(Refused) as info:
        read_private_file(p, "DSN file", Refused, why="it holds a password")
    assert str(info.value) == f"DSN file {p} has mode {mode:04o}: it holds a password (chmod 600 {p})"


def test_missing_and_not_regular_files_are_named(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(Refused, match=f"^secret file {missing}: No such file or directory$"):
        read_private_file(missing, "secret file", Refused)
    folder = tmp_path / "dir"
    folder.mkdir(mode=0o700)
    with pytest.raises(Refused, match=f"^secret file {folder} is not a regular file$"):
        read_private_file(folder, "secret file", Refused)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)  # would block a reader: refused before it is opened
    with pytest.raises(Refused, match="is not a regular file"):
        read_private_file(fifo, "secret file", Refused)
