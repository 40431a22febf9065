# Sourced by install-kind.sh and install-kubectl.sh: a release binary downloaded with its
# checksum file, each failure said in one line (no answer, or an HTTP status) instead of
# curl's bare exit status. The caller sets: tool, version, hint.
# RELEASE_UNAME_S and RELEASE_UNAME_M stand in for `uname -s` and `uname -m` (tests only: the
# platform logic of every platform runs against a local download server).
# shellcheck shell=bash disable=SC2154

release_os() {
  echo "${RELEASE_UNAME_S:-$(uname -s)}" | tr '[:upper:]' '[:lower:]'
}

release_arch() {
  local machine="${RELEASE_UNAME_M:-$(uname -m)}"
  case "$machine" in
    x86_64 | amd64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) echo "no $tool release for $machine; $hint" >&2; return 1 ;;
  esac
}

# download URL FILE: FILE, or exit 1 saying why.
download() {
  local code
  code="$(curl -sSL --retry 3 -o "$2" -w '%{http_code}' "$1" || true)"
  if [ "${code:-000}" = 000 ]; then
    echo "$tool $version: no answer from $1 (offline, or a proxy in the way?)" >&2
    exit 1
  elif [ "$code" != 200 ]; then
    echo "$tool $version: $1 answered HTTP $code: is $version a published release?" >&2
    echo "$hint" >&2
    exit 1
  fi
}

# check_sha256 DIR LINE: LINE ("<digest>  <file>") holds for the file in DIR.
check_sha256() {
  if command -v sha256sum >/dev/null; then
    (cd "$1" && echo "$2" | sha256sum -c)
  else
    (cd "$1" && echo "$2" | shasum -a 256 -c)
  fi
}
