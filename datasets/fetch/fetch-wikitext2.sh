#!/usr/bin/env bash
# Fetch the WikiText-2 (raw, v1) test split, wiki.test.raw, and verify it.
#
# usage: datasets/fetch/fetch-wikitext2.sh [--dest DIR] [--all-splits]
#                                          [--zip FILE] [--keep-zip] [--dry-run]
#
#   --dest DIR     directory for wiki.test.raw (created if needed); default
#                  $ROTOR_CACHE/wikitext-2-raw, with ROTOR_CACHE defaulting to
#                  ${XDG_CACHE_HOME:-~/.cache}/rotor
#   --all-splits   also extract wiki.train.raw and wiki.valid.raw (covered by
#                  the archive's checksum; no separate sums are recorded)
#   --zip FILE     use an already downloaded wikitext-2-raw-v1.zip instead of
#                  downloading (it is verified all the same)
#   --keep-zip     keep the archive in DIR after extraction
#   --dry-run      print the sources and the target, download nothing
#
# The archive is the one llama.cpp's scripts/get-wikitext-2.sh uses. Sources,
# tried in this order (all serve the same bytes, checked by sha256):
#   $HF_ENDPOINT/datasets/ggml-org/ci/resolve/main/wikitext-2-raw-v1.zip
#   https://wikitext.smerity.com/wikitext-2-raw-v1.zip
#   https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-raw-v1.zip
# (ROTOR_WIKITEXT_URLS, space-separated, replaces this list.)
# The archive and wiki.test.raw are verified against datasets/manifest.toml.
# Extraction uses unzip, else bsdtar, else python3 (whichever exists).
# Licence: CC BY-SA 3.0 (text from Wikipedia); do not commit the file.
#
# When it is done it prints the line to use it with rotor:
#   export ROTOR_WIKITEXT=<dir>/wiki.test.raw
set -euo pipefail
ROTOR_PROG="fetch-wikitext2.sh"
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

ENTRY="wikitext-2-raw-v1"
ZIP_NAME="wikitext-2-raw-v1.zip"
MEMBER_DIR="wikitext-2-raw"
DEST=""
ALL=0
LOCAL_ZIP=""
KEEP_ZIP=0
DRY_RUN=0

need_arg() { [ "$2" -ge 2 ] || rotor_die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dest) need_arg "$1" $#; DEST="$2"; shift 2 ;;
    --dest=*) DEST="${1#*=}"; shift ;;
    --all-splits) ALL=1; shift ;;
    --zip) need_arg "$1" $#; LOCAL_ZIP="$2"; shift 2 ;;
    --zip=*) LOCAL_ZIP="${1#*=}"; shift ;;
    --keep-zip) KEEP_ZIP=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) rotor_die "unknown argument: $1 (see --help)" ;;
  esac
done

DEST_REL="$(rotor_manifest_get "$ENTRY" "" dest)"
ZIP_SHA="$(rotor_manifest_get "$ENTRY" "$ZIP_NAME" sha256)"
ZIP_SIZE="$(rotor_manifest_get "$ENTRY" "$ZIP_NAME" size_bytes)"
TEST_SHA="$(rotor_manifest_get "$ENTRY" wiki.test.raw sha256)"
if [ -z "$DEST_REL" ] || [ -z "$ZIP_SHA" ] || [ -z "$TEST_SHA" ]; then
  rotor_die "entry '$ENTRY' is incomplete in $ROTOR_MANIFEST (dest, sha256 of $ZIP_NAME and wiki.test.raw)"
fi
[ "$ZIP_SIZE" != "0" ] || ZIP_SIZE=""
DEST="${DEST:-$ROTOR_CACHE/$DEST_REL}"
TEST_OUT="$DEST/wiki.test.raw"

if [ -n "${ROTOR_WIKITEXT_URLS:-}" ]; then
  # Space-separated override of the source list (used by selftest.sh).
  read -r -a URLS <<< "$ROTOR_WIKITEXT_URLS"
else
  URLS=(
    "$HF_ENDPOINT/datasets/ggml-org/ci/resolve/main/$ZIP_NAME"
    "https://wikitext.smerity.com/$ZIP_NAME"
    "https://s3.amazonaws.com/research.metamind.io/wikitext/$ZIP_NAME"
  )
fi

if [ "$DRY_RUN" = 1 ]; then
  if [ -n "$LOCAL_ZIP" ]; then
    printf 'archive: %s (local)\n' "$LOCAL_ZIP"
  else
    printf 'source:  %s\n' "${URLS[@]}"
  fi
  printf 'archive sha256 %s, %s bytes\n' "$ZIP_SHA" "${ZIP_SIZE:-unknown}"
  printf 'target:  %s (sha256 %s)\n' "$TEST_OUT" "$TEST_SHA"
  exit 0
fi

# Already there and verified (and nothing else asked for): done.
if [ "$ALL" = 0 ] && [ -f "$TEST_OUT" ] && rotor_verify "$TEST_OUT" "$TEST_SHA" 2>/dev/null; then
  rotor_info "$TEST_OUT present and verified"
  printf 'export ROTOR_WIKITEXT=%q\n' "$TEST_OUT"
  exit 0
fi

mkdir -p -- "$DEST" || rotor_die "cannot create $DEST"
[ -w "$DEST" ] || rotor_die "cannot write to $DEST"

# 1. Get the archive and verify it.
if [ -n "$LOCAL_ZIP" ]; then
  [ -f "$LOCAL_ZIP" ] || rotor_die "--zip: no such file: $LOCAL_ZIP"
  ZIP="$LOCAL_ZIP"
  rotor_verify "$ZIP" "$ZIP_SHA" || rotor_die "$ZIP is not the expected $ZIP_NAME"
else
  ZIP="$DEST/$ZIP_NAME"
  if [ -f "$ZIP" ] && rotor_verify "$ZIP" "$ZIP_SHA" 2>/dev/null; then
    rotor_info "$ZIP present and verified"
  else
    rm -f -- "$ZIP"
    ok=0
    for url in "${URLS[@]}"; do
      rotor_info "downloading $url"
      if rotor_download "$url" "$ZIP" "$ZIP_SIZE"; then
        if rotor_verify "$ZIP" "$ZIP_SHA"; then ok=1; break; fi
        rotor_warn "checksum mismatch for the archive from $url; trying the next source"
        rm -f -- "$ZIP" "$ZIP.part"
      else
        rotor_warn "download failed from $url; trying the next source"
        # A partial file from one host must not be resumed from another.
        rm -f -- "$ZIP.part"
      fi
    done
    [ "$ok" = 1 ] || rotor_die "could not download a verified $ZIP_NAME from any source (network? proxy?). Download it by hand and pass --zip FILE."
  fi
fi

# 2. Extract into a temporary directory next to the target, then move.
MEMBERS=("$MEMBER_DIR/wiki.test.raw")
[ "$ALL" = 0 ] || MEMBERS+=("$MEMBER_DIR/wiki.train.raw" "$MEMBER_DIR/wiki.valid.raw")
TMP="$(mktemp -d "$DEST/.extract.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
if command -v unzip >/dev/null 2>&1; then
  unzip -q -o "$ZIP" "${MEMBERS[@]}" -d "$TMP" || rotor_die "unzip failed on $ZIP"
elif command -v bsdtar >/dev/null 2>&1; then
  bsdtar -xf "$ZIP" -C "$TMP" "${MEMBERS[@]}" || rotor_die "bsdtar failed on $ZIP"
elif command -v python3 >/dev/null 2>&1; then
  python3 -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for m in sys.argv[3:]:
    z.extract(m, sys.argv[2])' "$ZIP" "$TMP" "${MEMBERS[@]}" || rotor_die "python3 zipfile failed on $ZIP"
else
  rotor_die "need unzip (apt-get install unzip), bsdtar or python3 to extract $ZIP"
fi

for m in "${MEMBERS[@]}"; do
  [ -f "$TMP/$m" ] || rotor_die "$m not found in $ZIP"
done
rotor_verify "$TMP/$MEMBER_DIR/wiki.test.raw" "$TEST_SHA" ||
  rotor_die "wiki.test.raw extracted from $ZIP does not match the recorded sha256"
for m in "${MEMBERS[@]}"; do
  mv -f -- "$TMP/$m" "$DEST/${m##*/}"
done

if [ "$KEEP_ZIP" = 0 ] && [ -z "$LOCAL_ZIP" ]; then
  rm -f -- "$ZIP"
fi
rotor_info "done: $TEST_OUT"
printf 'export ROTOR_WIKITEXT=%q\n' "$TEST_OUT"
