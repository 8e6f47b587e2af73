"""Where a command's database comes from (vigil/postgres.py): never a password on the command line."""

from __future__ import annotations

import argparse

import pytest

from vigil.postgres import DsnError, add_db_options, db_target, read_dsn_file, redact_dsn, resolve_dsn

SECRET_DSN = "host=db.city port=5432 user=vigil dbname=vigil password=s3cret"


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_db_options(p)
    return p.parse_args(list(argv))


def _dsn_file(tmp_path, text: str, mode: int = 0o600):
    f = tmp_path / "pg.dsn"
    f.write_text(text)
    f.chmod(mode)
    return f


def test_a_password_on_the_command_line_is_refused_and_not_echoed():
    with pytest.raises(DsnError, match="holds a password") as err:
        resolve_dsn(SECRET_DSN, env={})
    assert "s3cret" not in str(err.value)
    with pytest.raises(DsnError, match="holds a password"):
        resolve_dsn("postgresql://vigil:s3cret@db.city/vigil", env={})
    # without a password (libpq reads it from PGPASSFILE / ~/.pgpass / PGPASSWORD): as given
    assert resolve_dsn("host=db.city user=vigil dbname=vigil", env={}) == "host=db.city user=vigil dbname=vigil"


def test_dsn_file_must_be_private_and_holds_the_password(tmp_path):
    f = _dsn_file(tmp_path, "# the city's database\n\n" + SECRET_DSN + "\n")
    assert read_dsn_file(f) == SECRET_DSN
    assert resolve_dsn(dsn_file=f, env={}) == SECRET_DSN
    f.chmod(0o640)
    with pytest.raises(DsnError, match=r"has mode 0640: .*chmod 600"):
        read_dsn_file(f)
    with pytest.raises(DsnError, match="No such file"):
        read_dsn_file(tmp_path / "missing.dsn")
    with pytest.raises(DsnError, match="is empty"):
        read_dsn_file(_dsn_file(tmp_path, "# nothing\n"))
    with pytest.raises(DsnError, match="not a regular file"):
        read_dsn_file(tmp_path)


def test_environment_is_used_only_without_options(tmp_path):
    f = _dsn_file(tmp_path, SECRET_DSN)
    assert resolve_dsn(env={"VIGIL_DSN_FILE": str(f), "VIGIL_DSN": "host=other"}) == SECRET_DSN
    assert resolve_dsn(env={"VIGIL_DSN": SECRET_DSN}) == SECRET_DSN  # the environment is private
    assert resolve_dsn(env={}) is None
    assert db_target(_args("--db", "e.db"), env={"VIGIL_DSN": "host=x"}) == ("e.db", None)
    assert db_target(_args(), env={"VIGIL_DSN": "host=x"}) == (None, "host=x")


def test_exactly_one_database(tmp_path):
    f = _dsn_file(tmp_path, SECRET_DSN)
    assert db_target(_args("--dsn-file", str(f)), env={}) == (None, SECRET_DSN)
    assert db_target(_args("--dsn", "host=x user=vigil"), env={}) == (None, "host=x user=vigil")
    for argv in ((), ("--db", "e.db", "--dsn", "host=x")):
        with pytest.raises(DsnError, match="exactly one of --db PATH"):
            db_target(_args(*argv), env={})
    with pytest.raises(DsnError, match="not both"):
        db_target(_args("--dsn", "host=x", "--dsn-file", str(f)), env={})


def test_redact_dsn():
    assert "s3cret" not in redact_dsn(SECRET_DSN) and "password=***" in redact_dsn(SECRET_DSN)
    assert redact_dsn("not a dsn ===") == "<dsn>"
