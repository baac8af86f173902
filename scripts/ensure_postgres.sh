#!/usr/bin/env bash
# Make sure PostgreSQL's server programs are there for the distributed grading tests
# (tests/test_distributed_grading.py starts a private server of its own with initdb and pg_ctl).
#
#   bash scripts/ensure_postgres.sh
#
# Uses /usr/lib/postgresql/*/bin (Debian, Ubuntu) or initdb and pg_ctl on PATH when they are there.
# Otherwise, as root with apt-get (Debian, Ubuntu, CI), installs Debian's `postgresql` (which also
# creates the `postgres` user the tests run the server as). Anywhere else it prints what to install
# and exits 0: the tests then skip, saying why (under CI, $CI set, they fail instead).
set -uo pipefail

have_postgres() {
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && return 0
  done
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1
}

if have_postgres; then
  exit 0
fi

# shellcheck source=scripts/apt_install.sh
source "$(dirname "$0")/apt_install.sh"
apt_install postgres have_postgres 'ls -d /usr/lib/postgresql/*/bin | tail -1' "distributed grading tests" \
  "the distributed grading tests will fail under CI and skip elsewhere" --no-install-recommends postgresql

echo "ensure_postgres: WARNING: no PostgreSQL server programs (initdb, pg_ctl) and cannot install them here" \
     "(needs root and apt-get)." >&2
echo "  Install them (Debian/Ubuntu: sudo apt-get install postgresql); until then the distributed grading" >&2
echo "  tests skip, saying why." >&2
exit 0
