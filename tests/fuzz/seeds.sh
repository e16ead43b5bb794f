#!/usr/bin/env bash
# seeds.sh - (re)writes the seed corpora of tests/fuzz/corpus/ from the
# unit tests' cases and the shipped confs. The files are committed; run
# this only to change them (then ./dev.sh test replays them).
#   tests/fuzz/seeds.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$(cd ../.. && pwd)
C=corpus

# ---- bytes ---------------------------------------------------------------
byte() { printf "\\x$(printf %02x $(($1 & 255)))"; }
be32() { byte $(($1 >> 24)); byte $(($1 >> 16)); byte $(($1 >> 8)); byte "$1"; }
be64() { be32 $(($1 >> 32)); be32 "$1"; }
shortstr() { byte ${#1}; printf '%s' "$1"; }
longstr() { be32 ${#1}; printf '%s' "$1"; }
# A nested table or array: its byte length, then its content (from stdin).
framed() { local body; body=$(cat | od -An -v -tx1 | tr -d ' \n'); be32 $((${#body} / 2)); printf "$(sed 's/../\\x&/g' <<<"$body")"; }
# Table entries: NAME KIND VALUE...
str() { shortstr "$1"; printf S; longstr "$2"; }
i32() { shortstr "$1"; printf I; be32 "$2"; }
i64() { shortstr "$1"; printf l; be64 "$2"; }

# ---- envelope: flags, routing key length, type length, key, type, body ----
envelope() { # NAME FLAGS KEY TYPE BODY
    { byte "$2"; byte ${#3}; byte ${#4}; printf '%s%s%s' "$3" "$4" "$5"; } >"$C/envelope/$1"
}
rm -rf "$C/envelope" && mkdir -p "$C/envelope"
envelope json-order 0 order.created "" \
    '{"type":"order:created","orderId":"o-1","userId":1,"items":[{"sku":"sku-1","qty":1}],"totalAmount":10.5}'
envelope property 5 user.signup user:signup '{"userId":1,"email":"u@example.com"}'
envelope routing-key 2 email.send "" '{"to":"u@example.com","subject":"Hi"}'
envelope kind-field 3 "" "" '{"kind":"k","type":1}'
envelope redelivered-ts 24 orders "" '{"type":"t"}'
envelope not-json 0 "" "" 'not json at all'
envelope trailing 0 "" "" '{"type":"t"} x'
envelope duplicate 0 "" "" '{"type":"a","type":"b"}'
envelope array 0 "" "" '[{"type":"t"}]'
envelope scalar 0 "" "" '"type"'
envelope no-type 0 "" "" '{"kind":"t"}'
envelope numeric-type 0 "" "" '{"type":42}'
envelope null-type 0 "" "" '{"type":null}'
envelope empty-type 0 "" "" '{"type":""}'
envelope long-type 0 "" "" "{\"type\":\"$(printf 'x%.0s' {1..300})\"}"
envelope bad-utf8 0 "" "" $'{"type":"\xc3\x28"}'
envelope overlong-utf8 0 "" "" $'{"type":"\xc0\xaf"}'
envelope escapes 0 "" "" '{"type":"t\u0000\ud83d\ude00","s":"\n\t\\"}'
envelope nested 0 "" "" "{\"type\":\"t\",\"a\":$(printf '[%.0s' {1..200})$(printf ']%.0s' {1..200})}"
envelope at-the-depth-bound 0 "" "" "{\"type\":\"t\",\"a\":$(printf '[%.0s' {1..63})$(printf ']%.0s' {1..63})}"
envelope values-in-strings 0 "" "" '{"type":"t","s":"[{,:}]\\\"[,","a":[[],{},[1,{"b":[2]}]]}'
envelope empty-body 0 "" "" ''
envelope no-property 1 rk "" '{"type":"t"}'

# ---- headers: an AMQP table's entries ------------------------------------
header() { cat >"$C/headers/$1"; }
rm -rf "$C/headers" && mkdir -p "$C/headers"
i32 x-warren-attempts 3 | header attempts-int
str x-warren-attempts 2 | header attempts-string
i32 x-warren-attempts -7 | header attempts-negative
i64 x-delivery-count 5 | header delivery-count
{ shortstr x-delivery-count; printf b; byte 255; } | header delivery-count-i8-negative
xdeath_entry() { # QUEUE REASON COUNT
    { str queue "$1"; str reason "$2"; i64 count "$3"; str exchange "";
      shortstr routing-keys; printf A; { printf S; longstr orders; } | framed; } | framed
}
{ shortstr x-death; printf A; { printf F; xdeath_entry orders.retry.5000 expired 2;
    printf F; xdeath_entry orders rejected 1; } | framed; } | header x-death
{ shortstr x-death; printf A; { printf F; xdeath_entry orders.retry.5000 expired -3; } | framed;
    i32 x-warren-attempts 1000000; } | header x-death-negative-count
{ i64 x-warren-published-us 1700000000000000; str x-warren-original-exchange events;
    str x-warren-original-routing-key order.created; str x-warren-reason "handler: bad";
    i64 x-warren-first-failure-ms 1700000000000; } | header warren-headers
{ shortstr t; printf t; byte 1; shortstr b; printf b; byte 200; shortstr B; printf B; byte 200;
  shortstr s; printf s; byte 255; byte 0; shortstr u; printf u; byte 255; byte 0;
  i32 I -1; shortstr i; printf i; be32 -1; i64 l -1; shortstr L; printf L; be64 -1;
  shortstr f; printf f; be32 1065353216; shortstr d; printf d; be64 4607182418800017408;
  shortstr D; printf D; byte 2; be32 12345; str S "string"; shortstr x; printf x; longstr bytes;
  shortstr T; printf T; be64 1700000000; shortstr V; printf V;
  shortstr F; printf F; { str inner v; } | framed;
  shortstr A; printf A; { printf I; be32 1; printf S; longstr two; } | framed; } | header every-kind
deep() { if (($1 == 0)); then str leaf v; else { shortstr n; printf F; deep $(($1 - 1)) | framed; }; fi; }
deep 40 | header deep-table

# ---- conf: the shipped confs and the unit tests' shapes --------------------
rm -rf "$C/conf" && mkdir -p "$C/conf"
cp "$ROOT/conf/warren.conf" "$C/conf/shipped.conf"
cp "$ROOT/conf/examples/orders.conf" "$C/conf/orders.conf"
cp "$ROOT/conf/examples/notifications.conf" "$C/conf/notifications.conf"
base='queue "q" { dead_letter_exchange = "dlx"
}
plugin "p" {
    path = "p.so"
}
route "t" {
    queue = "q"
    plugin = "p"
    handler = "h"
}
'
printf '%s' "$base" >"$C/conf/base.conf"
printf 'bogus = 1\n%s' "$base" >"$C/conf/unknown-key.conf"
printf '%sbroker {\n url = "amqp://u:p@[::1]:5672/%%2f"\n prefetch = "auto"\n prefetch_min = 10\n prefetch_max = 1000\n}\n' "$base" >"$C/conf/broker.conf"
printf '%sbroker { url = "amqp://h:notaport" }\n' "$base" >"$C/conf/bad-url.conf"
printf '%squeue "q2" { arguments = {"x-max-length=10", "x-queue-mode=lazy"}\n type = "quorum" }\n' "$base" >"$C/conf/arguments.conf"
printf '%s/* open comment\n' "$base" >"$C/conf/open-comment.conf"
printf '%sroute "u" { queue = "q"\n' "$base" >"$C/conf/open-section.conf"
printf '%spolicy { max_attempts = 5\n retry_delay_ms = 1000\n retry_multiplier = 2.5\n}\n' "$base" >"$C/conf/policy.conf"
printf '%sexchange "e" { type = "topic" }\nbinding { exchange = "e"\n queue = "q"\n routing_key = "a.#" }\n' "$base" >"$C/conf/binding.conf"

# ---- url: one per line; the first also a listen address --------------------
url() { printf '%s\n' "$@" >"$C/url/$1"; }
rm -rf "$C/url" && mkdir -p "$C/url"
printf 'amqp://guest:guest@127.0.0.1:5672/\n' >"$C/url/plain"
printf 'amqps://user:s3cr%%40t@broker.example:5671/%%2fvhost\n' >"$C/url/tls-percent"
printf 'amqp://u:secretpw@[::1]:5672\namqp://u:secretpw@10.0.0.2\namqp://h3/v\n' >"$C/url/cluster"
printf 'amqp://h:notaport\n' >"$C/url/bad-port"
printf 'amqp://[::1\n' >"$C/url/open-bracket"
printf 'amqp://h/%%zz\n' >"$C/url/bad-escape"
printf '127.0.0.1:9466\n' >"$C/url/listen"
printf '[::1]:0\n' >"$C/url/listen-v6"

# ---- http: raw requests ----------------------------------------------------
http() { printf "$2" >"$C/http/$1"; }
rm -rf "$C/http" && mkdir -p "$C/http"
http metrics 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
http status 'GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
http healthz 'GET /healthz HTTP/1.0\r\n\r\n'
http readyz-head 'HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n'
http post 'POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello'
http not-found 'GET /nope?x=1 HTTP/1.1\r\nHost: x\r\n\r\n'
http pipelined 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\n\r\n'
http chunked 'POST /status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'
http garbage '\x00\xff GET\r\n\r\n'
echo "seeds.sh: $(find "$C" -type f | wc -l) seeds in $(pwd)/$C"
