#!/bin/sh
# Entrypoint of deploy/docker/Dockerfile.postgres: the official postgres image's interface,
# reduced to what Vigil's stack uses. First start (empty PGDATA): initdb with POSTGRES_USER as
# superuser and the password from POSTGRES_PASSWORD_FILE (never from the environment or a
# command line), POSTGRES_DB created; TCP clients need the password (scram-sha-256).
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
USER_=${POSTGRES_USER:-postgres}
DB=${POSTGRES_DB:-$USER_}
say() { echo "vigil-postgres: $*" >&2; }

if [ "$(id -u)" = 0 ]; then
    install -d -o postgres -g postgres -m 0700 "$PGDATA"
    install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        [ -n "${POSTGRES_PASSWORD_FILE:-}" ] && [ -r "$POSTGRES_PASSWORD_FILE" ] \
            || { say "error: POSTGRES_PASSWORD_FILE must name a readable file (a secret)"; exit 1; }
        umask 077
        install -o postgres -g postgres -m 0600 "$POSTGRES_PASSWORD_FILE" /tmp/pgpass.init
    fi
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    say "initialising $PGDATA (superuser $USER_, database $DB)"
    PW=/tmp/pgpass.init
    [ -s "$PW" ] || { say "error: no password (POSTGRES_PASSWORD_FILE)"; exit 1; }
    # the secret is one line; initdb reads the password from the first line of --pwfile
    initdb -D "$PGDATA" -U "$USER_" --pwfile="$PW" --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$PW"
    printf "host all all all scram-sha-256\n" >>"$PGDATA/pg_hba.conf"
    printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    if [ "$DB" != postgres ]; then
        psql -X -q -v ON_ERROR_STOP=1 -U "$USER_" -d postgres -c "CREATE DATABASE \"$DB\"" >/dev/null
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
if [ "${1:-}" = postgres ]; then
    shift
    exec postgres -D "$PGDATA" "$@"
fi
exec "$@"
