#!/usr/bin/env bash
# Check a file against an expected SHA-256.
#
# usage: datasets/fetch/verify.sh FILE SHA256
#
# Exit status: 0 the file's SHA-256 equals SHA256 (64 hex digits, any case);
#              1 it does not;
#              2 usage error, unreadable FILE, or SHA256 not 64 hex digits.
# Prints OK or MISMATCH (with both sums) on stderr. The same check is used by
# fetch-model.sh and fetch-wikitext2.sh (function rotor_verify in lib.sh).
set -euo pipefail
ROTOR_PROG="verify.sh"
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

case "${1:-}" in
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
esac
if [ $# -ne 2 ]; then
  printf 'usage: %s FILE SHA256\n' "${0##*/}" >&2
  exit 2
fi
rc=0
rotor_verify "$1" "$2" || rc=$?
exit "$rc"
