#!/usr/bin/env bash
# Offline self-test of the dataset tooling (safe for CI: no network at all).
#
# usage: datasets/fetch/selftest.sh
#
# Checks:
#   - SHA-256 helper against known test vectors, and verify.sh exit codes
#     (correct sum passes, wrong sum fails with 1, malformed input fails with 2)
#   - datasets/manifest.toml: readable by the shell reader, every sha256 well
#     formed, every fetched entry complete
#   - the shipped corpus files match their manifest sizes and sums, and
#     corpus/SHA256SUMS
#   - fetch-model.sh and fetch-wikitext2.sh end to end against a fake hub made
#     of local files (file:// URLs via HF_ENDPOINT / ROTOR_WIKITEXT_URLS, and a
#     temporary manifest): download, resume of a .part file, verification,
#     mismatch handling, optional/required files, archive extraction
# Ends with the line "N passed, M failed"; exit status 1 if anything failed.
# fm/fw below get their arguments through check_rc, which shellcheck cannot see.
# shellcheck disable=SC2119,SC2120
set -uo pipefail
ROTOR_PROG="selftest.sh"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
DATASETS="$(cd "$HERE/.." && pwd)"
REAL_MANIFEST="$DATASETS/manifest.toml"

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); printf 'ok      %s\n' "$1"; }
bad() { FAIL=$((FAIL + 1)); printf 'FAILED  %s\n' "$1"; }
check() { # check NAME COMMAND...: passes when COMMAND exits 0
  local name="$1"; shift
  if "$@" >/dev/null 2>&1; then ok "$name"; else bad "$name"; fi
}
check_rc() { # check_rc NAME WANT COMMAND...: passes when COMMAND exits WANT
  local name="$1" want="$2" rc=0; shift 2
  "$@" >/dev/null 2>&1 || rc=$?
  if [ "$rc" = "$want" ]; then ok "$name"; else bad "$name (exit $rc, want $want)"; fi
}
check_eq() { # check_eq NAME GOT WANT
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (got '$2', want '$3')"; fi
}

T="$(mktemp -d "${TMPDIR:-/tmp}/rotor-selftest.XXXXXX")"
trap 'rm -rf "$T"' EXIT

# ---------------------------------------------------------------- sha256 ----
printf 'abc' > "$T/abc"
: > "$T/empty"
ABC=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
EMPTY=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
check_eq "sha256 of 'abc'" "$(rotor_sha256 "$T/abc")" "$ABC"
check_eq "sha256 of an empty file" "$(rotor_sha256 "$T/empty")" "$EMPTY"
printf 'abc' > "$T/odd \\ name"
check_eq "sha256 of a file name with a space and a backslash" "$(rotor_sha256 "$T/odd \\ name")" "$ABC"
printf 'abc' > "$T/-dash"
check_eq "sha256 of a file name starting with '-'" "$(rotor_sha256 "$T/-dash")" "$ABC"

# ---------------------------------------------------------------- verify ----
V="$HERE/verify.sh"
UPPER="$(printf '%s' "$ABC" | tr 'a-f' 'A-F')"
WRONG="${ABC%?}0"
check_rc "verify.sh: correct sum passes" 0 "$V" "$T/abc" "$ABC"
check_rc "verify.sh: upper-case sum passes" 0 "$V" "$T/abc" "$UPPER"
check_rc "verify.sh: wrong sum fails with 1" 1 "$V" "$T/abc" "$WRONG"
check_rc "verify.sh: sum of another file fails with 1" 1 "$V" "$T/abc" "$EMPTY"
check_rc "verify.sh: empty file, correct sum" 0 "$V" "$T/empty" "$EMPTY"
check_rc "verify.sh: 63-digit sum is rejected with 2" 2 "$V" "$T/abc" "${ABC%?}"
check_rc "verify.sh: non-hex sum is rejected with 2" 2 "$V" "$T/abc" "${ABC%?}g"
check_rc "verify.sh: empty sum is rejected with 2" 2 "$V" "$T/abc" ""
check_rc "verify.sh: missing file fails with 2" 2 "$V" "$T/nonexistent" "$ABC"
check_rc "verify.sh: a directory fails with 2" 2 "$V" "$T" "$ABC"
check_rc "verify.sh: no arguments fails with 2" 2 "$V"
check_rc "verify.sh: one argument fails with 2" 2 "$V" "$T/abc"
check_rc "verify.sh: --help exits 0" 0 "$V" --help
printf 'abd' > "$T/abd"
check_rc "verify.sh: one changed byte fails with 1" 1 "$V" "$T/abd" "$ABC"

# -------------------------------------------------------------- manifest ----
check "manifest exists" test -f "$REAL_MANIFEST"
check_eq "manifest: packed revision" \
  "$(rotor_manifest_get microsoft/bitnet-b1.58-2B-4T "" revision)" \
  "04c3b9ad9361b824064a1f25ea60a8be9599b127"
check_eq "manifest: gguf size" \
  "$(rotor_manifest_get microsoft/bitnet-b1.58-2B-4T-gguf ggml-model-i2_s.gguf size_bytes)" "1187801280"
check_eq "manifest: an absent key reads as empty" \
  "$(rotor_manifest_get microsoft/bitnet-b1.58-2B-4T model.safetensors no_such_key)" ""
check_eq "manifest: packed files" \
  "$(rotor_manifest_files microsoft/bitnet-b1.58-2B-4T | tr '\n' ' ')" \
  "model.safetensors config.json generation_config.json tokenizer.json tokenizer_config.json special_tokens_map.json LICENSE "

bad_sums="$(awk '/^[ \t]*sha256[ \t]*=/ {
    v = $0; sub(/^[^=]*=[ \t]*/, "", v)
    # (no {64} interval: mawk lacks it)
    h = v; if (h !~ /^"[0-9a-f]*"$/) { print NR ": " v; next }
    gsub(/"/, "", h); if (length(h) != 0 && length(h) != 64) print NR ": " v }' "$REAL_MANIFEST")"
check_eq "manifest: every sha256 is \"\" or 64 lower-case hex digits" "$bad_sums" ""
entries="$(awk '/^\[\[entry\]\]/ { getline; v = $0; sub(/^[^"]*"/, "", v); sub(/".*$/, "", v); print v }' "$REAL_MANIFEST")"
check_eq "manifest: entries" "$(printf '%s\n' "$entries" | tr '\n' ' ')" \
  "austen-corpus austen-tiny austen-tiny-i768 microsoft/bitnet-b1.58-2B-4T microsoft/bitnet-b1.58-2B-4T-bf16 microsoft/bitnet-b1.58-2B-4T-gguf wikitext-2-raw-v1 "
while IFS= read -r e; do
  [ -n "$e" ] || continue
  shipped="$(rotor_manifest_get "$e" "" shipped)"
  for k in kind source licence shipped fetch; do
    [ -n "$(rotor_manifest_get "$e" "" "$k")" ] || bad "manifest: $e has no $k"
  done
  while IFS= read -r f; do
    [ -n "$f" ] || continue
    for k in path size_bytes sha256 required; do
      # an absent key prints nothing; a present one (even "") prints a line
      v="$(rotor_manifest_get "$e" "$f" "$k"; printf x)"
      [ "$v" != "x" ] || bad "manifest: $e/$f has no $k"
    done
    if [ "$shipped" = false ]; then
      want="\$ROTOR_CACHE/$(rotor_manifest_get "$e" "" dest)/$f"
      got="$(rotor_manifest_get "$e" "$f" path)"
      [ "$got" = "$want" ] || bad "manifest: $e/$f path '$got' is not '$want'"
    fi
  done < <(rotor_manifest_files "$e")
  if [ "$shipped" = false ] && [ "$(rotor_manifest_get "$e" "" kind)" = model ]; then
    for k in hf_repo revision dest; do
      [ -n "$(rotor_manifest_get "$e" "" "$k")" ] || bad "manifest: $e has no $k"
    done
  fi
done <<< "$entries"
ok "manifest: every entry and file has the required fields"

# -------------------------------------------------------- shipped corpus ----
for f in train.txt validation.txt test.txt; do
  p="$DATASETS/corpus/$f"
  if [ ! -f "$p" ]; then bad "corpus/$f exists"; continue; fi
  check_eq "corpus/$f size matches the manifest" "$(rotor_file_size "$p")" \
    "$(rotor_manifest_get austen-corpus "$f" size_bytes)"
  check_rc "corpus/$f sha256 matches the manifest" 0 "$V" "$p" \
    "$(rotor_manifest_get austen-corpus "$f" sha256)"
  if grep -q $'\r' "$p"; then bad "corpus/$f has no carriage returns"; else ok "corpus/$f has no carriage returns"; fi
done
if [ -f "$DATASETS/corpus/SHA256SUMS" ]; then
  check "corpus/SHA256SUMS matches" bash -c "cd '$DATASETS/corpus' && sha256sum --quiet -c SHA256SUMS"
else
  bad "corpus/SHA256SUMS exists"
fi

# -------------------------------------------------------- shipped models ----
for m in austen-tiny austen-tiny-i768; do
  while IFS= read -r f; do
    [ -n "$f" ] || continue
    p="$DATASETS/../$(rotor_manifest_get "$m" "$f" path)"
    if [ ! -f "$p" ]; then bad "models/$m/$f exists"; continue; fi
    check_eq "models/$m/$f size matches the manifest" "$(rotor_file_size "$p")" \
      "$(rotor_manifest_get "$m" "$f" size_bytes)"
    check_rc "models/$m/$f sha256 matches the manifest" 0 "$V" "$p" \
      "$(rotor_manifest_get "$m" "$f" sha256)"
  done < <(rotor_manifest_files "$m")
  [ -n "$(rotor_manifest_files "$m")" ] || bad "manifest lists the files of $m"
done

# ------------------------------------------------------ fake hub, models ----
if ! command -v curl >/dev/null 2>&1; then
  printf 'skip    fetch scripts end to end (curl not installed)\n'
else
  HUB="$T/hub"
  REV=1111111111111111111111111111111111111111
  mkdir -p "$HUB/microsoft/bitnet-b1.58-2B-4T/resolve/$REV"
  R="$HUB/microsoft/bitnet-b1.58-2B-4T/resolve/$REV"
  head -c 300000 /dev/urandom > "$R/model.safetensors" 2>/dev/null ||
    awk 'BEGIN { srand(7); for (i = 0; i < 30000; i++) printf "%09d\n", int(rand() * 1e9) }' > "$R/model.safetensors"
  printf '{"model_type": "bitnet"}\n' > "$R/config.json"
  printf '{"version": "1.0"}\n' > "$R/tokenizer.json"
  M_SHA="$(rotor_sha256 "$R/model.safetensors")"
  M_SIZE="$(rotor_file_size "$R/model.safetensors")"
  T_SHA="$(rotor_sha256 "$R/tokenizer.json")"
  C_SHA="$(rotor_sha256 "$R/config.json")"

  write_manifest() { # write_manifest MODEL_SHA
    cat > "$T/manifest.toml" <<EOF
schema = 1
[[entry]]
name = "microsoft/bitnet-b1.58-2B-4T"
kind = "model"
hf_repo = "microsoft/bitnet-b1.58-2B-4T"
revision = "$REV"
dest = "models/fake"
  [[entry.files]]
  file = "model.safetensors"
  size_bytes = $M_SIZE
  sha256 = "$1"
  required = true
  [[entry.files]]
  file = "config.json"
  size_bytes = 0
  sha256 = ""
  required = true
  [[entry.files]]
  file = "tokenizer.json"
  size_bytes = 0
  sha256 = "$T_SHA"
  required = true
  [[entry.files]]
  file = "not_on_the_hub.json"
  size_bytes = 0
  sha256 = ""
  required = false
EOF
  }
  fm() { # run fetch-model.sh offline against the fake hub
    HF_ENDPOINT="file://$HUB" ROTOR_MANIFEST="$T/manifest.toml" ROTOR_CACHE="$T/cache" \
      HF_TOKEN="" "$HERE/fetch-model.sh" "$@"
  }
  D="$T/cache/models/fake"

  write_manifest "$M_SHA"
  check_rc "fetch-model: --help exits 0" 0 fm --help
  check_rc "fetch-model: unknown option fails" 1 fm --bogus
  check_rc "fetch-model: unknown variant fails" 1 fm --variant int4
  check_rc "fetch-model: --dry-run exits 0" 0 fm --dry-run
  check "fetch-model: --dry-run downloads nothing" test ! -e "$D"
  out="$(fm 2>"$T/err")"; rc=$?
  check_eq "fetch-model: downloads and verifies (exit 0)" "$rc" 0
  check "fetch-model: model file is byte-identical" cmp -s "$R/model.safetensors" "$D/model.safetensors"
  check "fetch-model: config.json fetched" cmp -s "$R/config.json" "$D/config.json"
  check "fetch-model: no .part file left" test ! -e "$D/model.safetensors.part"
  check_eq "fetch-model: prints export ROTOR_MODEL" "$out" "export ROTOR_MODEL=$D"
  check "fetch-model: prints the computed sum of a file without one" grep -q "$C_SHA" "$T/err"
  check "fetch-model: a missing optional file only warns" grep -q "not_on_the_hub.json: download failed" "$T/err"
  check "fetch-model: ... and leaves no .part file for it" test ! -e "$D/not_on_the_hub.json.part"
  check "fetch-model: reports OK for the verified model" grep -q "^OK  *$M_SHA" "$T/err"

  fm >/dev/null 2>"$T/err"
  check "fetch-model: second run skips verified files" grep -q "model.safetensors: present and verified" "$T/err"

  # Resume: keep the first third as a .part file.
  rm -f "$D/model.safetensors"
  head -c 100000 "$R/model.safetensors" > "$D/model.safetensors.part"
  check_rc "fetch-model: resumes from a .part file" 0 fm
  check "fetch-model: resumed file is byte-identical" cmp -s "$R/model.safetensors" "$D/model.safetensors"

  # A complete .part file (e.g. killed before the rename) is accepted as is.
  mv "$D/model.safetensors" "$D/model.safetensors.part"
  check_rc "fetch-model: accepts a complete .part file" 0 fm
  check "fetch-model: ... and renames it" cmp -s "$R/model.safetensors" "$D/model.safetensors"

  # A corrupted .part file is caught by the checksum.
  rm -f "$D/model.safetensors"
  { printf 'XXXXXXXX'; tail -c +9 "$R/model.safetensors" | head -c 99992; } > "$D/model.safetensors.part"
  check_rc "fetch-model: corrupted resume fails" 1 fm
  check "fetch-model: ... and moves the bad file aside" test -f "$D/model.safetensors.bad"
  check "fetch-model: ... leaving no unverified file" test ! -e "$D/model.safetensors"
  rm -f "$D/model.safetensors.bad"

  # Wrong recorded sum: fails, non-zero.
  write_manifest "$WRONG"
  check_rc "fetch-model: wrong recorded sum fails with exit 1" 1 fm
  check_rc "fetch-model: --no-verify accepts it" 0 fm --no-verify
  write_manifest "$M_SHA"

  # A required file missing on the hub fails.
  mv "$R/config.json" "$R/config.json.hidden"
  rm -f "$D/config.json"
  check_rc "fetch-model: a missing required file fails" 1 fm
  mv "$R/config.json.hidden" "$R/config.json"

  # --dest puts the files elsewhere.
  check_rc "fetch-model: --dest" 0 fm --dest "$T/elsewhere"
  check "fetch-model: --dest holds the model" cmp -s "$R/model.safetensors" "$T/elsewhere/model.safetensors"

  # ------------------------------------------------- fake hub, wikitext ----
  have_zip_tools=0
  if command -v zip >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1; then
    if command -v unzip >/dev/null 2>&1 || command -v bsdtar >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1; then
      have_zip_tools=1
    fi
  fi
  if [ "$have_zip_tools" = 0 ]; then
    printf 'skip    fetch-wikitext2.sh end to end (no zip tool)\n'
  else
    W="$T/wt"
    mkdir -p "$W/src/wikitext-2-raw" "$W/mirror"
    printf ' = Fake article = \n\n Some text . \n' > "$W/src/wikitext-2-raw/wiki.test.raw"
    printf ' = Train = \n' > "$W/src/wikitext-2-raw/wiki.train.raw"
    printf ' = Valid = \n' > "$W/src/wikitext-2-raw/wiki.valid.raw"
    if command -v zip >/dev/null 2>&1; then
      (cd "$W/src" && zip -q -X -r "$W/mirror/wikitext-2-raw-v1.zip" wikitext-2-raw)
    else
      (cd "$W/src" && python3 -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1], "w")
for n in ("wiki.test.raw", "wiki.train.raw", "wiki.valid.raw"):
    z.write("wikitext-2-raw/" + n)
z.close()' "$W/mirror/wikitext-2-raw-v1.zip")
    fi
    Z_SHA="$(rotor_sha256 "$W/mirror/wikitext-2-raw-v1.zip")"
    Z_SIZE="$(rotor_file_size "$W/mirror/wikitext-2-raw-v1.zip")"
    WT_SHA="$(rotor_sha256 "$W/src/wikitext-2-raw/wiki.test.raw")"
    write_wt_manifest() { # write_wt_manifest ZIP_SHA TEST_SHA
      cat > "$W/manifest.toml" <<EOF
[[entry]]
name = "wikitext-2-raw-v1"
kind = "corpus"
dest = "wikitext-2-raw"
  [[entry.files]]
  file = "wikitext-2-raw-v1.zip"
  size_bytes = $Z_SIZE
  sha256 = "$1"
  required = true
  [[entry.files]]
  file = "wiki.test.raw"
  size_bytes = 0
  sha256 = "$2"
  required = true
EOF
    }
    fw() {
      ROTOR_MANIFEST="$W/manifest.toml" ROTOR_CACHE="$W/cache" \
        ROTOR_WIKITEXT_URLS="file://$W/nowhere/wikitext-2-raw-v1.zip file://$W/mirror/wikitext-2-raw-v1.zip" \
        "$HERE/fetch-wikitext2.sh" "$@"
    }
    WD="$W/cache/wikitext-2-raw"
    write_wt_manifest "$Z_SHA" "$WT_SHA"
    check_rc "fetch-wikitext2: --help exits 0" 0 fw --help
    check_rc "fetch-wikitext2: unknown option fails" 1 fw --bogus
    check_rc "fetch-wikitext2: --dry-run exits 0" 0 fw --dry-run
    out="$(fw 2>"$T/err")"; rc=$?
    check_eq "fetch-wikitext2: falls back to the second source and verifies (exit 0)" "$rc" 0
    check "fetch-wikitext2: wiki.test.raw is byte-identical" cmp -s "$W/src/wikitext-2-raw/wiki.test.raw" "$WD/wiki.test.raw"
    check "fetch-wikitext2: archive removed" test ! -e "$WD/wikitext-2-raw-v1.zip"
    check "fetch-wikitext2: no extraction directory left" bash -c "! ls -d '$WD'/.extract.* 2>/dev/null"
    check_eq "fetch-wikitext2: prints export ROTOR_WIKITEXT" "$out" "export ROTOR_WIKITEXT=$WD/wiki.test.raw"
    check_rc "fetch-wikitext2: second run is a no-op" 0 fw
    check_rc "fetch-wikitext2: --all-splits --keep-zip" 0 fw --all-splits --keep-zip
    check "fetch-wikitext2: wiki.train.raw extracted" test -f "$WD/wiki.train.raw"
    check "fetch-wikitext2: archive kept" test -f "$WD/wikitext-2-raw-v1.zip"
    check_rc "fetch-wikitext2: --zip with a local archive" 0 fw --zip "$W/mirror/wikitext-2-raw-v1.zip" --dest "$W/local"
    check "fetch-wikitext2: --zip result" cmp -s "$W/src/wikitext-2-raw/wiki.test.raw" "$W/local/wiki.test.raw"
    write_wt_manifest "$WRONG" "$WT_SHA"
    rm -rf "$WD"
    check_rc "fetch-wikitext2: wrong archive sum fails" 1 fw
    check "fetch-wikitext2: ... leaving no wiki.test.raw" test ! -e "$WD/wiki.test.raw"
    write_wt_manifest "$Z_SHA" "$WRONG"
    check_rc "fetch-wikitext2: wrong wiki.test.raw sum fails" 1 fw
    check "fetch-wikitext2: ... leaving no wiki.test.raw" test ! -e "$WD/wiki.test.raw"
  fi
fi

printf '%d passed, %d failed\n' "$PASS" "$FAIL"
[ "$FAIL" -eq 0 ]
