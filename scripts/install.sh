#!/usr/bin/env bash
# Create ./.venv (or $MAILBRIDGE_VENV) and install mailbridge into it.
# Usage: scripts/install.sh            the tool
#        scripts/install.sh --test     the tool (editable) and what the tests need
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

VENV="${MAILBRIDGE_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  # Debian's python3 needs python3-venv for this; other pythons (pyenv, python.org) have it.
  python3 -m venv "$VENV" 2>/dev/null || { rm -rf "$VENV"; apt_install python3-venv; python3 -m venv "$VENV"; }
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
if [ "${1:-}" = "--test" ]; then
  # Debian packages the suite needs (the tests start real servers from them) go here.
  APT_PACKAGES=(dovecot-imapd postgresql)
  if ! dpkg -s "${APT_PACKAGES[@]}" >/dev/null 2>&1; then
    # The tests start their own PostgreSQL cluster in a temp dir; Debian's package would also
    # create and start a system-wide one, which nothing here needs.
    if ! dpkg -s postgresql-common >/dev/null 2>&1; then
      apt_install postgresql-common
      SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
      $SUDO sed -i 's/^#\? *create_main_cluster *=.*/create_main_cluster = false/' \
        /etc/postgresql-common/createcluster.conf
    fi
    apt_install "${APT_PACKAGES[@]}"
  fi
  "$VENV/bin/python" -m pip install -q -e ".[test]"
else
  "$VENV/bin/python" -m pip install -q .
fi
echo "installed: $VENV/bin/mailbridge" >&2
