#!/usr/bin/env bash
# tls_certs.sh - the certificates of the TLS tests, made with openssl.
#
#   tls_certs.sh DIR    make them in DIR (created; files there are replaced)
#
# Everything is an EC P-256 key (fast to make) valid for two days:
#   ca.pem ca.key                    "warren test CA", the one the broker and
#                                    warrend trust
#   server.pem server.key            the broker's: CN and SAN DNS:localhost
#                                    only (no IP SAN: 127.0.0.1 is a
#                                    mismatch), signed by ca
#   wrong-name.pem wrong-name.key    SAN DNS:wrong-name.invalid, signed by
#                                    ca: a trusted certificate for another
#                                    host
#   client.pem client.key            CN=warren-client, clientAuth, signed by
#                                    ca (mutual TLS)
#   other-ca.pem other-ca.key        an unrelated CA that nobody trusts
#   other-client.pem other-client.key  a client certificate signed by
#                                    other-ca
# Keys are mode 600. Prints nothing on success; openssl's output goes to
# DIR/openssl.log, shown on failure.
set -euo pipefail

die() { printf 'tls_certs.sh: %s\n' "$*" >&2; exit 1; }
[[ $# -eq 1 ]] || { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
command -v openssl >/dev/null 2>&1 || die "openssl is not installed (./dev.sh deps)"

dir=$1
mkdir -p "$dir"
cd "$dir"
umask 077
: >openssl.log

run() {
    if ! "$@" >>openssl.log 2>&1; then
        cat openssl.log >&2
        die "failed: $*"
    fi
}

# ca NAME CN: a self-signed CA.
ca() {
    run openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -nodes -keyout "$1.key" -out "$1.pem" -days 2 -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
}

# leaf NAME CA CN EXTENSIONS...: a certificate signed by CA.
leaf() {
    local name=$1 ca=$2 cn=$3
    shift 3
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "$@" >"$name.ext"
    run openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -nodes -keyout "$name.key" -out "$name.csr" -subj "/CN=$cn"
    run openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" \
        -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
        -days 2 -extfile "$name.ext" -out "$name.pem"
    rm -f "$name.csr" "$name.ext"
}

ca ca "warren test CA"
ca other-ca "unrelated test CA"
leaf server ca localhost "subjectAltName=DNS:localhost" "extendedKeyUsage=serverAuth"
leaf wrong-name ca wrong-name.invalid "subjectAltName=DNS:wrong-name.invalid" \
    "extendedKeyUsage=serverAuth"
leaf client ca warren-client "extendedKeyUsage=clientAuth"
leaf other-client other-ca warren-client "extendedKeyUsage=clientAuth"
# The certificates are public; the broker (same user) reads the keys.
chmod 644 ./*.pem
