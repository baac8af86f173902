# Sourced by scripts/ensure_chromium.sh and scripts/ensure_postgres.sh: their one way to install Debian packages.
#
#   apt_install NAME HAVE_FN SHOW_CMD PURPOSE CONSEQUENCE PACKAGE_ARGS...
#
# As root with apt-get: installs PACKAGE_ARGS (log in /tmp/ensure_NAME.log), then exits 0, printing SHOW_CMD's
# output when HAVE_FN now finds the program, else a warning ending in CONSEQUENCE and the log's tail (the tests
# then skip, or fail under CI, saying why). Without root or apt-get it returns 1: the caller says what to install.
apt_install() {
  local name=$1 have=$2 show=$3 purpose=$4 consequence=$5
  shift 5
  local log="/tmp/ensure_${name}.log"
  [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 || return 1
  local pkgs=() a
  for a in "$@"; do [[ $a == -* ]] || pkgs+=("$a"); done
  echo "ensure_${name}: installing Debian's ${pkgs[*]} with apt-get ($purpose)"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq >"$log" 2>&1 && apt-get install -y -qq "$@" >>"$log" 2>&1; then
    "$have" && { echo "ensure_${name}: $(eval "$show")"; exit 0; }
  fi
  echo "ensure_${name}: WARNING: apt-get could not install ${pkgs[*]} (see $log); $consequence" >&2
  tail -5 "$log" >&2 || true
  exit 0
}
