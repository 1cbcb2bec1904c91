#!/bin/sh
# imds-collect.sh - the imds-runbook evidence collector in POSIX sh + curl (no Python needed).
#
#   sh imds-collect.sh [--target auto|vm|arc] [--endpoint URL] [--resource R]... [--client-id ID]...
#                      [--object-id ID]... [--msi-res-id ID]... [--tokens-dir D] [--timeout S] [--digest]
#   sh imds-collect.sh --digest-of BUNDLE     (the digest of a bundle this script wrote; nothing sent)
#
# Writes to standard output the same evidence bundle as `imds-runbook collect` (analyze it anywhere
# with `imds-runbook analyze FILE`). --digest writes a digest instead: the bundle reduced until it
# fits in the 4,096 bytes Azure Run Command returns, gzipped, in base64 between two marker lines
# (imds_helpers/model/digest.py; `imds-runbook analyze` reads it); it needs gzip and cksum. Needs
# curl, od and awk; uses whatever of stat, ip, iptables-save, nft, systemctl, timeout it finds.
# Bad usage (and --digest without gzip): one line, exit 2.
#
# What it sends: the requests the checks send (instance metadata, versions, tokens, the Arc
# challenge), straight to the endpoint, never through a proxy. Secrets stay here: an Arc key is
# read only after the key-file rules pass, reaches curl through a 0600 file in a 0700 folder
# (never a command line), and is never written out; tokens lose their signature before anything
# is written. The temporary folder is removed on any exit.
# shellcheck disable=SC2016  # awk programs and curl -w formats are single-quoted on purpose

VERSION=0.1.0
UA="imds-runbook/$VERSION"
LC_ALL=C
LANG=C
export LC_ALL LANG

CR=$(printf '\r')
die() { printf 'imds-collect.sh: %s\n' "$1" >&2; exit 2; }

# --- the awk engine: bytes (od -An -v -tu1) -> JSON text ------------------------------------------
# mode text    : UTF-8 decoded with U+FFFD for bad bytes, scrubbed, bounded to `limit` characters
# mode body    : a JSON string if valid UTF-8 (line 2: utf-8), else base64 (line 2: base64); scrubbed
# mode excerpt : first 960 bytes decoded, redacted (tokens removed whole), first 240 characters
# mode headers : a curl -D dump -> line 1 the pairs [[name, value], ...] (Latin-1, scrubbed),
#                line 2 the evidence headers {name: value}
# mode key     : the Arc key's verdict "CODE<TAB>chars<TAB>problem"; writes the Latin-1 bytes of the
#                secret after "Authorization: Basic " to `hdr` and its code points to `secn`
# `secn` (optional): a file of code points, one a line: a secret replaced by <redacted>.
J='
function hex4(v) { return sprintf("%04x", v) }
function esc(v) {
  if (v == 34) return "\\\""
  if (v == 92) return "\\\\"
  if (v == 10) return "\\n"
  if (v == 13) return "\\r"
  if (v == 9) return "\\t"
  if (v == 8) return "\\b"
  if (v == 12) return "\\f"
  if (v < 32 || v > 126) {
    if (v >= 65536) { v -= 65536; return "\\u" hex4(55296 + int(v / 1024)) "\\u" hex4(56320 + v % 1024) }
    return "\\u" hex4(v)
  }
  return CH[v]
}
function isspace(v) {
  return (v >= 9 && v <= 13) || (v >= 28 && v <= 32) || v == 133 || v == 160 || v == 5760 \
    || (v >= 8192 && v <= 8202) || v == 8232 || v == 8233 || v == 8239 || v == 8287 || v == 12288
}
function cls(v) {
  if (v > 32 && v < 127) return CH[v]
  if (isspace(v)) return " "
  if (v > 127) return "\001"
  return "\002"
}
function isword(v) { return (v >= 48 && v <= 57) || (v >= 65 && v <= 90) || (v >= 97 && v <= 122) || v == 95 || (v > 127 && !isspace(v)) }
# cp[1..m] -> the class string (one ASCII character per code point)
function classes(   i, s, blk) {
  s = ""; blk = ""
  for (i = 1; i <= m; i++) { blk = blk cls(cp[i]); if (i % 2048 == 0) { s = s blk; blk = "" } }
  return s blk
}
# decode b[from..to] as UTF-8 into cp[]; strict=1: return 0 at the first invalid sequence
function decode(from, to, strict,   i, c, need, lo, hi, v, k, ok) {
  m = 0; i = from
  while (i <= to) {
    c = b[i]
    if (c < 128) { cp[++m] = c; i++; continue }
    need = 0; lo = 128; hi = 191
    if (c >= 194 && c <= 223) { need = 1; v = c - 192 }
    else if (c >= 224 && c <= 239) { need = 2; v = c - 224; if (c == 224) lo = 160; if (c == 237) hi = 159 }
    else if (c >= 240 && c <= 244) { need = 3; v = c - 240; if (c == 240) lo = 144; if (c == 244) hi = 143 }
    if (need == 0) { if (strict) return 0; cp[++m] = 65533; i++; continue }
    ok = 1
    for (k = 1; k <= need; k++) {
      if (i + k > to || b[i + k] < lo || b[i + k] > hi) { ok = 0; break }
      v = v * 64 + (b[i + k] - 128); lo = 128; hi = 191
    }
    if (!ok) { if (strict) return 0; cp[++m] = 65533; i += k; continue }
    cp[++m] = v; i += need + 1
  }
  return 1
}
function latin(from, to,   i) { m = 0; for (i = from; i <= to; i++) cp[++m] = b[i] }
# replace cp[s..e] (e < s: insert) by the placeholder, or delete them (rep == "")
function splice(s, e, rep,   i, j, n2, t) {
  n2 = 0
  for (i = 1; i < s; i++) t[++n2] = cp[i]
  for (j = 1; j <= length(rep); j++) t[++n2] = ORD[substr(rep, j, 1)]
  for (i = e + 1; i <= m; i++) t[++n2] = cp[i]
  m = n2; for (i = 1; i <= m; i++) cp[i] = t[i]
  delete t
}
function scrub_secret(   i, k, ok, done) {
  if (sn == 0) return
  done = 0
  for (i = 1; i + sn - 1 <= m; i++) {
    if (cp[i] != sec[1]) continue
    ok = 1
    for (k = 2; k <= sn; k++) if (cp[i + k - 1] != sec[k]) { ok = 0; break }
    if (ok) { splice(i, i + sn - 1, "<redacted>"); i += 9 }
  }
}
# JWT: header.claims.signature -> header.claims. (whole=1: the whole token -> <redacted>)
function scrub_jwt(whole,   s, p, q, r, a, d) {
  p = 1
  while (1) {
    s = classes()
    r = substr(s, p)
    if (!match(r, /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*)*/)) return
    a = p + RSTART - 1
    if (whole) { splice(a, a + RLENGTH - 1, "<redacted>"); p = a + 10; continue }
    q = index(substr(s, a), "."); d = index(substr(s, a + q), ".")
    splice(a + q + d, a + RLENGTH - 1, "")
    p = a + q + d
  }
}
# (Basic|Bearer)<spaces>(?!realm=)<credential> -> ... <redacted>
function scrub_auth(bearer,   s, l, p, a, e, r, w) {
  p = 1
  while (1) {
    s = classes(); l = tolower(s)
    r = substr(l, p)
    if (bearer) { if (!match(r, /(basic|bearer)[ ]+[^ "\047\\,]/)) return }
    else if (!match(r, /basic[ ]+[^ "\047\\,]/)) return
    a = p + RSTART - 1; e = a + RLENGTH - 1
    if (a > 1 && isword(cp[a - 1])) { p = a + 1; continue }
    if (substr(l, e, 6) == "realm=") { p = e; continue }
    w = e
    while (w + 1 <= m && substr(s, w + 1, 1) !~ /[ "\047\\,]/) w++
    splice(e, w, "<redacted>"); p = e + 10
  }
}
# "access_token": "..." and access_token=... (redact_text)
function scrub_fields(   s, l, p, a, e, r, w) {
  p = 1
  while (1) {
    s = classes(); l = tolower(s); r = substr(l, p)
    if (!match(r, /"?(access_token|refresh_token|id_token)"?[ ]*[:=][ ]*"?[^"&, }\\]/)) return
    a = p + RSTART - 1; e = a + RLENGTH - 1; w = e
    while (w + 1 <= m && substr(s, w + 1, 1) !~ /[" &,}\\]/) w++
    splice(e, w, "<redacted>"); p = e + 10
  }
}
function has(word,   s) { s = tolower(classes()); return index(s, word) > 0 }
function scrub() { scrub_secret(); if (index(classes(), "eyJ")) scrub_jwt(0); if (has("basic")) scrub_auth(0) }
function redact() { scrub_secret(); if (has("eyj")) scrub_jwt(1); if (has("_token")) scrub_fields(); if (has("basic") || has("bearer")) scrub_auth(1) }
# put: standard output, or (batch) the next chunk of the job'"'"'s output; pout: the pairs (file pf)
function put(t) { if (BATCH) OC[++NOC] = t; else printf "%s", t }
function pout(t) { if (BATCH) OC[++NOC] = t; else printf "%s", t > pf }
function emit(t) { if (OUT != "") pout(t); else put(t) }
function jstr(limit,   i, o, trunc) {
  trunc = (limit > 0 && m > limit)
  if (trunc) m = limit
  o = "\""
  for (i = 1; i <= m; i++) { o = o esc(cp[i]); if (i % 512 == 0) { emit(o); o = "" } }
  if (trunc) o = o "\\n[... truncated by imds-runbook]"
  emit(o "\"")
}
function b64(   i, v, o, n3) {
  o = ""; put("\"")
  for (i = 1; i + 2 <= m; i += 3) {
    v = cp[i] * 65536 + cp[i + 1] * 256 + cp[i + 2]
    o = o substr(B, int(v / 262144) + 1, 1) substr(B, int(v / 4096) % 64 + 1, 1) substr(B, int(v / 64) % 64 + 1, 1) substr(B, v % 64 + 1, 1)
    if (i % 1536 == 1) { put(o); o = "" }
  }
  n3 = m - i + 1
  if (n3 == 1) { v = cp[i] * 65536; o = o substr(B, int(v / 262144) + 1, 1) substr(B, int(v / 4096) % 64 + 1, 1) "==" }
  if (n3 == 2) { v = cp[i] * 65536 + cp[i + 1] * 256; o = o substr(B, int(v / 262144) + 1, 1) substr(B, int(v / 4096) % 64 + 1, 1) substr(B, int(v / 64) % 64 + 1, 1) "=" }
  put(o "\"")
}
# headers: lines of the last block of a curl -D dump
function headers(   i, s, nl, L, start, j, k, name, val, c, lname, seen, order, joined, keyname, no, first, ev) {
  nl = 0; s = 1
  for (i = 1; i <= n; i++) if (b[i] == 10) { L[++nl, "s"] = s; L[nl, "e"] = i - 1; s = i + 1 }
  if (s <= n) { L[++nl, "s"] = s; L[nl, "e"] = n }
  start = 0
  for (j = 1; j <= nl; j++) {
    if (L[j, "e"] - L[j, "s"] >= 4 && b[L[j, "s"]] == 72 && b[L[j, "s"] + 1] == 84 && b[L[j, "s"] + 2] == 84 && b[L[j, "s"] + 3] == 80 && b[L[j, "s"] + 4] == 47) start = j
  }
  pout("["); first = 1; no = 0
  for (j = start + 1; start > 0 && j <= nl; j++) {
    e = L[j, "e"]; if (e >= L[j, "s"] && b[e] == 13) e--
    if (e < L[j, "s"]) break
    c = 0
    for (k = L[j, "s"]; k <= e; k++) if (b[k] == 58) { c = k; break }
    if (!c) continue
    latin(L[j, "s"], c - 1); name = ""; for (k = 1; k <= m; k++) name = name (cp[k] < 128 ? CH[cp[k]] : "?")
    for (k = 1; k <= m; k++) nm[k] = cp[k]; nmn = m
    s = c + 1; while (s <= e && (b[s] == 32 || b[s] == 9)) s++
    if (!first) pout(",")
    first = 0
    pout("["); scrub(); OUT = pf; jstr(0); pout(",")
    latin(s, e); vv = ""; for (k = 1; k <= m; k++) vv = vv SUBSEP cp[k]
    scrub(); jstr(0); pout("]"); OUT = ""
    lname = tolower(name)
    if (lname in seen) joined[lname] = joined[lname] SUBSEP 44 SUBSEP 32 vv
    else { seen[lname] = name; joined[lname] = substr(vv, 2); order[++no] = lname; nmsave[lname] = nmn; for (k = 1; k <= nmn; k++) nmcp[lname, k] = nm[k] }
  }
  pout("]"); if (!BATCH) close(pf)
  PEND = NOC; put("{"); first = 1
  for (k = 1; k <= no; k++) {
    lname = order[k]
    if (lname !~ /^(server|content-type|content-length|retry-after|www-authenticate|via)$/) continue
    if (!first) put(",")
    first = 0
    m = nmsave[lname]; for (i = 1; i <= m; i++) cp[i] = nmcp[lname, i]
    jstr(0); put(":")
    m = split(joined[lname], ev, SUBSEP); for (i = 1; i <= m; i++) cp[i] = ev[i] + 0
    if (joined[lname] == "") m = 0
    redact(); scrub(); jstr(0)
  }
  put("}")
}
function key(   i, v, lat, nl) {
  if (!decode(1, n, 1)) { print "NOT_UTF8\t" n "\t"; return }
  if (m == 0) { print "PROBLEM\t0\tthe key file is empty"; return }
  nl = 0
  for (i = 1; i <= m; i++) if (cp[i] == 10 || cp[i] == 13 || cp[i] == 0) nl++
  for (i = m; i >= 1 && (cp[i] == 10 || cp[i] == 13); i--) ;
  if ((cp[m] == 10 || cp[m] == 13) && nl == m - i) { print "TRAILING\t" m "\tends with a line break"; return }
  if (nl) { print "PROBLEM\t" m "\tthe key contains line breaks or NUL characters, which cannot be sent in a header"; return }
  for (i = 1; i <= m; i++) if (cp[i] > 255) { print "PROBLEM\t" m "\tthe key contains characters outside Latin-1, which HTTP clients cannot send in a header"; return }
  printf "Authorization: Basic " > hdr
  for (i = 1; i <= m; i++) { printf "%c", cp[i] > hdr; print cp[i] > secn }
  printf "\n" > hdr
  close(hdr); close(secn)
  print "OK\t" m "\t"
}
BEGIN {
  for (i = 0; i < 256; i++) { CH[i] = sprintf("%c", i); ORD[CH[i]] = i }
  B = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  sn = 0
  if (secn != "" && mode != "key") while ((getline line < secn) > 0) sec[++sn] = line + 0
  n = 0
}
function dispatch() {
  if (mode == "text") { decode(1, n, 0); scrub(); jstr(limit) }
  else if (mode == "body" || mode == "bodyenc") {
    if (decode(1, n, 1)) { scrub(); jstr(0); enc = "utf-8" }
    else { latin(1, n); scrub(); b64(); enc = "base64" }
    if (mode == "body") print enc > encf; else put(",\"body_encoding\":\"" enc "\"")
  }
  else if (mode == "excerpt") { decode(1, (n < 960 ? n : 960), 0); redact(); if (m > 240) m = 240; jstr(0) }
  else if (mode == "headers") headers()
  else if (mode == "key") key()
}
# batch: job j (line j of the manifest `man`, "MODE LIMIT"; its size is line j of `sizes`, wc -c)
# is the next JZ[j] bytes of the od stream; its output is the chunks OC[JS[j]..JE[j]] (headers: the
# pairs end at JP[j])
function runjob(j) { mode = JM[j]; limit = JL[j]; JS[j] = NOC + 1; PEND = NOC; dispatch(); JP[j] = PEND; JE[j] = NOC; n = 0; split("", b) }
function zeros() { while (cur <= NJ && JZ[cur] == 0) runjob(cur++) }
function chunks(from, to,   i) { for (i = from; i <= to; i++) printf "%s", OC[i] }
# a skeleton file: its text, each \001ID\001 replaced by job ID'"'"'s output (\001IDp\001: its pairs,
# \001@FILE\001: the skeleton FILE)
function skeleton(f,   line, np, P, i, k, nl) {
  nl = 0
  while ((getline line < f) > 0) {
    if (nl++) printf "\n"
    np = split(line, P, "\001")
    for (i = 1; i <= np; i++) {
      if (i % 2) { printf "%s", P[i]; continue }
      if (P[i] ~ /^@/) { skeleton(substr(P[i], 2)); continue }
      k = P[i] + 0
      if (P[i] ~ /p$/) chunks(JS[k], JP[k]); else if (index(JM[k], "headers")) chunks(JP[k] + 1, JE[k]); else chunks(JS[k], JE[k])
    }
  }
  close(f)
}
BEGIN {
  if (BATCH) {
    NJ = 0; while ((getline line < man) > 0) { split(line, w, " "); JM[++NJ] = w[1]; JL[NJ] = w[2] + 0 }
    k = 0; while (k < NJ && (getline line < sizes) > 0) { split(line, w, " "); JZ[++k] = w[1] + 0 }
    cur = 1; zeros()
  }
}
BATCH { for (i = 1; i <= NF; i++) { b[++n] = $i + 0; if (n == JZ[cur]) { runjob(cur++); zeros() } } next }
{ for (i = 1; i <= NF; i++) b[++n] = $i + 0 }
END {
  if (!BATCH) { dispatch(); exit }
  skeleton("head")
  nk = split(kinds, K, " ")
  for (k = 1; k <= nk; k++) { printf ",\"%s\":[", K[k]; skeleton("r." K[k]); printf "]" }
  printf "}\n"
}
'

# json FILE MODE [LIMIT] [SECRETS]: the file's bytes as JSON (see J)
json() { od -An -v -tu1 "$1" | awk -v mode="$2" -v limit="${3:-0}" -v secn="${4:-}" -v pf="$T/pairs" -v encf="$T/enc" "$J"; }
# jlater FILE MODE [LIMIT]: the placeholder of FILE's bytes as JSON (FILE: a name in $T, no blanks);
# the bytes stay there, and at the end ONE `od | awk` (J's batch) encodes every field and writes the
# bundle with the placeholders replaced. A field that must see the Arc secret is encoded at once (json).
JN=0; JFILES=""; FN=0
jlater() {
  JN=$((JN + 1)); JFILES="$JFILES $1"
  printf '%s %s\n' "$2" "${3:-0}" >> "$T/man"
  printf '\001%s\001' "$JN"
}
# jtext STRING: a JSON string of a short text (an argument, a path, an environment value);
# printable ASCII without quotes, backslashes or anything scrub would change is written as is.
jtext() {
  case $1 in
    *[![:print:]]*|*'"'*|*\\*|*eyJ*|*[Bb][Aa][Ss][Ii][Cc]*) printf '%s' "$1" > "$T/jt"; json "$T/jt" text ;;
    *) printf '"%s"' "$1" ;;
  esac
}

# --- the clock ----------------------------------------------------------------------------------
now_ms() {
  _t=$(date +%s%N 2>/dev/null)
  case $_t in
    *N*|'') _t=$(date +%s); echo "${_t}000" ;;
    *) echo "${_t%??????}" ;;
  esac
}
# up_cs: UP = /proc/uptime in centiseconds (no process; 1: not readable). received_at is the start's
# date plus the uptime since: whole seconds, as date +%s would give, without a date per answer.
UP0=""
up_cs() {
  [ -n "$UP0" ] || return 1
  { read -r _up _ < /proc/uptime; } 2>/dev/null || return 1
  case $_up in *[!0-9.]*|'') return 1 ;; *.??) ;; *) return 1 ;; esac
  UP=${_up%.*}${_up#*.}; UP=${UP#"${UP%%[!0]*}"}; UP=${UP:-0}
}
ms_since() { echo $(( $(now_ms) - $1 )); }
sleep_s() { sleep "$1" 2>/dev/null || sleep "$(awk -v s="$1" 'BEGIN { print int(s + 0.999) }')"; }
fmt_ms() { awk -v v="$1" 'BEGIN { printf "%.1f", v }'; }
# arithmetic without a process: ms2s MS -> M2S "S.mmm"; s2us "S.ffffff" (curl -w) -> S2U microseconds;
# us2ms US -> U2M "ms.d"
ms2s() { _r=$(( $1 % 1000 + 1000 )); M2S="$(( $1 / 1000 )).${_r#1}"; }
s2us() { _i=${1%%.*}; _f=${1#*.}; [ "$_f" = "$1" ] && _f=""; _f="${_f}000000"; _f=${_f%"${_f#??????}"}
  S2U=$(( ${_i:-0} * 1000000 + 1$_f - 1000000 )); }
us2ms() { U2M="$(( $1 / 1000 )).$(( $1 % 1000 / 100 ))"; }

# --- records --------------------------------------------------------------------------------------
# shellcheck disable=SC2034  # read through eval in rec()
N_commands=0 N_files=0 N_tcp=0 N_http=0 N_arc_keys=0
# rec KIND: where the next record of KIND goes (REC_OUT), its separator written; at most 512
# records of a kind, as evidence.MAX_RECORDS
rec() {
  eval "_n=\$N_$1"
  if [ "$_n" -ge 512 ]; then REC_OUT=/dev/null; return 0; fi
  REC_OUT="$T/r.$1"
  if [ "$_n" -gt 0 ]; then printf ',' >> "$REC_OUT"; fi
  eval "N_$1=$((_n + 1))"
}

# cmd_exec N ARGV...: run with a 2 s timeout and the C locale into $T/oN, $T/eN; "rc elapsed" to $T/pN
cmd_exec() {
  _f=$1; shift; _t0=$(now_ms)
  if [ -n "$TIMEOUT_BIN" ]; then "$TIMEOUT_BIN" -s KILL 2 "$@" > "$T/o$_f" 2> "$T/e$_f" < /dev/null
  else "$@" > "$T/o$_f" 2> "$T/e$_f" < /dev/null; fi
  _rc=$?
  echo "$_rc $(( $(now_ms) - _t0 ))" > "$T/p$_f"
}
# prefetch NAME ARGV...: start a command that does not depend on anything else now, in the
# background (as collect/hostcmd's CommandPrefetch does); `run_cmd --pre NAME ARGV...` records it
# in its place, so the records keep their order.
prefetch() {
  _pn=$1; shift
  command -v "$1" >/dev/null 2>&1 || return 0
  FN=$((FN + 1)); : > "$T/p$FN"
  cmd_exec "$FN" "$@" &
  eval "PRE_$_pn=\$FN PID_$_pn=\$!"
}
# run_cmd [--pre NAME] ARGV... : run (or pick up the prefetched run), record what it printed
run_cmd() {
  _t0=$(now_ms); _rc=null; _err=null; _cf=""
  if [ "$1" = --pre ]; then eval "_cf=\${PRE_$2:-} _pid=\${PID_$2:-}"; shift 2; fi
  if [ -n "$_cf" ]; then
    wait "$_pid"; read -r _rc _el < "$T/p$_cf"
  elif ! command -v "$1" >/dev/null 2>&1; then
    FN=$((FN + 1)); _cf=$FN; : > "$T/o$_cf"; : > "$T/e$_cf"
    _err='"not_found"'; _el=$(ms_since "$_t0")
  else
    FN=$((FN + 1)); _cf=$FN
    cmd_exec "$_cf" "$@"; read -r _rc _el < "$T/p$_cf"
  fi
  if [ "$_err" = null ] && [ -n "$TIMEOUT_BIN" ]; then
    if [ "$_rc" = 137 ] || [ "$_rc" = 124 ]; then _err='"timeout"'; _rc=null
    elif [ "$_rc" = 126 ]; then _err='"permission_denied"'; _rc=null; fi
  fi
  CMD_OUT="$T/o$_cf"
  CMD_ERR=$_err
  rec commands
  {
    printf '{"argv":['
    _first=1
    for _a in "$@"; do [ $_first = 1 ] || printf ','; _first=0; jtext "$_a"; done
    printf '],"timeout_s":2.0,"returncode":%s,"stdout":' "$_rc"
    jlater "o$_cf" text 262144
    printf ',"stderr":'
    jlater "e$_cf" text 262144
    printf ',"error":%s,"elapsed_ms":%s.0}' "$_err" "$_el"
  } >> "$REC_OUT"
}

# read_file PATH LIMIT
read_file() {
  _lim=$2; [ "$_lim" -gt 65536 ] && _lim=65536
  _txt=null; _err=null
  if [ ! -e "$1" ] && [ ! -L "$1" ]; then _err='"missing"'
  elif [ -d "$1" ]; then _err='"os_error: Is a directory"'
  elif [ ! -r "$1" ]; then _err='"permission_denied"'
  elif FN=$((FN + 1)); RF_FILE="$T/f$FN"; ! head -c "$_lim" "$1" > "$RF_FILE" 2>/dev/null; then _err='"permission_denied"'
  else _txt=x; fi
  rec files
  {
    printf '{"op":"read","path":'; jtext "$1"
    printf ',"limit":%s,"text":' "$2"
    if [ "$_txt" = x ]; then jlater "f$FN" text 65536; else printf 'null'; fi
    printf ',"error":%s,"kind":null,"paths":null}' "$_err"
  } >> "$REC_OUT"
  [ "$_txt" = x ]
}

path_kind() {
  if [ -f "$1" ]; then KIND="file"; elif [ -d "$1" ]; then KIND="dir"; elif [ -e "$1" ]; then KIND="other"; else KIND="missing"; fi
  rec files
  { printf '{"op":"kind","path":'; jtext "$1"
    printf ',"limit":null,"text":null,"error":null,"kind":"%s","paths":null}' "$KIND"; } >> "$REC_OUT"
}

# glob PATTERN: the first 16 paths (sorted), also in GLOBBED (one a line)
glob_rec() {
  GLOBBED=""; _c=0
  rec files
  { printf '{"op":"glob","path":'; jtext "$1"; printf ',"limit":null,"text":null,"error":null,"kind":null,"paths":['
    for _p in $1; do
      { [ -e "$_p" ] || [ -L "$_p" ]; } || continue
      [ $_c -ge 16 ] && break
      [ $_c -gt 0 ] && printf ','
      jtext "$_p"; _c=$((_c + 1))
      GLOBBED="$GLOBBED$_p
"
    done
    printf ']}'; } >> "$REC_OUT"
}

# --- TCP: connect and close, nothing sent -------------------------------------------------------
tcp_probe() {   # HOST PORT TIMEOUT
  _t0=$(now_ms)
  _h=$1; case $_h in *:*) _u="[$_h]" ;; *) _u=$_h ;; esac
  : > "$T/tv"
  case $3 in *[!0-9]*) _m=$(awk -v t="$3" 'BEGIN { print t + 1 }') ;; *) _m=$(( $3 + 1 )) ;; esac
  # curl's verbose lines are read as they come (no polling): once it says "Connected", it is ended
  # (nothing was sent); the pid comes first or last, whichever, through the same pipe.
  { curl -v -s --noproxy '*' --connect-timeout "$3" -m "$_m" "telnet://$_u:$2" < /dev/null 2>&1 > /dev/null &
    echo "@@PID $!"; wait; } | {
    _pid=""; _c=""
    while IFS= read -r _l; do
      case $_l in
        '@@PID '*) _pid=${_l#@@PID }; [ -n "$_c" ] && kill "$_pid" 2>/dev/null ;;
        '* Connected to'*) _c=1; printf '%s\n' "$_l"; [ -n "$_pid" ] && kill "$_pid" 2>/dev/null ;;
        *) printf '%s\n' "$_l" ;;
      esac
    done > "$T/tv"; }
  _el=$(ms_since "$_t0")
  _ok=0; _a=""
  while IFS= read -r _l; do case $_l in '* Connected to '*) _ok=1; _a=${_l#*\(}; _a=${_a%%\)*}; break ;; esac; done < "$T/tv"
  TCP_OK=$_ok; TCP_KIND=
  _src=null
  if [ $_ok = 1 ] && command -v ip >/dev/null 2>&1; then
    case $_a in *[!0-9A-Fa-f:.]*|'') ;; *)
      _s=$(ip route get "$_a" 2>/dev/null | sed -n 's/.* src \([^ ]*\).*/\1/p;q')
      [ -n "$_s" ] && _src="\"$_s\"" ;;
    esac
  fi
  awk -v ok="$_ok" -v el="$_el" -v host="$1" -v src="$_src" -v port="$2" -v to="$3" '
    function q(s) { gsub(/[\\"]/, "\\\\&", s); gsub(/[\001-\037]/, " ", s); return "\"" s "\"" }
    function kindof(r) {
      if (r ~ /refused/) { ER = 111; return "connect_refused" }
      if (r ~ /[Nn]o route to host/) { ER = 113; return "host_unreachable" }
      if (r ~ /[Nn]etwork is unreachable/) { ER = 101; return "network_unreachable" }
      if (r ~ /[Tt]ime/) { ER = "null"; return "connect_timeout" }
      if (r ~ /[Rr]eset/) { ER = 104; return "connection_reset" }
      if (r ~ /not permitted/) { ER = 1; return "transport_error" }
      if (r ~ /[Pp]ermission denied/) { ER = 13; return "transport_error" }
      ER = "null"; return "transport_error"
    }
    /^\* Connected to / { a = $0; sub(/^[^(]*\(/, "", a); sub(/\).*/, "", a); conn = a }
    /^\* connect to .* failed: / { a = $0; sub(/^\* connect to /, "", a); r = a; sub(/ port .*/, "", a); sub(/.* failed: /, "", r)
      na++; addr[na] = a; reason[na] = r }
    /^\* (Connection timed out|Connection timeout|Failed to connect)/ { last = $0 }
    /^\* Could not resolve host/ { resolve = $0 }
    END {
      printf "{\"host\":%s,\"port\":%d,\"timeout_s\":%s,", q(host), port, to
      if (resolve != "" && !ok) { printf "\"resolve_error\":%s,\"attempts\":[],\"elapsed_ms\":%.1f}", q(substr(resolve, 3)), el; print "" ; print "resolve"; exit }
      printf "\"resolve_error\":null,\"attempts\":["
      sep = ""
      for (i = 1; i <= na; i++) {
        k = kindof(reason[i])
        if (ok && addr[i] == conn) continue
        printf "%s{\"address\":%s,\"error_kind\":\"%s\",\"errno\":%s,\"error\":%s,\"source_address\":null,\"elapsed_ms\":%.1f}", sep, q(addr[i]), k, ER, q(reason[i]), el; sep = ","
        lastkind = k
      }
      if (ok) { printf "%s{\"address\":%s,\"error_kind\":null,\"errno\":null,\"error\":null,\"source_address\":%s,\"elapsed_ms\":%.1f}", sep, q(conn), src, el; lastkind = "" }
      else if (na == 0) {
        r = last; sub(/^\* /, "", r); if (r == "") r = "no answer"
        a = host; gsub(/[][]/, "", a); if (a == "localhost") a = "127.0.0.1"
        k = kindof(r); printf "{\"address\":%s,\"error_kind\":\"%s\",\"errno\":%s,\"error\":%s,\"source_address\":null,\"elapsed_ms\":%.1f}", q(a), k, ER, q(r), el; lastkind = k
      }
      printf "],\"elapsed_ms\":%.1f}\n%s\n", el, lastkind
    }' "$T/tv" > "$T/tcp"
  { IFS= read -r _l1; IFS= read -r TCP_KIND; } < "$T/tcp"
  rec tcp
  printf '%s' "$_l1" >> "$REC_OUT"
}

# --- HTTP: one attempt with curl, then the retry loop of collect/http.py -------------------------
RETRY_VM=' 404 410 429 '
is_retry_status() {   # STATUS SET(vm|challenge)
  case $1 in 5??) return 0 ;; esac
  [ "$2" = challenge ] && { [ "$1" = 410 ] || [ "$1" = 429 ]; return; }
  case $RETRY_VM in *" $1 "*) return 0 ;; esac
  return 1
}

# http_curl URL [CURL-ARGS]: one GET (http_once's _ct _mt _st, $T/$AH)
http_curl() {
  _u=$1; shift
  curl -v -sS --noproxy '*' -g --path-as-is --compressed -A "$UA" -H 'Accept:' -H 'Accept-Encoding: identity' \
    -H 'Metadata: true' "$@" --connect-timeout "$_ct" -m "$_mt" --speed-limit 1 --speed-time "$_st" \
    -D "$T/$AH" -o - \
    -w '%{stderr}@@W %{http_code} %{time_connect} %{time_starttransfer} %{time_total} %{size_header} %{size_download} %{exitcode}\n' \
    "$_u" < /dev/null
}
# http_once URL REMAINING_S [AUTH]: sets A_STATUS A_ERROR A_ELAPSED A_RECV A_PHASES; files $T/$AH $T/$AB (the answer's header block and body) and $T/a.v
http_once() {
  _r=$2; [ "$_r" -lt 10 ] && _r=10
  ms2s "$_r"; _mt=$M2S
  [ "$CT_MS" -lt "$_r" ] && _r=$CT_MS
  ms2s "$_r"; _ct=$M2S
  _st=$(( (RT_MS + 500) / 1000 )); [ "$_st" -lt 1 ] && _st=1
  FN=$((FN + 1)); AH="h$FN"; AB="b$FN"
  : > "$T/$AH"
  # stdout (the body) through head: never more than 1 MiB + 1 byte kept. With the Arc secret, stderr
  # goes through sed: only curl's own "* " lines and the -w line (the request headers it shows, the
  # secret among them, start with "> "); without it, straight to the file.
  if [ -n "${3:-}" ]; then
    { http_curl "$1" -H "@$3" 2>&1 1>&3 3>&- | sed -n -e '/^\* /p' -e '/^@@W /p' > "$T/a.v"; } 3>&1 | head -c 1048577 > "$T/$AB"
  else
    http_curl "$1" 2> "$T/a.v" | head -c 1048577 > "$T/$AB"
  fi
  if up_cs; then A_RECV=$(( (STARTED_MS + (UP - UP0) * 10) / 1000 )); else A_RECV=$(date +%s); fi
  _wl=""
  while IFS= read -r _l; do case $_l in '@@W '*) _wl=${_l#@@W } ;; esac; done < "$T/a.v"
  [ -n "$_wl" ] || _wl="0 0 0 0 0 0 99"
  read -r _code _tc _tst _tt _sh _sd _rc <<EOW
$_wl
EOW
  _bs=$(wc -c < "$T/$AB"); _bs=$((_bs))
  _complete=0
  if [ "$_rc" = 0 ] || grep -q "^$CR*\$" "$T/$AH"; then _complete=1; fi
  A_STATUS=null
  [ "$_complete" = 1 ] && [ "$_code" != 000 ] && [ "$_code" != 0 ] && A_STATUS=$_code
  A_ERROR=null
  case $_rc in
    0) ;;
    7) _r=$(sed -n 's/^\* connect to .* failed: //p' "$T/a.v" | tail -n 1)
       case $_r in
         *refused*) A_ERROR=connect_refused ;;
         *"o route to host"*) A_ERROR=host_unreachable ;;
         *"etwork is unreachable"*) A_ERROR=network_unreachable ;;
         *imed*|*ime*out*) A_ERROR=connect_timeout ;;
         *) if grep -q 'Timeout was reached\|timed out' "$T/a.v"; then A_ERROR=connect_timeout; else A_ERROR=transport_error; fi ;;
       esac ;;
    28) if awk -v t="$_tc" 'BEGIN { exit !(t == 0) }'; then A_ERROR=connect_timeout
        # curl's low-speed check counts body bytes only: nothing at all for the read timeout is
        # Python's read_timeout; part of an answer (a header line, some body) is an answer too slow.
        elif [ ! -s "$T/$AH" ] && [ "${_sd:-0}" = 0 ]; then A_ERROR=read_timeout
        else A_ERROR=deadline_exceeded; fi ;;
    52|55|56|8|1) A_ERROR=connection_reset ;;
    18|61) A_ERROR=bad_payload ;;
    23) if [ "$_bs" -gt 1048576 ]; then A_ERROR=oversized_payload; else A_ERROR=transport_error; fi ;;
    *) A_ERROR=transport_error ;;
  esac
  if [ "$_bs" -gt 1048576 ]; then
    A_ERROR=oversized_payload
    head -c 1048576 "$T/$AB" > "$T/$AB.x"; AB=$AB.x; _bs=1048576
  fi
  A_BS=$_bs
  [ "$A_STATUS" = null ] && [ "$A_ERROR" = null ] && A_ERROR=transport_error
  s2us "$_tt"; A_US=$S2U; us2ms "$S2U"; A_ELAPSED=$U2M
  if [ "$_complete" = 1 ]; then
    s2us "$_tc"; us2ms "$S2U"; A_PHASES="{\"connect_ms\":$U2M"
    s2us "$_tst"; us2ms "$S2U"; A_PHASES="$A_PHASES,\"headers_ms\":$U2M,\"body_ms\":$A_ELAPSED}"
  else
    A_PHASES='{}'
  fi
}

# retry_after SECONDS-OR-HTTP-DATE -> seconds from now, or nothing
retry_after() {
  awk -v v="$1" -v now="$(date +%s)" 'BEGIN {
    sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v)
    if (v ~ /^[0-9]+$/) { print (v + 0) * 1000; exit }
    split("jan feb mar apr may jun jul aug sep oct nov dec", M, " ")
    n = split(tolower(v), f, /[ ,:]+/)
    if (n < 7) exit
    d = f[2] + 0; mo = 0; for (i = 1; i <= 12; i++) if (f[3] == M[i]) mo = i
    y = f[4] + 0; if (!mo || !y) exit
    if (mo <= 2) { y--; mo += 12 }
    days = 365 * y + int(y / 4) - int(y / 100) + int(y / 400) + int((153 * (mo - 3) + 2) / 5) + d - 719469
    t = days * 86400 + f[5] * 3600 + f[6] * 60 + f[7]
    w = t - now; if (w < 0) w = 0; print w * 1000
  }'
}

# request URL KIND(vm|challenge|once) [AUTH-HEADER-FILE] [SECRETS-FILE]: the request with its
# retries, recorded; sets H_STATUS H_ERROR and leaves the last answer in $T/$AH, $T/$AB
request() {
  _url=$1; _set=$2; _auth=${3:-}; _secn=${4:-}
  _spent=0    # microseconds: the attempts (curl's time_total) and the waits between them
  _n=0; _backoff=500
  FN=$((FN + 1)); _af="t$FN"; : > "$T/$_af"
  while :; do
    http_once "$_url" "$(( TOTAL_MS - _spent / 1000 ))" "$_auth"
    _spent=$(( _spent + A_US ))
    _n=$((_n + 1))
    { [ "$_n" -gt 1 ] && printf ','
      printf '{"method":"GET","url":'; jtext "$_url"
      printf ',"status":%s,"error":%s,"elapsed_ms":%s,"headers":' "$A_STATUS" "$(q_or_null "$A_ERROR")" "$A_ELAPSED"
      if [ -n "$_secn" ]; then json "$T/$AH" headers 0 "$_secn"; else jlater "$AH" headers; _hj=$JN; fi
      printf ',"body_excerpt":'
      if [ -n "$_secn" ]; then json "$T/$AB" excerpt 0 "$_secn"; else jlater "$AB" excerpt; fi
      printf ',"phases":%s}' "$A_PHASES"; } >> "$T/$_af"
    _retry=0
    if [ "$_set" != once ] && [ "$_n" -lt 4 ]; then
      if [ "$A_ERROR" = null ] && is_retry_status "$A_STATUS" "$_set"; then _retry=1; fi
      case $A_ERROR in connection_reset|bad_payload) _retry=1 ;; esac
    fi
    _wait=$_backoff    # ms
    if [ $_retry = 1 ] && [ "$A_ERROR" = null ]; then
      _ra=$(awk 'BEGIN { IGNORECASE = 1 } { sub(/\r$/, "") } tolower($0) ~ /^retry-after:/ { sub(/^[^:]*:[ \t]*/, ""); v = (v == "" ? $0 : v ", " $0) } /^HTTP\// { v = "" } END { print v }' "$T/$AH")
      if [ -n "$_ra" ]; then _w=$(retry_after "$_ra"); [ -n "$_w" ] && _wait=$_w; fi
    fi
    if [ $_retry = 1 ] && [ $(( _wait + 50 )) -lt $(( TOTAL_MS - _spent / 1000 )) ]; then
      ms2s "$_wait"; sleep_s "$M2S"
      _spent=$(( _spent + _wait * 1000 ))
      _backoff=$(( _backoff * 2 )); [ "$_backoff" -gt 8000 ] && _backoff=8000
      continue
    fi
    break
  done
  us2ms "$_spent"; _el=$U2M
  H_STATUS=$A_STATUS; H_ERROR=$A_ERROR
  _bytes=$A_BS
  _trunc=false; [ "$A_ERROR" = oversized_payload ] && { _trunc=true; _bytes=$((_bytes + 1)); }
  rec http
  {
    printf '{"request":{"method":"GET","url":'; jtext "$_url"
    if [ -n "$_auth" ]; then printf ',"headers":[["Authorization","<redacted>"],["Metadata","true"]]'
    else printf ',"headers":[["Metadata","true"]]'; fi
    printf ',"via_proxy":false},"status":%s,"error":%s,"headers":' "$A_STATUS" "$(q_or_null "$A_ERROR")"
    if [ -n "$_secn" ]; then
      cat "$T/pairs"
      printf ',"body":'; json "$T/$AB" body 0 "$_secn"; read -r _enc < "$T/enc"
      printf ',"body_encoding":"%s"' "$_enc"
    else
      printf '\001%sp\001,"body":' "$_hj"; jlater "$AB" bodyenc
    fi
    printf ',"body_bytes":%s,"body_truncated":%s' "$_bytes" "$_trunc"
    printf ',"elapsed_ms":%s,"received_at":%s,"attempts":[' "$_el" "$A_RECV"
    printf '\001@%s\001]}' "$_af"
  } >> "$REC_OUT"
}
q_or_null() { if [ "$1" = null ]; then printf null; else printf '"%s"' "$1"; fi; }

# the first value of a JSON body's string list NAME ("newest-versions", "apiVersions"): all, one a line
json_list() {
  tr -d '\n\r' < "$2" | awk -v name="$1" '{
    i = index($0, "\"" name "\""); if (!i) exit
    r = substr($0, i + length(name) + 2); sub(/^[ \t]*:[ \t]*\[/, "", r)
    if (!match(r, /^[^]]*\]/)) exit
    r = substr(r, 1, RLENGTH - 1)
    n = split(r, p, ",")
    for (k = 1; k <= n; k++) { v = p[k]; gsub(/^[ \t]*"|"[ \t]*$/, "", v); if (v != "" && v !~ /["\\]/) print v }
  }'
}
json_field() {   # NAME FILE: the first "NAME": "string" value
  tr -d '\n\r' < "$2" | awk -v name="$1" '{ i = index($0, "\"" name "\""); if (!i) exit
    r = substr($0, i + length(name) + 2); if (match(r, /^[ \t]*:[ \t]*"[^"\\]*"/)) { r = substr(r, RSTART, RLENGTH); sub(/^[^"]*"/, "", r); sub(/"$/, "", r); print r } }'
}

# urlencode like Python's urlencode (quote_plus)
urlenc() {
  printf '%s' "$1" | od -An -v -tu1 | awk '{ for (i = 1; i <= NF; i++) { c = $i + 0
    if ((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 45 || c == 46 || c == 95 || c == 126) printf "%c", c
    else if (c == 32) printf "+"; else printf "%%%02X", c } }'
}

# --- the Arc key file ------------------------------------------------------------------------------
file_type() {
  if [ -L "$1" ]; then echo symlink; elif [ -f "$1" ]; then echo "regular file"; elif [ -d "$1" ]; then echo directory
  elif [ -p "$1" ]; then echo "FIFO (named pipe)"; elif [ -c "$1" ]; then echo "character device"
  elif [ -b "$1" ]; then echo "block device"; elif [ -S "$1" ]; then echo socket; else echo unknown; fi
}
# stat_of PATH -> "mode owner group size inode" (lstat)
stat_of() {
  if [ -n "$STAT_BIN" ]; then "$STAT_BIN" -c '0%a %U %G %s %d:%i' -- "$1" 2>/dev/null && return
  fi
  # shellcheck disable=SC2012  # ls -n is the portable way to the numeric owner and size
  ls -ldn -- "$1" 2>/dev/null | awk '{ print "?", $3, $4, $5, "?" }'
}
resolve() {   # realpath of PATH (symlinks and .. resolved)
  if command -v realpath >/dev/null 2>&1; then realpath -m -- "$1" 2>/dev/null && return; fi
  readlink -f -- "$1" 2>/dev/null && return
  ( _d=$(dirname -- "$1"); cd -P -- "$_d" 2>/dev/null && printf '%s/%s\n' "$(pwd -P)" "$(basename -- "$1")" ) || printf '%s\n' "$1"
}
verdict_json() {   # CODE DETAIL OK ELAPSED EVIDENCE-JSON
  printf '{"code":"%s","detail":' "$1"; jtext "$2"
  printf ',"evidence":%s,"ok":%s,"elapsed_ms":%s}' "$5" "$3" "$4"
}

# arc_key REALM TOKENS_DIR: judge, then read; sets KEY_OK (1: the header file $T/k/auth is ready)
arc_key() {
  _realm=$1; _td=$2; KEY_OK=0
  STAT_BIN=""; stat -c %s / >/dev/null 2>&1 && STAT_BIN=stat
  _t0=$(now_ms)
  _broken=""; _codes=""; _first_detail=""
  brk() { _codes="$_codes $1"; _broken="$_broken$( [ -n "$_broken" ] && printf ', ')$2"; [ -z "$_first_detail" ] && _first_detail=$3; }
  _ev_extra=""
  _stop=0
  if printf '%s' "$_realm" | od -An -tu1 | awk '{ for (i = 1; i <= NF; i++) if ($i < 32 || $i == 127) f = 1 } END { exit !f }' || [ -z "$_realm" ]; then
    brk IMDS-ARC-014 "a plain path" "realm '$_realm' is empty or contains control characters (NUL, line breaks)"; _stop=1
  fi
  if [ $_stop = 0 ]; then case $_realm in /*) ;; *) brk IMDS-ARC-020 "absolute path" "realm '$_realm' is not an absolute path; clients cannot locate the key file"; _stop=1 ;; esac; fi
  _st=""
  if [ $_stop = 0 ]; then
    _res=$(resolve "$_realm"); _dres=$(resolve "$_td")
    _ev_extra=",\"resolved\":$(jtext "$_res"),\"tokens_dir_resolved\":$(jtext "$_dres")"
    if [ "$(dirname -- "$_res")" != "$_dres" ]; then
      _how=""; [ "$_res" != "$_realm" ] && _how=" (it resolves to $_res)"
      brk IMDS-ARC-021 "inside the tokens directory" "realm '$_realm' is not directly inside $_td$_how"
    fi
    case $_realm in *.key) ;; *) brk IMDS-ARC-022 "name ends with .key" "realm '$_realm' does not name a '.key' file" ;; esac
    if [ ! -e "$_realm" ] && [ ! -L "$_realm" ]; then
      if [ -d "$(dirname -- "$_realm")" ] && [ ! -x "$(dirname -- "$_realm")" ]; then
        brk IMDS-ARC-026 "readable by this user" "this process may not even look into $_td; running as $(id -un 2>/dev/null || id -u)"
      else
        brk IMDS-ARC-023 "exists" "$_realm does not exist (key files are single-use and deleted after use, or the agent could not write it)"
      fi
      _stop=1
    fi
  fi
  if [ $_stop = 0 ]; then
    _type=$(file_type "$_realm")
    _st=$(stat_of "$_realm")
    # shellcheck disable=SC2086  # split on purpose: mode owner group size inode
    set -- $_st
    _mode=$1 _own=$2 _grp=$3 _size=$4 _ino=$5
    _ev_extra="$_ev_extra,\"file\":{\"type\":\"$_type\",\"mode\":\"$( printf '%s' "$_mode" | sed 's/^0*/0o/')\",\"owner\":$(jtext "$_own"),\"group\":$(jtext "$_grp"),\"size\":${_size:-0}}"
    if [ "$_type" != "regular file" ]; then
      brk IMDS-ARC-024 "regular file" "$_realm is a $_type, not a regular file"; _stop=1
    fi
  fi
  _euid=$(id -u)
  if [ $_stop = 0 ]; then
    [ "${_size:-0}" -gt 4096 ] && brk IMDS-ARC-025 "at most 4096 bytes" "$_realm is $_size bytes; clients refuse key files over 4096 bytes"
    if [ ! -r "$_realm" ]; then
      brk IMDS-ARC-026 "readable by this user" "this process cannot read $_realm (mode $_mode, owner $_own, group $_grp); running as $(id -un 2>/dev/null || echo "uid $_euid")"
    fi
  fi
  _el=$(ms_since "$_t0")
  _ev="{\"realm\":$(jtext "$_realm"),\"tokens_dir\":$(jtext "$_td"),\"who_may_read\":\"root, or members of group 'himds' (sudo usermod -aG himds <user>, then log in again)\"$_ev_extra,\"broken_rules\":[$(printf '%s' "$_broken" | awk -F', ' '{ for (i = 1; i <= NF; i++) printf "%s\"%s\"", (i > 1 ? "," : ""), $i }')]}"
  _code=IMDS-ARC-002; _rok=true
  if [ -n "$_codes" ]; then
    # shellcheck disable=SC2086  # split on purpose: the codes of the broken rules
    set -- $_codes
    _code=$1; _rok=false
    _detail=$_first_detail
    [ $# -gt 1 ] && _detail="$_detail; also breaks: ${_broken#*, }"
    _detail="$_detail; not opened"
  elif [ "$_euid" = 0 ] && [ "$(( 0$(printf '%s' "$_mode" | sed 's/^0*//') & 040 ))" = 0 ] 2>/dev/null; then
    _code=IMDS-ARC-029
    _detail="$_realm (mode $_mode, owner $_own, group $_grp) is readable here only because this check runs as root: the himds group has no read permission"
  else
    _detail="$_realm: regular file, $_size bytes, inside $_td, readable"
  fi
  verdict_json "$_code" "$_detail" "$_rok" "$(fmt_ms "$_el")" "$_ev" > "$T/rv"
  _kv=null; _hp=null
  if [ "$_rok" = true ]; then
    _t0=$(now_ms)
    # Read: the same file (device and inode as judged), a regular file, not a symlink, <= 4096 bytes.
    mkdir -p "$T/k" && chmod 700 "$T/k"
    : > "$T/k/auth"; : > "$T/k/sec"; chmod 600 "$T/k/auth" "$T/k/sec"
    _kev="{\"path\":$(jtext "$_realm")}"
    if [ -L "$_realm" ] || [ ! -f "$_realm" ]; then
      _kc=IMDS-ARC-024; _kd="$_realm is no longer a regular file; not read"
    elif [ "$(stat_of "$_realm")" != "$_st" ]; then
      _kc=IMDS-ARC-024; _kd="$_realm was replaced between the check and the read; not read"
    elif ! head -c 4097 -- "$_realm" > "$T/k/raw" 2>/dev/null; then
      _kc=IMDS-ARC-026; _kd="opening $_realm was refused (permission denied)"
    else
      _n=$(wc -c < "$T/k/raw" | tr -d ' ')
      _kev="{\"path\":$(jtext "$_realm"),\"bytes_read\":$_n}"
      if [ "$_n" -gt 4096 ]; then
        _kc=IMDS-ARC-025; _kd="$_realm grew past 4096 bytes while reading; discarded"
      else
        _kres=$(od -An -v -tu1 "$T/k/raw" | awk -v mode=key -v hdr="$T/k/auth" -v secn="$T/k/sec" "$J")
        _kind=$(printf '%s' "$_kres" | cut -f1); _kn=$(printf '%s' "$_kres" | cut -f2); _kp=$(printf '%s' "$_kres" | cut -f3)
        case $_kind in
          OK) _kc=IMDS-ARC-003; _kd="read $_kn characters from $_realm"; KEY_OK=1 ;;
          TRAILING) _kc=IMDS-ARC-027; _kd="$_realm ends with a line break; clients send it verbatim, which makes the Authorization header invalid"; _hp="\"$_kp\"" ;;
          NOT_UTF8) _kc=IMDS-ARC-028; _kd="$_realm is not UTF-8 text ($_kn bytes); clients read it as text" ;;
          *) _kc=IMDS-ARC-028; _kd="$_realm: $_kp" ;;
        esac
      fi
      : > "$T/k/raw"
    fi
    _kok=false; case $_kc in IMDS-ARC-003|IMDS-ARC-027) _kok=true ;; esac
    _kv=$(verdict_json "$_kc" "$_kd" "$_kok" "$(fmt_ms "$(ms_since "$_t0")")" "$_kev")
  fi
  rec arc_keys
  { printf '{"realm":'; jtext "$_realm"; printf ',"tokens_dir":'; jtext "$_td"
    printf ',"realm_verdict":'; cat "$T/rv"; printf ',"key_verdict":%s,"header_problem":%s}' "$_kv" "$_hp"; } >> "$REC_OUT"
}

# --- the digest (--digest): the bundle reduced until it fits in 4,096 bytes ----------------------
# DG: imds_helpers/model/digest.py RULES in awk, `level` 0-5; B64L: od bytes -> base64, 76 a line.
DG='
# The digest engine: the bundle (one line of ASCII JSON, as this script writes it) -> the
# reduced bundle of `level` (imds_helpers/model/digest.py RULES), compact JSON on stdout.
# Strings are kept in their escaped form; "\\" and "\"" become \001 and \002 first, so every
# remaining quote delimits a string (split, no per-character scan). The text of a JSON body is the
# same form one level down: its quotes are \002, its backslashes \001 (\005 = \\, \006 = \").
function emit(s,   k, l) {
  if (TOSTR == 1) BUF = BUF s
  else if (TOSTR == 2) { l = tolower(s); for (k = 1; k <= 2; k++) if (index(l, TXT[k])) FOUND[k] = 1 }
  else printf "%s", s
}
# a kept string, placeholders back to JSON escapes
function wout(s) { w1(s, 1) }
function w1(s, k,   n, a, i) {
  if (k > 4) { emit(s); return }
  n = split(s, a, SEP[k])
  for (i = 1; i <= n; i++) { if (i > 1) emit(SOUT[k]); w1(a[i], k + 1) }
}
# --- tokens and the tree -----------------------------------------------------------------------
function tok_bundle(s,   np, P, i, j, c, t, lit) {
  gsub(/\\\\/, "\001", s); gsub(/\\"/, "\002", s)
  np = split(s, P, "\""); nt = 0
  for (i = 1; i <= np; i++) {
    if (i % 2 == 0) { TT[++nt] = "s"; TV[nt] = P[i]; continue }
    t = P[i]; lit = ""
    for (j = 1; j <= length(t); j++) {
      c = substr(t, j, 1)
      if (index("{}[]:,", c)) { if (lit != "") { TT[++nt] = "v"; TV[nt] = lit; lit = "" } TT[++nt] = c }
      else if (c != " ") lit = lit c
    }
    if (lit != "") { TT[++nt] = "v"; TV[nt] = lit }
  }
  TT[nt + 1] = ""
}
# a JSON text one level down (R form); 0: not JSON as strictjson reads it
function tok_body(s,   np, Q, i, j, c, t, lit, x, u, L) {
  gsub(/\001\001/, "\005", s); gsub(/\001\002/, "\006", s)
  np = split(s, Q, "\002"); nt = 0
  if (np % 2 == 0) return 0
  for (i = 1; i <= np; i++) {
    t = Q[i]
    if (i % 2 == 0) {
      if (t ~ /\\[bfnrt]|\\u00[01]/) return 0          # a raw control character in a string
      x = t; gsub(/\001([\/bfnrt]|u[0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f][0-9A-Fa-f])/, "", x)
      if (index(x, "\001")) return 0
      if (t ~ /\001u[dD][89a-fA-F]/ && !pairs(t)) return 0
      TT[++nt] = "s"; TV[nt] = t; continue
    }
    lit = ""; L = length(t)
    for (j = 1; j <= L; j++) {
      c = substr(t, j, 1)
      if (index("{}[]:,", c)) { if (lit != "") { if (!lit_ok(lit)) return 0; TT[++nt] = "v"; TV[nt] = lit; lit = "" } TT[++nt] = c }
      else if (c == " " || (c == "\\" && index("nrt", substr(t, j + 1, 1)) && j++)) {
        if (lit != "") { if (!lit_ok(lit)) return 0; TT[++nt] = "v"; TV[nt] = lit; lit = "" }
      }
      else if (index("-+.0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", c)) lit = lit c
      else return 0
    }
    if (lit != "") { if (!lit_ok(lit)) return 0; TT[++nt] = "v"; TV[nt] = lit }
  }
  TT[nt + 1] = ""
  return 1
}
function lit_ok(v,   d) {
  if (v == "true" || v == "false" || v == "null") return 1
  if (v !~ /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/) return 0
  if (v ~ /[.eE]/) { d = v + 0; return d - d == 0 && d < 1.7976931348623157e308 && d > -1.7976931348623157e308 }
  return length(v) - (v ~ /^-/) <= 1000
}
# inner \uD800-\uDBFF escapes each followed by \uDC00-\uDFFF, no low half alone
function pairs(t,   r, h) {
  r = t
  while (match(r, /\001u[dD][89a-fA-F][0-9a-fA-F][0-9a-fA-F]/)) {
    h = tolower(substr(r, RSTART + 3, 1)); r = substr(r, RSTART + RLENGTH)
    if (h ~ /[89ab]/) { if (r !~ /^\001u[dD][c-fC-F][0-9a-fA-F][0-9a-fA-F]/) return 0; r = substr(r, 7) }
    else return 0
  }
  return 1
}
# parse TT/TV from tp into nodes; 0 when the grammar is broken or nested deeper than 64
function pv(depth,   id, t, k, c) {
  if (tp > nt) return 0
  t = TT[tp++]; id = ++nn
  if (t == "s" || t == "v") { NT[id] = t; NV[id] = TV[tp - 1]; return id }
  if (t != "{" && t != "[") return 0
  if (depth >= 64) return 0
  NT[id] = (t == "{" ? "o" : "a"); NC[id] = 0
  if (TT[tp] == (t == "{" ? "}" : "]")) { tp++; return id }
  while (1) {
    if (t == "{") { if (TT[tp] != "s" || TT[tp + 1] != ":") return 0; k = TV[tp]; tp += 2 }
    c = pv(depth + 1); if (!c) return 0
    NC[id]++; CH[id, NC[id]] = c; if (t == "{") CK[id, NC[id]] = k
    if (TT[tp] == ",") { tp++; continue }
    if (TT[tp] == (t == "{" ? "}" : "]")) { tp++; return id }
    return 0
  }
}
function parse_body(s, base,   r) { nn = base; tp = 1; if (!tok_body(s)) return 0; r = pv(0); return (r && tp == nt + 1) ? r : 0 }
function child(id, name,   i) { for (i = NC[id]; i >= 1; i--) if (CK[id, i] == name) return CH[id, i]; return 0 }
# --- the JSON of a body, reduced to BODY_READ (written one level down: quotes as \") -----------------
function ser(id,   i) {
  if (NT[id] == "s") { emit("\\\""); wout(NV[id]); emit("\\\""); return }
  if (NT[id] == "v") { emit(NV[id]); return }
  emit(NT[id] == "o" ? "{" : "[")
  for (i = 1; i <= NC[id]; i++) {
    if (i > 1) emit(",")
    if (NT[id] == "o") { emit("\\\""); wout(CK[id, i]); emit("\\\":") }
    ser(CH[id, i])
  }
  emit(NT[id] == "o" ? "}" : "]")
}
function empty(id) { if (NT[id] == "o") emit("{}"); else if (NT[id] == "a") emit("[]"); else if (NT[id] == "s") emit("\\\"\\\""); else emit(NV[id]) }
function scalar(id) { return NT[id] == "v" && NV[id] != "null" }
function keep(id, spec,   i, k, sub1, first, last, n) {
  if (spec == "T") { ser(id); return }
  if (spec == "token") { token(id); return }
  if (spec ~ /^L:/) {
    if (NT[id] != "a") { empty(id); return }
    emit("["); n = NC[id]; if (n > 8) n = 8
    for (i = 1; i <= n; i++) { if (i > 1) emit(","); keep(CH[id, i], substr(spec, 3)) }
    emit("]"); return
  }
  if (NT[id] != "o") { empty(id); return }
  for (i = 1; i <= NC[id]; i++) last[CK[id, i]] = i
  emit("{"); first = 1
  for (i = 1; i <= NC[id]; i++) {
    k = CK[id, i]; if (last[k] != i || !((spec, k) in SK)) continue
    if (!first) emit(",")
    first = 0; emit("\\\""); wout(k); emit("\\\":"); keep(CH[id, i], SK[spec, k])
  }
  if (spec in SCAL) for (i = 1; i <= NC[id]; i++) {
    k = CK[id, i]; if (last[k] != i || (spec, k) in SK || !scalar(CH[id, i])) continue
    if (!first) emit(",")
    first = 0; emit("\\\""); wout(k); emit("\\\":"); ser(CH[id, i])
  }
  if (spec == "top" && LOST != "") { if (!first) emit(","); emit("\\\"imds_runbook_digest\\\":\\\"" LOST "\\\"") }
  emit("}")
}
# a token: header.claims. with only the claims analysis reads (model/claims.DISPLAY_CLAIMS)
function token(id,   v, p, n, i, c, x, bits, s, save, root, cl, k, sm, sb, claims) {
  if (NT[id] != "s" || NV[id] == "") { ser(id); return }
  v = NV[id]; n = split(v, p, /\./)
  if (n != 3 || p[2] !~ /^[A-Za-z0-9_-]*$/ || length(p[2]) % 4 == 1) { emit("\\\"unreadable\\\""); return }
  # base64url -> bytes -> the R form (quote \002, backslash \001, control characters escaped)
  x = 0; bits = 0; s = ""
  for (i = 1; i <= length(p[2]); i++) {
    x = x * 64 + B64[substr(p[2], i, 1)]; bits += 6
    if (bits >= 8) { bits -= 8; c = int(x / 2 ^ bits); x -= c * 2 ^ bits
      s = s (c == 34 ? "\002" : c == 92 ? "\001" : c == 10 ? "\\n" : c == 13 ? "\\r" : c == 9 ? "\\t" : c < 32 ? sprintf("\\u%04x", c) : CH[c]) }
  }
  save = nn; root = parse_body(s, nn)
  if (!root || NT[root] != "o") { nn = save; emit("\\\"unreadable\\\""); return }
  sm = TOSTR; sb = BUF; TOSTR = 1; BUF = "{"; cl = 0
  for (k = 1; k <= NDISP; k++) {
    c = child(root, DISP[k]); if (!c) continue
    if (cl++) emit(",")
    emit("\\\"" DISP[k] "\\\":"); ser(c)
  }
  emit("}"); claims = BUF; TOSTR = sm; BUF = sb; nn = save
  emit("\\\"eyJ0eXAiOiJKV1QifQ." b64url(unesc(claims)) ".\\\"")
}
# text one level down (\" \\ \n \uXXXX) -> byte values in UB[1..nub]
function unesc(s,   i, c, v, L) {
  nub = 0; L = length(s)
  for (i = 1; i <= L; i++) {
    c = substr(s, i, 1)
    if (c != "\\") { UB[++nub] = ORD[c]; continue }
    c = substr(s, ++i, 1)
    if (c == "u") { v = hex(substr(s, i + 1, 4)); i += 4
      if (v < 128) UB[++nub] = v
      else if (v < 2048) { UB[++nub] = 192 + int(v / 64); UB[++nub] = 128 + v % 64 }
      else { UB[++nub] = 224 + int(v / 4096); UB[++nub] = 128 + int(v / 64) % 64; UB[++nub] = 128 + v % 64 } }
    else UB[++nub] = (c == "n" ? 10 : c == "r" ? 13 : c == "t" ? 9 : c == "b" ? 8 : c == "f" ? 12 : ORD[c])
  }
  return nub
}
function hex(h,   i, v) { v = 0; h = tolower(h); for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1; return v }
function b64url(n,   i, v, o) {
  o = ""
  for (i = 1; i + 2 <= n; i += 3) { v = UB[i] * 65536 + UB[i + 1] * 256 + UB[i + 2]
    o = o substr(A, int(v / 262144) + 1, 1) substr(A, int(v / 4096) % 64 + 1, 1) substr(A, int(v / 64) % 64 + 1, 1) substr(A, v % 64 + 1, 1) }
  if (n - i + 1 == 1) { v = UB[i] * 65536; o = o substr(A, int(v / 262144) + 1, 1) substr(A, int(v / 4096) % 64 + 1, 1) }
  if (n - i + 1 == 2) { v = UB[i] * 65536 + UB[i + 1] * 256; o = o substr(A, int(v / 262144) + 1, 1) substr(A, int(v / 4096) % 64 + 1, 1) substr(A, int(v / 64) % 64 + 1, 1) }
  return o
}
# --- texts: sizes and cuts on the escaped form -----------------------------------------------
# the size of an escaped text in UTF-8 bytes (cp=0) or in characters (cp=1)
function size(s, cp,   u1, u2, us, u3, e2) {
  u1 = gsub(/\\u00[0-7][0-9a-fA-F]/, "", s); u2 = gsub(/\\u0[0-7][0-9a-fA-F][0-9a-fA-F]/, "", s)
  us = gsub(/\\u[dD][89a-fA-F][0-9a-fA-F][0-9a-fA-F]/, "", s); u3 = gsub(/\\u[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]/, "", s)
  e2 = gsub(/\\./, "", s)
  return cp ? length(s) + u1 + u2 + us / 2 + u3 + e2 : length(s) + u1 + 2 * u2 + 2 * us + 3 * u3 + e2
}
# the longest start of s within `lim` bytes (cp=0) or characters (cp=1), never inside a character
function head(s, lim, cp,   i, c, v, w, n, L) {
  n = 0; i = 1; L = length(s)
  while (i <= L) {
    c = substr(s, i, 1); w = 1; v = 1
    if (c == "\\") { w = 2
      if (substr(s, i + 1, 1) == "u") { w = 6; v = hex(substr(s, i + 2, 4))
        if (v >= 55296 && v < 56320) { w = 12; v = cp ? 1 : 4 } else v = cp ? 1 : (v < 128 ? 1 : v < 2048 ? 2 : 3) }
      else v = 1 }
    if (n + v > lim) break
    n += v; i += w
  }
  return substr(s, 1, i - 1)
}
# a body that is not JSON: its start and the texts the checks search for (digest._cut_body)
function cut_text(s, lim,   low, kept, t, k, c) {
  if (size(s, 0) <= lim) return s
  low = tolower(s); kept = ""
  for (k = 1; k <= 2; k++) { t = TXT[k]; if (index(low, t) && !index(head(low, lim, 0), t)) kept = kept (kept == "" ? "" : " ") t }
  c = head(s, lim - length(kept) - 1, 0) (kept == "" ? "" : " " kept)
  CUT = 1
  if (jparse(c)) c = substr(c, 1, length(c) - length(head_last(c))) "~"
  return c
}
# the last character of an escaped text (as written)
function head_last(s,   i, c, last) { last = ""; i = 1
  while (i <= length(s)) { c = substr(s, i, 1); w = (c == "\\" ? (substr(s, i + 1, 1) == "u" ? 6 : 2) : 1)
    if (w == 6 && hex(substr(s, i + 2, 4)) >= 55296 && hex(substr(s, i + 2, 4)) < 56320) w = 12
    last = substr(s, i, w); i += w }
  return last }
function cut_b64(s, lim,   i, c, x, bits, low, kept, k, t, o, orig) {
  orig = s; sub(/=+$/, "", s)
  if (int(length(s) * 3 / 4) <= lim) return orig
  x = 0; bits = 0; low = ""; o = ""; nub = 0
  for (i = 1; i <= length(s); i++) {
    x = x * 64 + B64[substr(s, i, 1)]; bits += 6
    if (bits >= 8) { bits -= 8; c = int(x / 2 ^ bits); x -= c * 2 ^ bits
      if (nub < lim) UB[++nub] = c
      o = o (c >= 65 && c <= 90 ? CH[c + 32] : c >= 32 && c < 127 ? CH[c] : "_")
      if (length(o) >= 4096) { low = low o; o = "" } }
  }
  low = low o; kept = ""
  for (k = 1; k <= 2; k++) { t = TXT[k]; if (index(low, t) && !index(substr(low, 1, lim), t)) kept = kept (kept == "" ? "" : " ") t }
  nub = lim - length(kept) - 1
  if (kept != "") { UB[++nub] = 32; for (k = 1; k <= length(kept); k++) UB[++nub] = ORD[substr(kept, k, 1)] }
  CUT = 1
  o = ""; for (k = 1; k <= nub; k++) o = o (UB[k] == 34 ? "\001\002" : UB[k] == 92 ? "\001\001" : UB[k] >= 32 && UB[k] < 127 ? CH[UB[k]] : "\\u00ff")
  if (jparse(o)) UB[nub] = 126
  return b64(nub)
}
function b64(n,   i, v, o) {
  o = b64url(n); gsub(/-/, "+", o); gsub(/_/, "/", o)
  return o substr("==", 1, (3 - n % 3) % 3)
}
# --- firewall lines for other destinations (digest._other_destination) ------------------------
function ip4(a,   p, n, i, v) {
  n = split(a, p, "."); if (n != 4) return -1
  v = 0; for (i = 1; i <= 4; i++) { if (p[i] !~ /^[0-9]+$/ || p[i] + 0 > 255) return -1; v = v * 256 + p[i] }
  return v
}
function other(line,   r, m, val, it, n, k, ip, bits, net, a) {
  if (ADDR < 0) return 0
  r = line; a = 0
  while (match(r, /(![ \t]+)?(-d|--destination|--dst|daddr)[ \t]+(![ \t]*)?[^ \t]+/)) {
    m = substr(r, RSTART, RLENGTH); r = substr(r, RSTART + RLENGTH); a = 1
    if (m ~ /^!/ || m ~ /(-d|--destination|--dst|daddr)[ \t]+!/) return 0
    val = m; sub(/^.*(-d|--destination|--dst|daddr)[ \t]+/, "", val); gsub(/^[{]+|[}]+$/, "", val)
    n = split(val, it, ",")
    for (k = 1; k <= n; k++) {
      gsub(/^[ \t]+|[ \t]+$/, "", it[k])
      if (index(it[k], ":")) continue                # an IPv6 network never holds an IPv4 address
      bits = 32; ip = it[k]
      if (index(ip, "/")) { bits = substr(ip, index(ip, "/") + 1); ip = substr(ip, 1, index(ip, "/") - 1)
        if (bits !~ /^[0-9]+$/ || bits + 0 > 32) return 0 }
      ip = ip4(ip); if (ip < 0) return 0
      net = 2 ^ (32 - bits)
      if (int(ip / net) == int(ADDR / net)) return 0
    }
  }
  return a
}
# the endpoint address (digest._address): the firewall lines worth keeping are those that reach it
function address(p,   e, h) {
  e = child(p, "endpoint")
  if (e && NT[e] == "s") { h = NV[e]; sub(/^[A-Za-z]+:\/\//, "", h); sub(/[\/?#].*$/, "", h); sub(/^.*@/, "", h)
    if (h ~ /^\[/) { sub(/\].*$/, "", h); h = substr(h, 2) } else sub(/:[0-9]*$/, "", h)
    if (tolower(h) == "localhost") return "127.0.0.1"
    if (h != "") return h }
  return NV[child(p, "target")] == "arc" ? "127.0.0.1" : "169.254.169.254"
}
function cut_out(s, lim,   L, n, i, o) {
  if (size(s, 1) <= lim) return s
  n = split(s, L, /\\n/); o = ""
  for (i = 1; i <= n; i++) if (!other(L[i])) o = o (o == "" && i == 1 ? "" : "\\n") L[i]
  if (size(o, 1) <= lim) return o
  return head(o, lim, 1)
}
# --- the bundle -------------------------------------------------------------------------------
function kv(id, i) { emit("\"" CK[id, i] "\":") }
function str(s) { emit("\""); wout(s); emit("\"") }
function raw(id,   i) {
  if (NT[id] == "s") { str(NV[id]); return }
  if (NT[id] == "v") { emit(NV[id]); return }
  emit(NT[id] == "o" ? "{" : "[")
  for (i = 1; i <= NC[id]; i++) { if (i > 1) emit(","); if (NT[id] == "o") kv(id, i); raw(CH[id, i]) }
  emit(NT[id] == "o" ? "}" : "]")
}
# level 5: strings at most 24 bytes of JSON, free maps and lists 4 items, numbers within 1e12
function capped(id, free, lim,   i, n, v) {
  if (NT[id] == "s") { str(cap24(NV[id], lim)); return }
  if (NT[id] == "v") { v = NV[id]; if (v !~ /^[tfn]/ && (v + 0 > 1e12 || v + 0 < -1e12)) v = (v + 0 > 0 ? "" : "-") "1000000000000"; emit(v); return }
  if (NT[id] == "a" && lim > 24) { emit("["); n = 0     # a parameter longer than lim: dropped, not cut
    for (i = 1; i <= NC[id] && n < 4; i++) if (!long(CH[id, i], lim)) { if (n++) emit(","); capped(CH[id, i], 0, lim) }
    emit("]"); return }
  n = NC[id]; if ((NT[id] == "a" || free) && n > 4) n = 4
  emit(NT[id] == "o" ? "{" : "[")
  for (i = 1; i <= n; i++) { if (i > 1) emit(","); if (NT[id] == "o") { if (free) str(cap24(CK[id, i], 24)); else emit("\"" CK[id, i] "\""); emit(":") }
    capped(CH[id, i], NT[id] == "o" && CK[id, i] == "users", lim) }
  emit(NT[id] == "o" ? "}" : "]")
}
function long(id, lim,   i) { if (NT[id] == "s") return length(NV[id]) > lim
  for (i = 1; i <= NC[id]; i++) if (long(CH[id, i], lim)) return 1
  return 0 }
function cap24(s, lim,   i, c, w, n, L) { n = 0; i = 1; L = length(s)
  while (i <= L) { c = substr(s, i, 1); w = 1
    if (c == "\\") w = (substr(s, i + 1, 1) == "u" ? (hex(substr(s, i + 2, 4)) >= 55296 && hex(substr(s, i + 2, 4)) < 56320 ? 12 : 6) : 2)
    else if (c == "\001" || c == "\002") w = 1
    if (n + (c == "\001" || c == "\002" ? 2 : w) > lim) break
    n += (c == "\001" || c == "\002" ? 2 : w); i += w }
  return substr(s, 1, i - 1) }
# a JSON text (a leading BOM dropped, as utf-8-sig decoding does): its root node, or 0
function jparse(b) { if (substr(b, 1, 6) == "\\ufeff") b = substr(b, 7); return parse_body(b, NB) }
function http(id,   i, k, c, body, enc, j, n, first, a, st, jb, low) {
  body = NV[child(id, "body")]; enc = NV[child(id, "body_encoding")]; CUT = 0; LOST = ""; jb = 0
  st = (level >= 4 ? 64 : level >= 2 ? 128 : 512)
  if (enc == "base64") body = cut_b64(body, st)
  else if ((jb = jparse(body))) {
    # the texts a check searches for in the raw body stay findable (digest._read_fields)
    low = tolower(body); FOUND[1] = FOUND[2] = 0; TOSTR = 2; keep(jb, "top"); TOSTR = 0
    for (k = 1; k <= 2; k++) if (index(low, TXT[k]) && !FOUND[k]) LOST = LOST (LOST == "" ? "" : " ") TXT[k]
  }
  else body = cut_text(body, st)
  emit("{")
  for (i = 1; i <= NC[id]; i++) {
    k = CK[id, i]; c = CH[id, i]
    if (i > 1) emit(",")
    kv(id, i)
    if (k == "body") { if (jb) { emit("\""); keep(jb, "top"); emit("\"") } else str(body) }
    else if (k == "body_truncated") emit(CUT ? "true" : NV[c])
    else if (k == "headers" && level >= 1) {
      emit("["); first = 1
      for (j = 1; j <= NC[c]; j++) { a = CH[c, j]; if (NC[a] != 2 || tolower(NV[CH[a, 1]]) !~ /^(content-type|server|www-authenticate|retry-after)$/) continue
        if (!first) emit(","); first = 0; raw(a) }
      emit("]")
    }
    else if (k == "attempts") {
      emit("["); n = NC[c]; j = (level >= 4 && n > 4 ? n - 3 : 1); first = 1
      for (; j <= n; j++) { if (!first) emit(","); first = 0; attempt(CH[c, j]) }
      emit("]")
    }
    else raw(c)
  }
  emit("}")
}
function attempt(id,   i, k) {
  emit("{")
  for (i = 1; i <= NC[id]; i++) {
    k = CK[id, i]; if (i > 1) emit(","); kv(id, i)
    if (k == "body_excerpt") emit("\"\"")
    else if ((k == "headers" || k == "phases") && level >= 1) emit("{}")
    else raw(CH[id, i])
  }
  emit("}")
}
function command(id,   i, k, lim) {
  lim = (level >= 1 ? 512 : 2048); emit("{")
  for (i = 1; i <= NC[id]; i++) {
    k = CK[id, i]; if (i > 1) emit(","); kv(id, i)
    if ((k == "stdout" || k == "stderr") && NT[CH[id, i]] == "s") str(cut_out(NV[CH[id, i]], lim))
    else raw(CH[id, i])
  }
  emit("}")
}
function file(id,   i, k) {
  emit("{")
  for (i = 1; i <= NC[id]; i++) {
    k = CK[id, i]; if (i > 1) emit(","); kv(id, i)
    if (k == "text" && level >= 1 && NT[CH[id, i]] == "s") str(head(NV[CH[id, i]], 256, 1))
    else raw(CH[id, i])
  }
  emit("}")
}
function arckey(id,   i, k, c, j) {
  emit("{")
  for (i = 1; i <= NC[id]; i++) {
    k = CK[id, i]; c = CH[id, i]; if (i > 1) emit(","); kv(id, i)
    if ((k == "realm_verdict" || k == "key_verdict") && NT[c] == "o" && level >= 1) {
      emit("{"); for (j = 1; j <= NC[c]; j++) { if (j > 1) emit(","); kv(c, j); if (CK[c, j] == "evidence") emit("{}"); else raw(CH[c, j]) } emit("}")
    }
    else raw(c)
  }
  emit("}")
}
function records(kind, id,   i, n, first, r) {
  emit("["); first = 1
  n = NC[id]; if (level >= 4 && n > 16) n = 16; if (level >= 5) n = 0
  if (kind == "commands" && level >= 2) n = 0
  if (kind == "files" && level >= 3) n = 0
  for (i = 1; i <= n; i++) {
    r = CH[id, i]
    if (kind == "files" && level >= 2 && NV[child(r, "op")] == "read") continue
    if (!first) emit(","); first = 0
    if (kind == "http") http(r); else if (kind == "commands") command(r); else if (kind == "files") file(r)
    else if (kind == "arc_keys") arckey(r); else raw(r)
  }
  emit("]")
}
BEGIN {
  for (i = 0; i < 256; i++) { CH[i] = sprintf("%c", i); ORD[CH[i]] = i }
  A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
  for (i = 0; i < 64; i++) B64[substr(A, i + 1, 1)] = i
  B64["+"] = 62; B64["/"] = 63
  SEP[1] = "\001"; SOUT[1] = "\\\\"; SEP[2] = "\002"; SOUT[2] = "\\\""
  SEP[3] = "\005"; SOUT[3] = "\\\\\\\\"; SEP[4] = "\006"; SOUT[4] = "\\\\\\\""
  TXT[1] = "unreachable"; TXT[2] = "x-forwarded-for"
  NDISP = split("aud iss tid oid appid xms_mirid idtyp iat nbf exp", DISP, " ")
  n = split("vmId name location resourceId azEnvironment osType vmSize sku", f, " ")
  for (i = 1; i <= n; i++) SK["compute", f[i]] = "T"
  SCAL["compute"] = 1
  n = split("apiVersions newest-versions error error_description token_type resource expires_in expires_on client_id object_id msi_res_id mi_res_id", f, " ")
  for (i = 1; i <= n; i++) SK["top", f[i]] = "T"
  SK["top", "compute"] = "compute"; SK["top", "network"] = "network"; SK["top", "access_token"] = "token"
  SK["network", "interface"] = "L:iface"; SK["iface", "ipv4"] = "ipv4"; SK["ipv4", "ipAddress"] = "L:ipaddr"
  SK["ipaddr", "privateIpAddress"] = "T"
}
{ doc = doc $0 }
END {
  tok_bundle(doc); doc = ""; nn = 0; tp = 1; root = pv(0); NB = nn
  if (!root || NT[root] != "o") exit 3
  ADDR = ip4(address(child(root, "parameters")))
  emit("{")
  for (i = 1; i <= NC[root]; i++) {
    k = CK[root, i]; c = CH[root, i]
    if (i > 1) emit(",")
    kv(root, i)
    if (k ~ /^(commands|files|tcp|http|arc_keys)$/) records(k, c)
    # the parameters of the run are read back as arguments (a GUID cut short is no GUID): at most
    # 160 characters a string, 4 items a list, longer items dropped
    else if (level >= 5) capped(c, k == "environment" || k == "proxy_url_problems", k == "parameters" ? 160 : 24)
    else raw(c)
  }
  emit("}\n")
}
'
B64L='
BEGIN { A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"; n = 0; line = "" }
{ for (i = 1; i <= NF; i++) { v = v * 256 + $i; if (++n == 3) { put(v); v = 0; n = 0 } } }
function put(v) { line = line substr(A, int(v / 262144) + 1, 1) substr(A, int(v / 4096) % 64 + 1, 1) substr(A, int(v / 64) % 64 + 1, 1) substr(A, v % 64 + 1, 1)
  if (length(line) == 76) { print line; line = "" } }
END {
  if (n == 1) { v = v * 65536; line = line substr(A, int(v / 262144) + 1, 1) substr(A, int(v / 4096) % 64 + 1, 1) "==" }
  if (n == 2) { v = v * 256; line = line substr(A, int(v / 262144) + 1, 1) substr(A, int(v / 4096) % 64 + 1, 1) substr(A, int(v / 64) % 64 + 1, 1) "=" }
  if (length(line) > 76) { print substr(line, 1, 76); line = substr(line, 77) }
  if (line != "") print line
}
'

# digest_out BUNDLE-FILE: the least reduced level whose text fits (level 5 always does: no records,
# every string capped), as digest.md says: BEGIN line, base64 of gzip -9 -n, END line with the
# gzip length, its POSIX cksum and the level.
digest_out() {
  for _lv in 0 1 2 3 4 5; do
    awk -v level="$_lv" "$DG" "$1" > "$T/d.json" || die "--digest: $2 is not a bundle this script wrote"
    gzip -9 -n -c < "$T/d.json" > "$T/d.gz" || die "--digest: gzip failed"
    _n=$(wc -c < "$T/d.gz" | tr -d ' '); _c=$(cksum < "$T/d.gz"); _c=${_c%% *}
    { echo "IMDS-DIGEST 1 BEGIN"; od -An -v -tu1 "$T/d.gz" | awk "$B64L"
      echo "IMDS-DIGEST 1 END bytes=$_n cksum=$_c level=$_lv"; } > "$T/d.txt"
    if [ "$(wc -c < "$T/d.txt" | tr -d ' ')" -le 4096 ]; then cat "$T/d.txt"; return 0; fi
  done
  die "--digest: even level 5 does not fit in 4096 bytes"
}

# --- the steps ------------------------------------------------------------------------------------
TARGET=auto; ENDPOINT=""; RESOURCES=""; IDS=""; TOKENS_DIR=""; TIMEOUT=""; DIGEST=0; DIGEST_OF=""
need() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi; }
guid_ok() { printf '%s' "$1" | grep -Eqi '^\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?$'; }
while [ $# -gt 0 ]; do
  case $1 in
    --target) need "$@"; TARGET=$2; shift ;;
    --endpoint) need "$@"; ENDPOINT=$2; shift ;;
    --resource) need "$@"; RESOURCES="$RESOURCES$2
"; shift ;;
    --client-id|--object-id) need "$@"; guid_ok "$2" || die "$1: not a GUID"; IDS="$IDS$(echo "${1#--}" | tr - _) $2
"; shift ;;
    --msi-res-id) need "$@"; case $2 in /subscriptions/*) ;; *) die "--msi-res-id: not an Azure resource ID (/subscriptions/...)" ;; esac
      case $2 in *' '*) die "--msi-res-id: contains a space" ;; esac
      IDS="${IDS}msi_res_id $2
"; shift ;;
    --tokens-dir) need "$@"; TOKENS_DIR=$2; shift ;;
    --timeout) need "$@"; TIMEOUT=$2; shift ;;
    --digest) DIGEST=1 ;;
    --digest-of) need "$@"; DIGEST_OF=$2; shift ;;
    -h|--help) sed -n '2,19p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$(printf '%s' "$1" | tr -c '[:print:]' '?' | cut -c1-60)' (see --help)" ;;
  esac
  shift
done
case $TARGET in auto|vm|arc) ;; *) die "--target: must be one of auto, vm, arc" ;; esac
command -v curl >/dev/null 2>&1 || die "curl is needed and was not found"
command -v od >/dev/null 2>&1 || die "od is needed and was not found"
if [ "$DIGEST" = 1 ] || [ -n "$DIGEST_OF" ]; then
  command -v gzip >/dev/null 2>&1 || die "--digest: gzip is needed and was not found (without it, collect the whole bundle)"
  command -v cksum >/dev/null 2>&1 || die "--digest: cksum is needed and was not found"
fi

norm_endpoint() {   # VALUE ARGUMENT -> the normalised base URL, or exit 2
  printf '%s' "$1" | awk -v arg="$2" '{
    v = $0; sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v)
    if (v ~ /@/) { print "E" arg ": no user name or password, give only scheme, host and port"; exit }
    if (!match(v, /^[A-Za-z]+:\/\//)) { print "E" arg ": expected http://HOST[:PORT]"; exit }
    s = tolower(substr(v, 1, RLENGTH - 3)); r = substr(v, RLENGTH + 1)
    if (s != "http" && s != "https") { print "E" arg ": expected http://HOST[:PORT]"; exit }
    sub(/\/$/, "", r)
    if (r ~ /[\/?# \t]/ || r == "") { print "E" arg ": give only scheme, host and port"; exit }
    port = ""
    if (r ~ /^\[/) { if (!match(r, /^\[[0-9A-Fa-f:.]+\]/)) { print "E" arg ": an IPv6 address in [ ] is unclosed or invalid"; exit }
      h = tolower(substr(r, 1, RLENGTH)); rest = substr(r, RLENGTH + 1) }
    else { h = r; rest = ""; i = index(r, ":"); if (i) { h = substr(r, 1, i - 1); rest = substr(r, i) } h = tolower(h) }
    if (rest != "") { if (rest !~ /^:[0-9]+$/ || substr(rest, 2) + 0 < 1 || substr(rest, 2) + 0 > 65535) { print "E" arg ": port is not a number in 1-65535"; exit }
      port = ":" (substr(rest, 2) + 0) }
    if (h == "") { print "E" arg ": expected http://HOST[:PORT]"; exit }
    print s "://" h port }'
}
PARAM_ENDPOINT=null
if [ -n "$ENDPOINT" ]; then
  EP=$(norm_endpoint "$ENDPOINT" --endpoint)
  case $EP in E*) die "${EP#E}" ;; esac
  ENDPOINT=$EP
fi
if [ -n "$TIMEOUT" ]; then
  awk -v t="$TIMEOUT" 'BEGIN { exit !(t ~ /^[0-9]+(\.[0-9]+)?$/ && t + 0 > 0 && t + 0 <= 3600) }' || die "--timeout: must be a number of seconds > 0 and <= 3600"
  CT=$(awk -v t="$TIMEOUT" 'BEGIN { print (t < 2 ? t + 0 : 2) }'); RT=$(awk -v t="$TIMEOUT" 'BEGIN { print (t < 5 ? t + 0 : 5) }'); TOTAL=$(awk -v t="$TIMEOUT" 'BEGIN { print t + 0 }')
  CT_MS=$(awk -v t="$CT" 'BEGIN { printf "%d", t * 1000 }'); RT_MS=$(awk -v t="$RT" 'BEGIN { printf "%d", t * 1000 }')
  TOTAL_MS=$(awk -v t="$TOTAL" 'BEGIN { printf "%d", t * 1000 }')
else
  CT=2; RT=5; TOTAL=10; CT_MS=2000; RT_MS=5000; TOTAL_MS=10000
fi
[ -n "$RESOURCES" ] || RESOURCES="https://management.azure.com/
https://monitor.azure.com/
"
printf '%s' "$RESOURCES" | while IFS= read -r _r; do
  case $_r in https://?*|http://?*) ;; *) die "--resource: must be an http(s) URI such as https://management.azure.com/" ;; esac
  case $_r in *[[:space:]]*|*'"'*|*\\*) die "--resource: contains a space, quote or backslash" ;; esac
done || exit 2

umask 077     # every file made here (the Arc key's header file among them) is 0600, the folder 0700
T=$(mktemp -d 2>/dev/null) || die "mktemp -d failed"
chmod 700 "$T"
trap 'rm -rf "$T"' EXIT
trap 'exit 2' HUP INT TERM
# --digest-of FILE: the digest of a bundle this script wrote before (nothing is sent)
if [ -n "$DIGEST_OF" ]; then
  if [ ! -f "$DIGEST_OF" ] || [ ! -r "$DIGEST_OF" ]; then die "--digest-of: cannot read $(printf '%s' "$DIGEST_OF" | tr -c '[:print:]' '?' | cut -c1-80)"; fi
  [ "$(head -c 31 "$DIGEST_OF")" = '{"kind":"imds-runbook/evidence"' ] || die "--digest-of: not a bundle this script wrote (it starts with {\"kind\":\"imds-runbook/evidence\")"
  digest_out "$DIGEST_OF" "--digest-of's file"
  exit 0
fi
TIMEOUT_BIN=""; command -v timeout >/dev/null 2>&1 && TIMEOUT_BIN=timeout
STAT_BIN=""
for k in commands files tcp http arc_keys; do : > "$T/r.$k"; done
# the host commands that depend on nothing, started now (run_cmd --pre records them in order)
prefetch systemctl systemctl show himdsd --property=LoadState,ActiveState,SubState
prefetch iptables iptables-save
prefetch nft nft list ruleset
STARTED_MS=$(now_ms)
UP0=x; if up_cs; then UP0=$UP; else UP0=""; fi
STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%S.000+00:00)

# --- step 1: the platform -------------------------------------------------------------------------
for f in chassis_asset_tag sys_vendor product_name product_uuid; do read_file "/sys/class/dmi/id/$f" 512; done
ASSET_TAG=$( { tr -d ' \n\r\t' < /sys/class/dmi/id/chassis_asset_tag; } 2>/dev/null)
SMBIOS=null
[ -r /sys/class/dmi/id/product_uuid ] && SMBIOS=$(head -c 512 /sys/class/dmi/id/product_uuid 2>/dev/null | tr -d ' \n\r\t' | tr -cd 'A-Za-z0-9-' | sed 's/.*/"&"/')
[ -n "$SMBIOS" ] || SMBIOS=null
path_kind /sys/firmware; [ "$KIND" = dir ] && path_kind /sys/firmware/efi
path_kind /opt/azcmagent/bin/himds; HIMDS_INSTALLED=$KIND
run_cmd --pre systemctl systemctl show himdsd --property=LoadState,ActiveState,SubState
HIMDS_RUNNING=0; grep -q '^ActiveState=active' "$CMD_OUT" && HIMDS_RUNNING=1
path_kind /.dockerenv; path_kind /run/.containerenv
read_file /proc/1/cgroup 65536; read_file /proc/self/cgroup 65536

# The endpoint (detect_platform): --endpoint, IMDS_RUNBOOK_ENDPOINT, the target's address.
IMDS_EP=${IMDS_ENDPOINT:-}
arc_default() {
  _v=$(printf '%s' "$IMDS_EP" | sed 's/^[ \t]*//;s/[ \t]*$//')
  if [ -n "$_v" ]; then _e=$(norm_endpoint "$_v" IMDS_ENDPOINT); case $_e in E*) echo http://localhost:40342 ;; *) echo "$_e" ;; esac
  else echo http://localhost:40342; fi
}
EXPLICIT=""
if [ -n "$ENDPOINT" ]; then EXPLICIT=$ENDPOINT; PARAM_ENDPOINT=$ENDPOINT
elif [ -n "$(printf '%s' "${IMDS_RUNBOOK_ENDPOINT:-}" | tr -d ' \t')" ]; then
  EXPLICIT=$(norm_endpoint "$IMDS_RUNBOOK_ENDPOINT" IMDS_RUNBOOK_ENDPOINT)
  case $EXPLICIT in E*) die "${EXPLICIT#E}" ;; esac
fi
IS_VM=0; [ "$ASSET_TAG" = 7783-7084-3265-9085-8269-3286-77 ] && IS_VM=1
IS_ARC=0; [ "$HIMDS_INSTALLED" = file ] && IS_ARC=1
case ${IDENTITY_ENDPOINT:-} in ?*) [ -n "$IMDS_EP" ] && [ -z "${IDENTITY_HEADER:-}" ] && case $IMDS_EP in *:40342|*:40342/*) IS_ARC=1 ;; esac ;; esac
if [ -n "$EXPLICIT" ]; then
  EP=$EXPLICIT; TGT=$TARGET
  if [ "$TGT" = auto ]; then
    TGT=vm
    case $EXPLICIT in *:40342) TGT=arc ;; esac
    [ -n "$IMDS_EP" ] && [ "$(printf '%s' "$IMDS_EP" | sed 's:/*$::')" = "$EXPLICIT" ] && TGT=arc
  fi
elif [ "$TARGET" = vm ]; then EP=http://169.254.169.254; TGT=vm
elif [ "$TARGET" = arc ]; then EP=$(arc_default); TGT=arc
elif [ $IS_ARC = 1 ] && { [ $IS_VM = 0 ] || [ $HIMDS_RUNNING = 1 ]; }; then EP=$(arc_default); TGT=arc
else EP=http://169.254.169.254; TGT=vm; fi
[ -n "$TOKENS_DIR" ] || TOKENS_DIR=/var/opt/azcmagent/tokens

# --- step 3: the network --------------------------------------------------------------------------
HOSTPART=${EP#*://}; PORT=
case $HOSTPART in
  \[*\]:*) HOST=${HOSTPART%%]*}; HOST="${HOST#[}"; PORT=${HOSTPART##*]:} ;;
  \[*\]) HOST=${HOSTPART#[}; HOST=${HOST%]} ;;
  *:*) HOST=${HOSTPART%%:*}; PORT=${HOSTPART#*:} ;;
  *) HOST=$HOSTPART ;;
esac
if [ -z "$PORT" ]; then case $EP in https:*) PORT=443 ;; *) PORT=80 ;; esac; fi
LOOPBACK=0
case $HOST in localhost|LOCALHOST|127.*|::1|0:0:0:0:0:0:0:1) LOOPBACK=1 ;; esac
if [ $LOOPBACK = 0 ]; then
  run_cmd ip route get "$HOST"
  if [ "$CMD_ERR" = null ]; then run_cmd ip route show; else read_file /proc/net/route 65536; fi
  for g in '/run/systemd/netif/leases/*' '/var/lib/dhcp/dhclient*.lease*' '/var/lib/dhclient/*.lease*' '/var/lib/NetworkManager/*.lease'; do
    glob_rec "$g"
    printf '%s' "$GLOBBED" | while IFS= read -r p; do [ -n "$p" ] && read_file "$p" 65536; done
  done
fi
tcp_probe "$HOST" "$PORT" "$CT"
run_cmd --pre iptables iptables-save
OWNERS=$(sed -n 's/.*--uid-owner \([^ ]*\).*/\1/p' "$CMD_OUT")
if [ "$CMD_ERR" = '"not_found"' ]; then
  for t in filter nat mangle raw; do run_cmd iptables -t "$t" -S; OWNERS="$OWNERS $(sed -n 's/.*--uid-owner \([^ ]*\).*/\1/p' "$CMD_OUT")"; done
fi
run_cmd --pre nft nft list ruleset
OWNERS="$OWNERS $(sed -n 's/.*skuid \([^ ]*\).*/\1/p' "$CMD_OUT")"
USERS=""
case $OWNERS in *[A-Za-z_]*) ;; *) OWNERS="" ;; esac   # no name: nothing to look up
for o in $(printf '%s' "$OWNERS" | tr ' ' '\n' | tr '-' '\n' | grep -v '^[0-9]*$' | grep -E '^[A-Za-z_][A-Za-z0-9_.-]*$' | sort -u); do
  u=$(id -u "$o" 2>/dev/null) && USERS="$USERS${USERS:+,}\"$o\":$u"
done

# --- steps 4-6: the HTTP exchanges ----------------------------------------------------------------
BASE=$EP
unusable() { case $H_ERROR in read_timeout|connection_reset|deadline_exceeded|bad_payload|oversized_payload|transport_error) return 0 ;; esac; return 1; }
VMID=null; RESID=null
identity_from() {   # the first 200 instance document names this host (collect/__init__.py _identity)
  if [ "$VMID" != null ] || [ "$H_STATUS" != 200 ] || [ "$H_ERROR" != null ]; then return 0; fi
  _v=$(json_field vmId "$T/$AB"); _r=$(json_field resourceId "$T/$AB")
  [ -n "$_v" ] && [ -n "$_r" ] && { VMID=$(jtext "$_v"); RESID=$(jtext "$_r"); }
  return 0
}
instance() {   # SERVICE
  request "$BASE/metadata/instance?api-version=2019-11-01&format=json" vm
  identity_from
  if [ "$H_STATUS" = 400 ] && [ "$H_ERROR" = null ]; then
    NEWEST=$(json_list newest-versions "$T/$AB" | head -n 1)
    [ -n "$NEWEST" ] && { request "$BASE/metadata/instance?api-version=$(urlenc "$NEWEST")&format=json" vm; identity_from; }
  fi
  if [ "$1" = vm ] && [ "$H_ERROR" = null ] && [ "${H_STATUS#2}" != "$H_STATUS" ]; then
    _keep_status=$H_STATUS; _keep_error=$H_ERROR
    request "$BASE/metadata/versions" vm
    if [ "$H_ERROR" = null ] && [ "${H_STATUS#2}" != "$H_STATUS" ]; then
      NEWEST=$(json_list apiVersions "$T/$AB" | sort | tail -n 1)
      [ -n "$NEWEST" ] && request "$BASE/metadata/instance?api-version=$(urlenc "$NEWEST")&format=json" vm
    fi
    H_STATUS=$_keep_status; H_ERROR=$_keep_error
  fi
}
token_url() {  # API RESOURCE [SELECTOR VALUE]
  _q="api-version=$1&resource=$(urlenc "$2")"
  [ $# -ge 4 ] && _q="$_q&$3=$(urlenc "$4")"
  echo "$BASE/metadata/identity/oauth2/token?$_q"
}

if [ "$TCP_OK" = 1 ] || { [ "$TGT" = arc ] && [ "$TCP_KIND" = connect_refused ]; }; then
  if [ "$TGT" = arc ]; then
    read_file /lib/systemd/system.conf.d/azcmagent.conf 65536
    [ "$TCP_OK" = 1 ] && instance arc
    if [ "$TCP_OK" = 0 ] || ! unusable; then
      R1=$(printf '%s' "$RESOURCES" | head -n 1)
      SEL=$(printf '%s' "$IDS" | head -n 1)
      if [ -n "$SEL" ]; then URL=$(token_url 2020-06-01 "$R1" "${SEL% *}" "${SEL#* }"); else URL=$(token_url 2020-06-01 "$R1"); fi
      request "$URL" challenge
      if [ "$H_STATUS" = 401 ]; then
        REALM=$(awk '{ sub(/\r$/, "") } /^HTTP\// { v = ""; n = 0 } tolower($0) ~ /^www-authenticate:/ { sub(/^[^:]*:[ \t]*/, ""); v = (n++ ? v ", " $0 : $0) } END { printf "%s", v }' "$T/$AH" |
          awk '{ s = $0; sub(/^[ \t\r\n]+/, "", s); sub(/[ \t\r\n]+$/, "", s); i = index(s, "="); if (!i) exit
            if (tolower(substr(s, 1, i - 1)) != "basic realm") exit
            r = substr(s, i + 1); if (r == "" || index(r, "=") || r ~ /^["\047]/ || r ~ /["\047]$/ || r ~ /[\001-\037\177]/) exit
            printf "%s", r }')
        if [ -n "$REALM" ]; then
          arc_key "$REALM" "$TOKENS_DIR"
          if [ "$KEY_OK" = 1 ]; then
            request "$URL" once "$T/k/auth" "$T/k/sec"
            : > "$T/k/auth"; : > "$T/k/sec"; rm -rf "$T/k"
          fi
        fi
      fi
    fi
  else
    instance vm
    if ! unusable; then
      read_file /etc/default/azuremonitoragent 65536 && AMA=$(sed -n 's/^[ \t]*\(export[ \t]\{1,\}\)\{0,1\}MANAGED_IDENTITY=//p' "$RF_FILE" | head -n 1 | tr -d "\"'" ) || AMA=""
      # shellcheck disable=SC2086  # split on purpose: resources hold no blanks (checked)
      for r in $RESOURCES; do request "$(token_url 2018-02-01 "$r")" vm; done
      printf '%s' "$IDS" > "$T/ids"
      while IFS=' ' read -r s v; do
        [ -n "$s" ] || continue
        # shellcheck disable=SC2086  # split on purpose: resources hold no blanks (checked)
        for r in $RESOURCES; do request "$(token_url 2018-02-01 "$r" "$s" "$v")" vm; done
      done < "$T/ids"
      if [ -n "$AMA" ]; then
        n=$(printf '%s' "${AMA%%#*}" | tr '[:upper:]' '[:lower:]' | tr -d ' '); v=$(printf '%s' "${AMA#*#}" | sed 's/^ *//;s/ *$//')
        case $n in mi_res_id|msi_res_id) s=msi_res_id ;; client_id|object_id) s=$n ;; *) s="" ;; esac
        if [ -n "$s" ] && [ -n "$v" ] && [ "$AMA" != "${AMA#*#}" ] && ! printf '%s' "$IDS" | grep -Fqi " $v"; then
          request "$(token_url 2018-02-01 https://monitor.azure.com/ "$s" "$v")" vm
        fi
      fi
    fi
  fi
fi

# --- the bundle -------------------------------------------------------------------------------------
ENV_NAMES=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | sort -u)
env_record() {
  _first=1
  for name in $ENV_NAMES; do
    case $name in
      IDENTITY_HEADER|IDENTITY_SERVER_THUMBPRINT|MSI_SECRET) _show='set' ;;
      IDENTITY_ENDPOINT|IMDS_ENDPOINT|MSI_ENDPOINT|AZUREPS_HOST_ENVIRONMENT|AZURE_POD_IDENTITY_AUTHORITY_HOST|KUBERNETES_SERVICE_HOST|IMDS_RUNBOOK_ENDPOINT|container|REQUEST_METHOD|ProgramFiles|PROGRAMFILES|ProgramData|PROGRAMDATA) _show='url' ;;
      *_[Pp][Rr][Oo][Xx][Yy]) _show=url; case $name in [Nn][Oo]_[Pp][Rr][Oo][Xx][Yy]) _show=plain ;; esac ;;
      *) continue ;;
    esac
    eval "_v=\${$name:-}"
    [ -n "$_v" ] || continue
    [ $_first = 1 ] || printf ','
    _first=0
    jtext "$name"; printf ':'
    if [ "$_show" = set ]; then printf '"<set>"'
    elif [ "$_show" = plain ]; then jtext "$_v"
    else
      # credentials hidden: everything before the authority's last "@"
      printf '%s' "$_v" > "$T/jt"
      _hidden=$(awk 'BEGIN { RS = "\001" } { v = $0; i = index(v, "://"); s = ""; r = v; if (i) { s = substr(v, 1, i + 2); r = substr(v, i + 3) }
        e = length(r) + 1; for (k = 1; k <= length(r); k++) { c = substr(r, k, 1); if (c == "/" || c == "?" || c == "#") { e = k; break } }
        a = substr(r, 1, e - 1); if (index(a, "@") == 0) { if (index(r, "@") == 0) { printf "%s", v; exit } a = r; e = length(r) + 1 }
        for (k = length(a); k >= 1; k--) if (substr(a, k, 1) == "@") break
        printf "%s<credentials>@%s", s, substr(r, k + 1) }' "$T/jt")
      jtext "$_hidden"
    fi
  done
}
proxy_problems() {
  _first=1
  for name in $ENV_NAMES; do
    case $name in [Nn][Oo]_[Pp][Rr][Oo][Xx][Yy]) continue ;; ?*_[Pp][Rr][Oo][Xx][Yy]) ;; *) continue ;; esac
    eval "_v=\${$name:-}"
    [ -n "$_v" ] || continue
    _p=$(printf '%s' "$_v" | awk 'BEGIN { RS = "\001" } { u = $0; if (index(u, "://") == 0) u = "http://" u
      r = substr(u, index(u, "://") + 3); e = length(r) + 1
      for (k = 1; k <= length(r); k++) { c = substr(r, k, 1); if (c == "/" || c == "?" || c == "#") { e = k; break } }
      a = substr(r, 1, e - 1)
      if (index(substr(r, e), "@") && !index(a, "@")) { print "a \047/\047, \047?\047 or \047#\047 in the user name or password ends the host part early (percent-encode it)"; exit }
      for (k = length(a); k >= 1; k--) if (substr(a, k, 1) == "@") break
      h = substr(a, k + 1)
      if (h ~ /^\[/) { if (h !~ /^\[[^]]*\](:.*)?$/) { print "an IPv6 address in [ ] is unclosed or invalid"; exit } p = h; sub(/^\[[^]]*\]/, "", p); hn = h; sub(/\].*/, "", hn); sub(/^\[/, "", hn) }
      else { i = index(h, ":"); p = (i ? substr(h, i) : ""); hn = (i ? substr(h, 1, i - 1) : h) }
      if (p != "" && p != ":") { p = substr(p, 2); if (p !~ /^[0-9]+$/ || p + 0 > 65535) { print "the port is not a number in 1-65535"; exit } }
      if (hn == "") { print "no host"; exit }
      if (p != "" && p != ":" && p + 0 == 0) { print "port 0"; exit } }')
    [ -n "$_p" ] || continue
    [ $_first = 1 ] || printf ','
    _first=0
    jtext "$name"; printf ':'; jtext "$_p"
  done
}

DURATION=$(( $(now_ms) - STARTED_MS ))
{
  printf '{"kind":"imds-runbook/evidence","schema_version":1,"collector":{"name":"imds-collect.sh","version":"%s"}' "$VERSION"
  printf ',"started_at":"%s","duration_ms":%s' "$STARTED_AT" "$DURATION.0"
  # shellcheck disable=SC2046  # split on purpose: system, host name, release (no blanks in any)
  set -- $(uname -snr 2>/dev/null)
  if [ $# = 3 ] && [ ${#2} -le 255 ]; then _hn=$2; _rel="$1-$3"
  else _hn=$(uname -n 2>/dev/null | cut -c1-255); _rel=$(uname -sr 2>/dev/null | tr ' ' -); fi
  printf ',"host":{"hostname":'; jtext "$_hn"
  printf ',"os":"linux","os_release":'; jtext "$_rel"
  printf ',"smbios_uuid":%s,"vmId":%s,"resourceId":%s}' "$SMBIOS" "$VMID" "$RESID"
  printf ',"os_name":"linux","parameters":{"target":"%s","endpoint":' "$TARGET"
  if [ "$PARAM_ENDPOINT" = null ]; then printf null; else jtext "$PARAM_ENDPOINT"; fi
  printf ',"resources":['
  # shellcheck disable=SC2086  # split on purpose: resources hold no blanks (checked)
  _f=1; for r in $RESOURCES; do [ $_f = 1 ] || printf ','; _f=0; jtext "$r"; done
  printf '],"identities":['
  _f=1; printf '%s' "$IDS" > "$T/ids"
  while IFS=' ' read -r s v; do [ -n "$s" ] || continue; [ $_f = 1 ] || printf ','; _f=0; printf '["%s",' "$s"; jtext "$v"; printf ']'; done < "$T/ids"
  printf '],"timeouts":{"connect":%s,"read":%s,"total":%s},"tokens_dir":' "$CT" "$RT" "$TOTAL"
  jtext "$TOKENS_DIR"
  printf ',"ama_config_path":"/etc/default/azuremonitoragent","proxy_comparison":false}'
  printf ',"environment":{'; env_record; printf '},"proxy_url_problems":{'; proxy_problems
  printf '},"identity":{"euid":%s,"users":{%s}},"wininet":null' "$(id -u)" "$USERS"
} > "$T/head"
# the records, every field encoded in one pass (see jlater)
: >> "$T/man"
assemble() {
  cd "$T" || exit 2
  # shellcheck disable=SC2086  # split on purpose: the fields' file names (o3, b7, ...: no blanks)
  if [ -n "$JFILES" ]; then wc -c $JFILES > sizes || exit 2; else : > sizes; fi
  # shellcheck disable=SC2086  # the same
  if [ -n "$JFILES" ]; then od -An -v -tu1 $JFILES; fi |
    awk -v BATCH=1 -v man=man -v sizes=sizes -v kinds="commands files tcp http arc_keys" -v pf=pairs -v encf=enc "$J"
}
if [ "$DIGEST" = 1 ]; then ( assemble ) > "$T/bundle.json"; digest_out "$T/bundle.json" "the bundle"; else ( assemble ); fi
