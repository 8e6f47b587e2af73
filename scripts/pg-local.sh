#!/usr/bin/env bash
# A local PostgreSQL for Vigil in one command, idempotently:
#   - installs Debian's postgresql if it is missing (apt-get; needs root);
#   - uses the default cluster (creates `main` if there is none; with --port P, the cluster on
#     port P, created as `vigil` if there is none), started with systemctl where systemd runs,
#     else with pg_ctlcluster; or, with --cluster-dir DIR, a private cluster in DIR (initdb and
#     pg_ctl as user postgres when run as root), which touches no system cluster;
#   - a role `vigil` with a random password and a database `vigil` owned by it;
#   - writes the DSN, password included, to a file only its owner can read (mode 0600):
#     default /etc/vigil/pg.dsn as root, else ~/.config/vigil/pg.dsn.
# A second run keeps the password already in the DSN file (the same DSN keeps working).
#
#   sudo bash scripts/pg-local.sh --owner vigil          # the aggregator's DSN file /etc/vigil/pg.dsn
#   bash scripts/pg-local.sh --cluster-dir /var/tmp/vigil-pg --port 55432 --dsn-file ./pg.dsn
#
# Options:
#   --dsn-file PATH     where to write the DSN (default above)
#   --owner USER        owner of the DSN file (default: the invoking user, $SUDO_USER under sudo)
#   --port P            the server's TCP port (default 5432, or the existing cluster's)
#   --cluster-dir DIR   a private cluster in DIR instead of the system's (created and started)
#   --stop              with --cluster-dir: stop that private cluster and exit
#   --role NAME, --db NAME   (default vigil, vigil)
#   --new-password      replace the password even if the DSN file holds a working one
set -euo pipefail

DSN_FILE=
OWNER=
PORT=
CLUSTER_DIR=
ROLE=vigil
DB=vigil
STOP=0
NEW_PASSWORD=0
HOST=127.0.0.1

say() { printf '[pg-local] %s\n' "$*" >&2; }
die() { printf 'pg-local.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dsn-file) DSN_FILE=${2:?--dsn-file needs a path}; shift 2 ;;
        --owner) OWNER=${2:?--owner needs a user}; shift 2 ;;
        --port) PORT=${2:?--port needs a number}; shift 2 ;;
        --cluster-dir) CLUSTER_DIR=${2:?--cluster-dir needs a folder}; shift 2 ;;
        --role) ROLE=${2:?}; shift 2 ;;
        --db) DB=${2:?}; shift 2 ;;
        --stop) STOP=1; shift ;;
        --new-password) NEW_PASSWORD=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ -z "$PORT" || "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number, not '$PORT'"
[[ "$ROLE" =~ ^[a-z_][a-z0-9_]*$ && "$DB" =~ ^[a-z_][a-z0-9_]*$ ]] || die "--role and --db must be plain lower-case identifiers"

IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1
as_root() { if [ "$IS_ROOT" = 1 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "needs root for: $*"; fi; }
# run as the PostgreSQL superuser's OS account
# (a private cluster made by a non-root user is that user's: no sudo then)
as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"
    elif [ "$IS_ROOT" = 1 ]; then runuser -u postgres -- "$@"
    elif [ -n "$CLUSTER_DIR" ]; then "$@"
    else sudo -u postgres -- "$@"; fi
}

# --- where the DSN file goes and who owns it ---------------------------------------------
if [ -z "$OWNER" ]; then
    if [ "$IS_ROOT" = 1 ] && [ -n "${SUDO_USER:-}" ]; then OWNER=$SUDO_USER; else OWNER=$(id -un); fi
fi
id -u "$OWNER" >/dev/null 2>&1 || die "--owner $OWNER: no such user"
if [ -z "$DSN_FILE" ]; then
    if [ "$IS_ROOT" = 1 ]; then DSN_FILE=/etc/vigil/pg.dsn; else DSN_FILE=$HOME/.config/vigil/pg.dsn; fi
fi

# --- the server binaries -------------------------------------------------------------------
bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(bindir)" ] || [ ! -x "$(bindir)/initdb" ]; then
    say "installing Debian's postgresql (apt-get)"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi
BIN=$(bindir)
[ -x "$BIN/pg_ctl" ] || die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin after installing postgresql"
VERSION=$(basename "$(dirname "$BIN")")

# psql as the superuser: SQL on standard input (never a password on a command line)
SOCKDIR=
psql_super() {
    if [ -n "$SOCKDIR" ]; then as_postgres "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKDIR" -p "$PORT" -U postgres -d postgres "$@"
    else as_postgres "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres "$@"; fi
}

if [ -n "$CLUSTER_DIR" ]; then
    # --- a private cluster in CLUSTER_DIR --------------------------------------------------
    PORT=${PORT:-5432}
    CLUSTER_DIR=$(realpath -m "$CLUSTER_DIR")
    SOCKDIR=$CLUSTER_DIR
    if [ "$STOP" = 1 ]; then
        if [ -f "$CLUSTER_DIR/PG_VERSION" ]; then
            as_postgres "$BIN/pg_ctl" -D "$CLUSTER_DIR" -m fast -w stop >/dev/null 2>&1 || true
            say "stopped the cluster in $CLUSTER_DIR"
        fi
        exit 0
    fi
    if [ ! -f "$CLUSTER_DIR/PG_VERSION" ]; then
        say "creating a private cluster in $CLUSTER_DIR (port $PORT, loopback only)"
        if [ "$IS_ROOT" = 1 ]; then
            id -u postgres >/dev/null 2>&1 || die "no 'postgres' user to run the server as (it refuses root)"
            install -d -o postgres -g postgres -m 0700 "$CLUSTER_DIR"
            runuser -u postgres -- test -w "$CLUSTER_DIR" \
                || die "user postgres cannot write $CLUSTER_DIR (a parent folder is closed to it: chmod o+x the parents)"
        else
            install -d -m 0700 "$CLUSTER_DIR"
        fi
        as_postgres "$BIN/initdb" -D "$CLUSTER_DIR" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
            -E UTF8 --locale=C.UTF-8 >"$CLUSTER_DIR.initdb.log" 2>&1 || {
            cat "$CLUSTER_DIR.initdb.log" >&2
            die "initdb failed (above)"
        }
        rm -f "$CLUSTER_DIR.initdb.log"
        # non-root: the peer-authenticated superuser is this OS user
        [ "$IS_ROOT" = 1 ] || sed -i "s/^local\( \+\)all\( \+\)all\( \+\)peer/local all all peer map=self/" "$CLUSTER_DIR/pg_hba.conf"
        [ "$IS_ROOT" = 1 ] || printf 'self %s postgres\nself %s %s\n' "$(id -un)" "$(id -un)" "$(id -un)" >>"$CLUSTER_DIR/pg_ident.conf"
        cat >>"$CLUSTER_DIR/postgresql.conf" <<EOF
# scripts/pg-local.sh
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '$CLUSTER_DIR'
EOF
    else
        # the port given now wins over the one it was created with
        grep -q "^port = $PORT\$" "$CLUSTER_DIR/postgresql.conf" || {
            as_postgres sed -i "s/^port = [0-9]*\$/port = $PORT/" "$CLUSTER_DIR/postgresql.conf"
        }
    fi
    if ! as_postgres "$BIN/pg_ctl" -D "$CLUSTER_DIR" status >/dev/null 2>&1; then
        say "starting the cluster in $CLUSTER_DIR"
        as_postgres "$BIN/pg_ctl" -D "$CLUSTER_DIR" -l "$CLUSTER_DIR/server.log" -w -t 60 start >/dev/null \
            || { tail -n 20 "$CLUSTER_DIR/server.log" >&2 || true; die "the server did not start (log above)"; }
    fi
else
    # --- the system's clusters (pg_lsclusters: version name port status ...) ------------------
    [ "$STOP" = 0 ] || die "--stop goes with --cluster-dir"
    command -v pg_lsclusters >/dev/null || die "pg_lsclusters missing (Debian package postgresql-common)"
    find_cluster() { # VERSION NAME PORT STATUS of the wanted cluster, or nothing
        if [ -n "$PORT" ]; then pg_lsclusters -h | awk -v p="$PORT" '$3 == p {print $1, $2, $3, $4; exit}'
        else pg_lsclusters -h | awk '$2 == "main" {print $1, $2, $3, $4; exit}'
             [ -n "$(pg_lsclusters -h | awk '$2 == "main"')" ] || pg_lsclusters -h | awk 'NR == 1 {print $1, $2, $3, $4}'; fi
    }
    read -r CVER CNAME CPORT CSTATUS < <(find_cluster || true) || true
    if [ -z "${CNAME:-}" ]; then
        CVER=$VERSION
        CNAME=main
        [ -z "$PORT" ] || [ "$PORT" = 5432 ] || [ -z "$(pg_lsclusters -h | awk '$2 == "main"')" ] || CNAME=vigil
        say "creating cluster $CVER/$CNAME on port ${PORT:-5432} (loopback only)"
        as_root pg_createcluster "$CVER" "$CNAME" --port "${PORT:-5432}" -- --auth-local=peer --auth-host=scram-sha-256 >/dev/null
        printf "# scripts/pg-local.sh\nlisten_addresses = 'localhost'\n" \
            | as_root tee "/etc/postgresql/$CVER/$CNAME/conf.d/90-vigil-loopback.conf" >/dev/null
        read -r CVER CNAME CPORT CSTATUS < <(pg_lsclusters -h | awk -v n="$CNAME" -v v="$CVER" '$1 == v && $2 == n {print $1, $2, $3, $4}')
    fi
    PORT=$CPORT
    if [ "$CSTATUS" != online ]; then
        say "starting cluster $CVER/$CNAME (port $PORT)"
        if [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; then
            as_root systemctl enable --now "postgresql@$CVER-$CNAME"
        else # no systemd as PID 1 (a container, a chroot, some VMs): Debian's wrapper
            as_root pg_ctlcluster "$CVER" "$CNAME" start
        fi
    fi
    LISTEN=$(psql_super -At -c 'SHOW listen_addresses')
    case "$LISTEN" in
        localhost|127.0.0.1|::1|'127.0.0.1,::1'|'localhost,127.0.0.1') ;;
        *) say "WARNING: cluster $CVER/$CNAME listens on '$LISTEN', not only on loopback (left as it is)" ;;
    esac
fi

# --- role, password, database --------------------------------------------------------------
dsn_password() { # the password in an existing DSN file, if it is ours
    [ -f "$DSN_FILE" ] || return 0
    sed -n "s#^postgresql://$ROLE:\([0-9a-f]\{16,\}\)@.*\$#\1#p" "$DSN_FILE" | head -n 1
}
PASSWORD=
[ "$NEW_PASSWORD" = 1 ] || PASSWORD=$(dsn_password || true)
if [ -z "$PASSWORD" ]; then
    PASSWORD=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
    say "new random password for role $ROLE"
else
    say "keeping the password already in $DSN_FILE"
fi
# SQL on stdin; the password is set with psql's variables, never on a command line
psql_super >/dev/null <<SQL
\set pw '$PASSWORD'
SELECT format('CREATE ROLE %I LOGIN', '$ROLE') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ROLE') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', '$ROLE', :'pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', '$DB', '$ROLE') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB') \gexec
SQL

# --- the DSN file (written under a private umask, then handed to its owner) ----------------
DSN="postgresql://$ROLE:$PASSWORD@$HOST:$PORT/$DB"
DIR=$(dirname "$DSN_FILE")
if [ ! -d "$DIR" ]; then
    if [ "$IS_ROOT" = 1 ] && [ "$DIR" = /etc/vigil ]; then install -d -m 0755 "$DIR"; else install -d -m 0700 "$DIR"; fi
fi
TMP=$(umask 077 && mktemp "$DSN_FILE.XXXXXX")
printf '# written by scripts/pg-local.sh: PostgreSQL %s on %s:%s (keep it mode 0600)\n%s\n' "$VERSION" "$HOST" "$PORT" "$DSN" >"$TMP"
chmod 0600 "$TMP"
if [ "$(id -un)" != "$OWNER" ]; then
    as_root chown "$OWNER:" "$TMP"
fi
mv -f "$TMP" "$DSN_FILE"

# --- the DSN must work (the password goes in psql's environment, private to this process) ------
PGPASSWORD=$PASSWORD PGCONNECT_TIMEOUT=10 "$BIN/psql" -X -q -At -w \
    "host=$HOST port=$PORT dbname=$DB user=$ROLE" -c 'SELECT 1' >/dev/null </dev/null \
    || die "the new DSN does not connect to $HOST:$PORT as $ROLE (see the server's log)"
say "role $ROLE, database $DB on $HOST:$PORT; DSN (password included) in $DSN_FILE (mode 0600, owner $OWNER)"
cat >&2 <<EOF
Use it with:
  vigil aggregator --dsn-file $DSN_FILE --ingest tcp://0.0.0.0:5555 --stream tcp://0.0.0.0:5556 --keys /etc/vigil/keys
  vigil events count --dsn-file $DSN_FILE
or set VIGIL_DSN_FILE=$DSN_FILE in the service's environment (the aggregator unit does).
EOF
