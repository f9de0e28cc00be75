#!/usr/bin/env bash
# Fetch a BitNet b1.58 2B4T checkpoint from Hugging Face and verify it.
#
# usage: datasets/fetch/fetch-model.sh [--variant packed|bf16|gguf] [--dest DIR]
#                                      [--revision REV] [--tool curl|hf]
#                                      [--no-verify] [--dry-run]
#
#   --variant V    packed (default): microsoft/bitnet-b1.58-2B-4T, 1.58-bit
#                    packed safetensors, ~1.2 GB
#                  bf16: microsoft/bitnet-b1.58-2B-4T-bf16, BF16 master
#                    weights, ~4.8 GB
#                  gguf: microsoft/bitnet-b1.58-2B-4T-gguf, bitnet.cpp I2_S
#                    GGUF, ~1.2 GB
#   --dest DIR     directory to put the files in (created if needed); default
#                  $ROTOR_CACHE/models/<repo name>, with ROTOR_CACHE defaulting
#                  to ${XDG_CACHE_HOME:-~/.cache}/rotor
#   --revision REV Hub revision to download; default: the commit pinned in
#                  datasets/manifest.toml, for which the checksums are known.
#                  `--revision main` fetches the newest files, which may no
#                  longer match the recorded sums.
#   --tool T       curl (default): plain curl, resumable (`curl -L -C -`);
#                  hf: use the `hf` (or `huggingface-cli`) command if installed
#   --no-verify    skip the sha256 comparison (sums are still printed)
#   --dry-run      print what would be downloaded, download nothing
#
# Files are listed, with sizes and sha256, in datasets/manifest.toml. A file
# whose sum is recorded there is verified and the script fails on a mismatch;
# for a file without a recorded sum the computed sum is printed so that it can
# be added. An interrupted download leaves FILE.part and resumes on the next
# run. HF_TOKEN, when set, is sent to huggingface.co (not needed: the
# repositories are public). HF_ENDPOINT (default https://huggingface.co)
# selects a mirror, as it does for huggingface_hub.
#
# When it is done it prints the line to use the model with rotor:
#   export ROTOR_MODEL=<dir>
set -euo pipefail
ROTOR_PROG="fetch-model.sh"
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

VARIANT="packed"
DEST=""
REVISION=""
TOOL="curl"
VERIFY=1
DRY_RUN=0

need_arg() { [ "$2" -ge 2 ] || rotor_die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --variant) need_arg "$1" $#; VARIANT="$2"; shift 2 ;;
    --variant=*) VARIANT="${1#*=}"; shift ;;
    --dest) need_arg "$1" $#; DEST="$2"; shift 2 ;;
    --dest=*) DEST="${1#*=}"; shift ;;
    --revision) need_arg "$1" $#; REVISION="$2"; shift 2 ;;
    --revision=*) REVISION="${1#*=}"; shift ;;
    --tool) need_arg "$1" $#; TOOL="$2"; shift 2 ;;
    --tool=*) TOOL="${1#*=}"; shift ;;
    --no-verify) VERIFY=0; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) rotor_die "unknown argument: $1 (see --help)" ;;
  esac
done

case "$VARIANT" in
  packed) ENTRY="microsoft/bitnet-b1.58-2B-4T" ;;
  bf16) ENTRY="microsoft/bitnet-b1.58-2B-4T-bf16" ;;
  gguf) ENTRY="microsoft/bitnet-b1.58-2B-4T-gguf" ;;
  *) rotor_die "unknown --variant '$VARIANT' (want packed, bf16 or gguf)" ;;
esac
case "$TOOL" in
  curl) ;;
  hf)
    if command -v hf >/dev/null 2>&1; then HF_CLI=(hf download)
    elif command -v huggingface-cli >/dev/null 2>&1; then HF_CLI=(huggingface-cli download)
    else rotor_die "--tool hf: neither 'hf' nor 'huggingface-cli' is installed (pip install -U huggingface_hub), or use --tool curl"
    fi ;;
  *) rotor_die "unknown --tool '$TOOL' (want curl or hf)" ;;
esac

HF_REPO="$(rotor_manifest_get "$ENTRY" "" hf_repo)"
PINNED="$(rotor_manifest_get "$ENTRY" "" revision)"
DEST_REL="$(rotor_manifest_get "$ENTRY" "" dest)"
if [ -z "$HF_REPO" ] || [ -z "$PINNED" ] || [ -z "$DEST_REL" ]; then
  rotor_die "entry '$ENTRY' is incomplete in $ROTOR_MANIFEST (hf_repo, revision, dest)"
fi
FILES=()
while IFS= read -r line; do [ -z "$line" ] || FILES+=("$line"); done < <(rotor_manifest_files "$ENTRY")
[ "${#FILES[@]}" -gt 0 ] || rotor_die "no files listed for '$ENTRY' in $ROTOR_MANIFEST"

REVISION="${REVISION:-$PINNED}"
DEST="${DEST:-$ROTOR_CACHE/$DEST_REL}"
if [ "$REVISION" != "$PINNED" ]; then
  rotor_warn "revision '$REVISION' is not the pinned $PINNED; recorded checksums may not apply"
fi

rotor_info "model    $HF_REPO ($VARIANT)"
rotor_info "revision $REVISION"
rotor_info "into     $DEST"

if [ "$DRY_RUN" = 1 ]; then
  for f in "${FILES[@]}"; do
    printf '%s/%s/resolve/%s/%s -> %s/%s (size %s, sha256 %s)\n' "$HF_ENDPOINT" \
      "$HF_REPO" "$REVISION" "$f" "$DEST" "$f" \
      "$(rotor_manifest_get "$ENTRY" "$f" size_bytes | sed 's/^0*$/unknown/')" \
      "$(rotor_manifest_get "$ENTRY" "$f" sha256 | sed 's/^$/unknown/')"
  done
  exit 0
fi

mkdir -p -- "$DEST" || rotor_die "cannot create $DEST"
[ -w "$DEST" ] || rotor_die "cannot write to $DEST"

failed=()
unverified=()
for f in "${FILES[@]}"; do
  size="$(rotor_manifest_get "$ENTRY" "$f" size_bytes)"
  sha="$(rotor_manifest_get "$ENTRY" "$f" sha256)"
  required="$(rotor_manifest_get "$ENTRY" "$f" required)"
  [ "$size" != "0" ] || size=""
  out="$DEST/$f"
  url="$HF_ENDPOINT/$HF_REPO/resolve/$REVISION/$f"

  # Already there and verified: nothing to do.
  if [ -f "$out" ] && [ -n "$sha" ] && [ "$VERIFY" = 1 ] && rotor_verify "$out" "$sha" 2>/dev/null; then
    rotor_info "$f: present and verified, skipping"
    continue
  fi

  rotor_info "$f: downloading${size:+ ($size bytes)}"
  rc=0
  if [ "$TOOL" = hf ]; then
    "${HF_CLI[@]}" "$HF_REPO" "$f" --revision "$REVISION" --local-dir "$DEST" >&2 || rc=$?
  else
    rotor_download "$url" "$out" "$size" || rc=$?
  fi
  if [ "$rc" -ne 0 ] || [ ! -f "$out" ]; then
    if [ "$required" = "false" ]; then
      rotor_warn "$f: download failed (exit $rc); optional file, continuing"
      continue
    fi
    rotor_warn "$f: download failed (exit $rc) from $url"
    failed+=("$f")
    continue
  fi

  actual="$(rotor_sha256 "$out")" || rotor_die "cannot hash $out"
  if [ -n "$size" ] && [ "$(rotor_file_size "$out")" != "$size" ]; then
    rotor_warn "$f: size $(rotor_file_size "$out") differs from the recorded $size"
  fi
  if [ -z "$sha" ]; then
    rotor_info "$f: no sha256 recorded in the manifest; computed $actual"
    unverified+=("$f  $actual")
  elif [ "$VERIFY" = 0 ]; then
    rotor_info "$f: not verified (--no-verify); computed $actual"
  elif rotor_verify "$out" "$sha"; then
    :
  else
    mv -f -- "$out" "$out.bad"
    rotor_warn "$f: checksum mismatch; moved to $out.bad (delete it and run again, or check --revision)"
    failed+=("$f")
  fi
done

if [ "${#unverified[@]}" -gt 0 ]; then
  rotor_info "files without a recorded sha256 (computed here, for datasets/manifest.toml):"
  printf '  %s\n' "${unverified[@]}" >&2
fi
if [ "${#failed[@]}" -gt 0 ]; then
  rotor_die "failed: ${failed[*]}"
fi
rotor_info "done. To use it:"
printf 'export ROTOR_MODEL=%q\n' "$DEST"
