# shellcheck shell=bash
# Shared helpers for datasets/fetch/*.sh. Source it; do not run it.
#
#   rotor_sha256 FILE                 print the lowercase hex SHA-256 of FILE
#   rotor_verify FILE EXPECTED        0 = match, 1 = mismatch, 2 = bad arguments
#   rotor_manifest_get ENTRY FILE KEY print a value from datasets/manifest.toml
#   rotor_manifest_files ENTRY        print the `file` names of one entry
#   rotor_download URL OUT [SIZE]     resumable curl download to OUT
#
# Plain bash + coreutils + curl. No Python.

ROTOR_FETCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROTOR_DATASETS_DIR="$(cd "$ROTOR_FETCH_DIR/.." && pwd)"
ROTOR_MANIFEST="${ROTOR_MANIFEST:-$ROTOR_DATASETS_DIR/manifest.toml}"
# Where fetched files land unless --dest is given. Never inside the repository:
# the model files are far too large to be committed by accident.
ROTOR_CACHE="${ROTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rotor}"
# Hugging Face endpoint (a mirror may be set, as for huggingface_hub).
HF_ENDPOINT="${HF_ENDPOINT:-https://huggingface.co}"
HF_ENDPOINT="${HF_ENDPOINT%/}"

rotor_die() { printf '%s: error: %s\n' "${ROTOR_PROG:-rotor}" "$*" >&2; exit 1; }
rotor_warn() { printf '%s: warning: %s\n' "${ROTOR_PROG:-rotor}" "$*" >&2; }
rotor_info() { printf '%s: %s\n' "${ROTOR_PROG:-rotor}" "$*" >&2; }

rotor_sha256() {
  local file="$1" out
  if command -v sha256sum >/dev/null 2>&1; then
    out="$(sha256sum -b -- "$file")" || return 2
  elif command -v shasum >/dev/null 2>&1; then
    out="$(shasum -a 256 -b -- "$file")" || return 2
  elif command -v openssl >/dev/null 2>&1; then
    out="$(openssl dgst -sha256 -r "$file")" || return 2
  else
    printf 'no sha256sum, shasum or openssl found\n' >&2
    return 2
  fi
  out="${out%% *}"
  out="${out#\\}"   # sha256sum prefixes a backslash when the name needs escaping
  printf '%s\n' "$out" | tr 'A-F' 'a-f'
}

# rotor_verify FILE EXPECTED
# Exit status: 0 the SHA-256 of FILE equals EXPECTED (64 hex digits, any case);
# 1 it does not; 2 FILE is missing/unreadable or EXPECTED is not 64 hex digits.
rotor_verify() {
  if [ $# -ne 2 ]; then
    printf 'usage: rotor_verify FILE SHA256\n' >&2
    return 2
  fi
  local file="$1" expected actual
  expected="$(printf '%s' "$2" | tr 'A-F' 'a-f')"
  case "$expected" in
    *[!0-9a-f]*|'') printf 'not a SHA-256 (want 64 hex digits): %s\n' "$2" >&2; return 2 ;;
  esac
  if [ "${#expected}" -ne 64 ]; then
    printf 'not a SHA-256 (want 64 hex digits, got %d): %s\n' "${#expected}" "$2" >&2
    return 2
  fi
  if [ ! -f "$file" ] || [ ! -r "$file" ]; then
    printf 'no readable file: %s\n' "$file" >&2
    return 2
  fi
  actual="$(rotor_sha256 "$file")" || return 2
  if [ "$actual" = "$expected" ]; then
    printf 'OK       %s  %s\n' "$actual" "$file" >&2
    return 0
  fi
  printf 'MISMATCH %s\n  expected %s\n  actual   %s\n' "$file" "$expected" "$actual" >&2
  return 1
}

# rotor_manifest_get ENTRY FILE KEY
# ENTRY is an entry's `name`; FILE is a `file` of that entry, or "" for a key of
# the entry itself. Prints the value with quotes removed (nothing when absent).
# The manifest keeps one `key = value` per line and writes `file` first in each
# [[entry.files]] table, which is all this reader relies on.
rotor_manifest_get() {
  [ -f "$ROTOR_MANIFEST" ] || { printf 'manifest not found: %s\n' "$ROTOR_MANIFEST" >&2; return 2; }
  awk -v want_entry="$1" -v want_file="$2" -v want_key="$3" '
    function val(s) {
      sub(/^[^=]*=[ \t]*/, "", s)
      if (s ~ /^"/) { s = substr(s, 2); sub(/".*$/, "", s) }
      else { sub(/[ \t]*#.*$/, "", s); sub(/[ \t]+$/, "", s) }
      return s
    }
    function key(s) { sub(/^[ \t]*/, "", s); sub(/[ \t]*=.*$/, "", s); return s }
    /^[ \t]*#/ || /^[ \t]*$/ { next }
    /^[ \t]*\[\[entry\]\][ \t]*$/ { entry = ""; file = ""; in_files = 0; next }
    /^[ \t]*\[\[entry\.files\]\][ \t]*$/ { file = ""; in_files = 1; next }
    /^[ \t]*\[/ { entry = ""; file = ""; in_files = 0; next }
    /=/ {
      k = key($0)
      if (!in_files && k == "name") { entry = val($0); next }
      if (in_files && k == "file") { file = val($0); next }
      if (entry != want_entry || k != want_key) next
      if (want_file == "" && !in_files) { print val($0); exit }
      if (want_file != "" && in_files && file == want_file) { print val($0); exit }
    }
  ' "$ROTOR_MANIFEST"
}

# rotor_manifest_files ENTRY: the `file` names listed for ENTRY, one per line.
rotor_manifest_files() {
  [ -f "$ROTOR_MANIFEST" ] || { printf 'manifest not found: %s\n' "$ROTOR_MANIFEST" >&2; return 2; }
  awk -v want_entry="$1" '
    function val(s) { sub(/^[^=]*=[ \t]*"/, "", s); sub(/".*$/, "", s); return s }
    /^[ \t]*#/ { next }
    /^[ \t]*\[\[entry\]\][ \t]*$/ { entry = ""; in_files = 0; next }
    /^[ \t]*\[\[entry\.files\]\][ \t]*$/ { in_files = 1; next }
    /^[ \t]*\[/ { entry = ""; in_files = 0; next }
    !in_files && /^[ \t]*name[ \t]*=/ { entry = val($0); next }
    in_files && entry == want_entry && /^[ \t]*file[ \t]*=/ { print val($0) }
  ' "$ROTOR_MANIFEST"
}

rotor_file_size() {
  # GNU stat, then BSD stat, then wc.
  stat -c %s -- "$1" 2>/dev/null || stat -f %z -- "$1" 2>/dev/null || wc -c < "$1" | tr -d ' '
}

# rotor_download URL OUT [EXPECTED_SIZE]
# Downloads URL into OUT.part with `curl -L -C -` (so an interrupted download
# resumes where it stopped), then renames it to OUT. Resuming needs the
# expected size (to tell a finished part file from a partial one); without a
# size the part file is discarded and the (small) file fetched whole. Returns curl's status on
# failure and leaves OUT.part in place for the next try. HF_TOKEN, when set, is
# sent as a bearer token to huggingface.co only (curl drops it on redirects to
# other hosts).
rotor_download() {
  local url="$1" out="$2" size="${3:-}" part have rc
  part="$out.part"
  command -v curl >/dev/null 2>&1 || { printf 'curl is required (apt-get install curl)\n' >&2; return 127; }
  if [ -z "$size" ]; then
    # Unknown size: small file, so no resume; start from scratch.
    rm -f -- "$part"
  elif [ -f "$part" ]; then
    have="$(rotor_file_size "$part")"
    if [ "$have" = "$size" ]; then
      mv -f -- "$part" "$out"
      return 0
    fi
    if [ "$have" -gt "$size" ] 2>/dev/null; then
      printf '%s is larger than expected (%s > %s bytes); starting over\n' "$part" "$have" "$size" >&2
      rm -f -- "$part"
    fi
  fi
  local -a auth=()
  case "$url" in
    https://huggingface.co/*) [ -z "${HF_TOKEN:-}" ] || auth=(-H "Authorization: Bearer $HF_TOKEN") ;;
  esac
  rc=0
  curl -fL --retry 5 --retry-delay 5 --connect-timeout 30 -C - \
       ${auth[@]+"${auth[@]}"} -o "$part" -- "$url" || rc=$?
  if [ "$rc" -ne 0 ]; then
    # 416 (curl exit 22) or 33 on a resume usually means the part file is
    # already complete; accept it only when its size proves that.
    if [ -n "$size" ] && [ -f "$part" ] && [ "$(rotor_file_size "$part")" = "$size" ]; then
      mv -f -- "$part" "$out"
      return 0
    fi
    # Without a size there is nothing to resume later.
    [ -n "$size" ] || rm -f -- "$part"
    return "$rc"
  fi
  mv -f -- "$part" "$out"
}
