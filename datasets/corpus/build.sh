#!/usr/bin/env bash
# Rebuild the shipped public-domain corpus (Jane Austen's six novels) from the
# Debian package r-cran-janeaustenr, byte for byte.
#
#   datasets/corpus/build.sh [--out DIR] [--check] [--no-install]
#
#   --out DIR      write train.txt / validation.txt / test.txt into DIR
#                  (default: the directory this script lives in)
#   --check        build into a temporary directory and compare byte for byte
#                  with the committed files next to this script (and with
#                  SHA256SUMS); exit 1 on any difference, write nothing
#   --no-install   never call apt-get; fail if R or janeaustenr is missing
#
# Split rule (whole books, so no passage of one split occurs in another):
#   train      = Sense and Sensibility, Pride and Prejudice, Mansfield Park, Emma
#                (in that order, the package's and publication order)
#   validation = Northanger Abbey
#   test       = Persuasion
#
# Normalisation (minimal; everything else is verbatim, chapter headings,
# indentation and the single non-ASCII character "£" included):
#   1. text is UTF-8 with "\n" line endings (a stray "\r" at a line end is dropped)
#   2. trailing spaces and tabs are stripped from every line
#   3. runs of more than 2 blank lines are collapsed to exactly 2
#   4. blank lines at the start and end of each book are removed
#   5. within a split, books are joined by exactly 2 blank lines
#   6. every file ends with a single "\n"
#
# Built with (Debian 12 "bookworm"): r-cran-janeaustenr 1.0.0-1,
# r-base-core 4.2.2.20221110-2. janeaustenr stores the texts as R data, so the
# output depends on the janeaustenr version only; the R version does not touch
# the bytes. A different janeaustenr version prints a warning, and the sums
# then need checking against SHA256SUMS.
set -euo pipefail
export LC_ALL=C

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$HERE"
CHECK=0
INSTALL=1
RECORDED_JANEAUSTENR="1.0.0-1"
RECORDED_R="4.2.2.20221110-2"

die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }
warn() { printf 'build.sh: warning: %s\n' "$*" >&2; }

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || die "--out needs a directory"; OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#--out=}"; shift ;;
    --check) CHECK=1; shift ;;
    --no-install) INSTALL=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

have_janeaustenr() {
  command -v Rscript >/dev/null 2>&1 &&
    Rscript -e 'quit(status = if (requireNamespace("janeaustenr", quietly = TRUE)) 0 else 1)' >/dev/null 2>&1
}

if ! have_janeaustenr; then
  [ "$INSTALL" = 1 ] || die "Rscript or the R package janeaustenr is missing (apt-get install r-base-core r-cran-janeaustenr)"
  command -v apt-get >/dev/null 2>&1 || die "Rscript/janeaustenr missing and no apt-get here; install R and janeaustenr ${RECORDED_JANEAUSTENR} by hand"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to apt-get install r-base-core r-cran-janeaustenr"
    SUDO="sudo"
  fi
  echo "build.sh: installing r-base-core r-cran-janeaustenr with apt-get" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends r-base-core r-cran-janeaustenr >&2
  have_janeaustenr || die "janeaustenr still not loadable after apt-get install"
fi

pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "unknown"; }
V_JA="$(pkg_version r-cran-janeaustenr)"
V_R="$(pkg_version r-base-core)"
echo "build.sh: r-cran-janeaustenr ${V_JA}, r-base-core ${V_R}" >&2
[ "$V_JA" = "$RECORDED_JANEAUSTENR" ] ||
  warn "r-cran-janeaustenr is ${V_JA}, the committed corpus was built with ${RECORDED_JANEAUSTENR}; the output may differ"
[ "$V_R" = "$RECORDED_R" ] ||
  echo "build.sh: note: r-base-core ${V_R} (recorded ${RECORDED_R}); R does not change the bytes" >&2

WORK="$(mktemp -d "${TMPDIR:-/tmp}/rotor-corpus.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# 1. Export each novel exactly as stored in the package: one element per line,
#    written as raw bytes (useBytes) so that no locale re-encoding happens.
Rscript --vanilla - "$WORK" >&2 <<'EOF'
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
books <- c("sensesensibility", "prideprejudice", "mansfieldpark",
           "emma", "northangerabbey", "persuasion")
for (b in books) {
  x <- getExportedValue("janeaustenr", b)
  if (!all(validUTF8(x))) stop(paste("invalid UTF-8 in", b))
  con <- file(file.path(dir, paste0(b, ".raw")), open = "wb")
  writeLines(x, con, sep = "\n", useBytes = TRUE)
  close(con)
}
EOF

# 2. Normalise one book (rules 1-4 above).
normalise() {
  awk '
    { sub(/\r$/, ""); sub(/[ \t]+$/, "") }
    $0 == "" { if (started) blanks++; next }
    {
      if (started) { n = (blanks > 2) ? 2 : blanks; for (i = 0; i < n; i++) print "" }
      blanks = 0; started = 1; print
    }
  ' "$1"
}

# 3. Join books with exactly two blank lines (rule 5).
make_split() {
  local out="$1"; shift
  local first=1 b
  : > "$out"
  for b in "$@"; do
    [ "$first" = 1 ] || printf '\n\n' >> "$out"
    first=0
    normalise "$WORK/$b.raw" >> "$out"
  done
}

BUILD="$WORK/out"
mkdir -p "$BUILD"
make_split "$BUILD/train.txt" sensesensibility prideprejudice mansfieldpark emma
make_split "$BUILD/validation.txt" northangerabbey
make_split "$BUILD/test.txt" persuasion

for f in train validation test; do
  iconv -f UTF-8 -t UTF-8 "$BUILD/$f.txt" >/dev/null 2>&1 || die "$f.txt is not valid UTF-8"
  if grep -q $'\r' "$BUILD/$f.txt"; then die "$f.txt contains a carriage return"; fi
done

sums() { (cd "$1" && sha256sum train.txt validation.txt test.txt); }

if [ "$CHECK" = 1 ]; then
  status=0
  for f in train validation test; do
    if cmp -s "$BUILD/$f.txt" "$HERE/$f.txt"; then
      echo "build.sh: $f.txt identical to the committed file" >&2
    else
      echo "build.sh: $f.txt DIFFERS from the committed file" >&2
      status=1
    fi
  done
  if [ -f "$HERE/SHA256SUMS" ]; then
    if (cd "$BUILD" && sha256sum --quiet -c "$HERE/SHA256SUMS" >&2); then
      echo "build.sh: SHA256SUMS matches" >&2
    else
      status=1
    fi
  fi
  sums "$BUILD"
  exit "$status"
fi

mkdir -p "$OUT"
for f in train validation test; do
  cp "$BUILD/$f.txt" "$OUT/$f.txt.tmp"
  mv -f "$OUT/$f.txt.tmp" "$OUT/$f.txt"
done
sums "$OUT"
