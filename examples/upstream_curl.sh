#!/usr/bin/env bash
# An upstream system in curl + openssl: post a signed case to Countersign, follow it until a
# reviewer has decided, and receive and verify the signed callback that tells the outcome.
#
#   examples/upstream_curl.sh instance/demo-client.json                     # against `make demo`
#   COUNTERSIGN_URL=https://countersign.example.com COUNTERSIGN_TOKEN=cs_… COUNTERSIGN_SECRET=whsec_… \
#     CALLBACK_URL=https://hooks.example.com/countersign CALLBACK_LISTEN=0.0.0.0 CALLBACK_PORT=8443 \
#     examples/upstream_curl.sh
#
# Needs bash, curl, openssl, base64, od and socat (socat listens for the callback). Settings:
#   COUNTERSIGN_URL     Countersign's base URL (http://127.0.0.1:5000)
#   COUNTERSIGN_TOKEN   the API client's bearer token, cs_…    } or the credentials file given as
#   COUNTERSIGN_SECRET  the API client's signing secret, whsec_… } the first argument
#   CALLBACK_PORT       where the callback receiver listens (8766), on CALLBACK_LISTEN (127.0.0.1)
#   CALLBACK_URL        what Countersign calls back (http://CALLBACK_LISTEN:CALLBACK_PORT/countersign)
#   TIMEOUT             seconds to wait for a decision (3600)
#
# Plain-http callbacks to 127.0.0.1 are delivered only where the server lists the host in
# INSECURE_CALLBACK_HOSTS (the demo does); elsewhere use https on an allowed host and port.
set -euo pipefail

# The Standard Webhooks signature: base64 of HMAC-SHA256("<webhook-id>.<webhook-timestamp>.<body>"),
# keyed with the base64-decoded part of the secret after "whsec_". (openssl takes the key as an
# argument, which other users of this machine can see in the process list: sign on a machine of your own.)
# sign SECRET WEBHOOK_ID TIMESTAMP BODY_FILE
sign() {
  local key
  key=$(printf '%s' "${1#whsec_}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
  { printf '%s.%s.' "$2" "$3"; cat "$4"; } \
    | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | base64 | tr -d '\n'
}

# --receive DIR: socat runs this for each connection to the callback port, the request on stdin and
# the answer to stdout, the secret in CALLBACK_SECRET. A verified callback is written to DIR/callback
# (once per webhook-id).
if [[ "${1:-}" == "--receive" ]]; then
  secret=$CALLBACK_SECRET dir=$2 length=0 id="" ts="" signatures=""
  IFS= read -r request_line || exit 0
  while IFS= read -r line; do
    line=${line%$'\r'}
    [[ -z "$line" ]] && break
    name=$(printf '%s' "${line%%:*}" | tr 'A-Z' 'a-z') value=${line#*: }
    case "$name" in
      content-length) length=$value ;;
      webhook-id) id=$value ;;
      webhook-timestamp) ts=$value ;;
      webhook-signature) signatures=$value ;;
    esac
  done
  body=$(mktemp "$dir/body.XXXXXX")
  head -c "$length" > "$body"
  now=$(date +%s) expected=$(sign "$secret" "$id" "$ts" "$body") verified=no
  if [[ "$ts" =~ ^[0-9]+$ ]] && (( now - ts <= 300 && ts - now <= 300 )); then
    for signature in $signatures; do  # several may be sent, space-separated: one matching is enough
      [[ "$signature" == "v1,$expected" ]] && verified=yes
    done
  fi
  if [[ $verified == no ]]; then
    echo "callback refused: bad signature or timestamp (webhook-id $id)" >&2
    printf 'HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
    exit 0
  fi
  # webhook-id stays the same across retries of one delivery: de-duplicate on it.
  if mkdir "$dir/seen-$id" 2>/dev/null; then
    { printf 'webhook-id %s: ' "$id"; cat "$body"; echo; } > "$dir/callback.tmp" && mv "$dir/callback.tmp" "$dir/callback"
  fi
  printf 'HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n'
  exit 0
fi

for tool in curl openssl base64 od socat; do
  command -v "$tool" >/dev/null || { echo "$0 needs $tool" >&2; exit 2; }
done
URL=${COUNTERSIGN_URL:-http://127.0.0.1:5000}
TOKEN=${COUNTERSIGN_TOKEN:-} SECRET=${COUNTERSIGN_SECRET:-}
if [[ -n "${1:-}" ]]; then  # a credentials file such as instance/demo-client.json
  TOKEN=$(sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' "$1")
  SECRET=$(sed -n 's/.*"signing_secret": *"\([^"]*\)".*/\1/p' "$1")
fi
[[ -n "$TOKEN" && -n "$SECRET" ]] || { echo "set COUNTERSIGN_TOKEN and COUNTERSIGN_SECRET, or name a credentials file" >&2; exit 2; }
LISTEN=${CALLBACK_LISTEN:-127.0.0.1} PORT=${CALLBACK_PORT:-8766}
CALLBACK_URL=${CALLBACK_URL:-http://$LISTEN:$PORT/countersign}
TIMEOUT=${TIMEOUT:-3600}

WORK=$(mktemp -d)
CALLBACK_SECRET=$SECRET socat "TCP-LISTEN:$PORT,bind=$LISTEN,reuseaddr,fork" EXEC:"bash $0 --receive $WORK" &
RECEIVER=$!
trap 'kill $RECEIVER 2>/dev/null; rm -rf "$WORK"' EXIT
echo "receiving callbacks at $CALLBACK_URL"

# A payment_release case (docs/case-types.md) with fresh ids: each run posts a new case.
REFERENCE=PAY-$(date -u +%Y%m%d)-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n' | tr 'a-f' 'A-F')
cat > "$WORK/case.json" <<JSON
{"external_id": "$REFERENCE", "domain": "finance", "case_type": "payment_release",
 "title": "Release EUR 1,250.00 to ACME GmbH", "callback_url": "$CALLBACK_URL",
 "data": {"payment_id": "$REFERENCE", "amount": "1250.00", "currency": "EUR", "value_date": "$(date -u +%Y-%m-%d)",
          "channel": "sepa",
          "originator": {"name": "Northwind Trading Ltd", "account": "GB29NWBK60161331926819", "country": "GB",
                         "customer_id": "C-1001"},
          "beneficiary": {"name": "ACME GmbH", "account": "DE89370400440532013000", "country": "DE", "is_new": false},
          "purpose": "Invoice 2026-118"}}
JSON

# webhook-id is the idempotency key: sending the same id and body again answers the same case.
ID=msg_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n') TS=$(date +%s)
ANSWER=$(curl -sS -X POST "$URL/api/v1/cases" -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
  -H "webhook-id: $ID" -H "webhook-timestamp: $TS" -H "webhook-signature: v1,$(sign "$SECRET" "$ID" "$TS" "$WORK/case.json")" \
  --data-binary "@$WORK/case.json" -w '\n%{http_code}')
STATUS_CODE=${ANSWER##*$'\n'} ANSWER=${ANSWER%$'\n'*}
if [[ "$STATUS_CODE" != 202 ]]; then
  echo "POST $URL/api/v1/cases answered $STATUS_CODE: $ANSWER" >&2  # an RFC 9457 problem document
  exit 1
fi
CASE_ID=$(printf '%s' "$ANSWER" | sed -n 's/.*"id": *\([0-9]*\).*/\1/p')
CASE_URL=$(printf '%s' "$ANSWER" | sed -n 's/.*"url": *"\([^"]*\)".*/\1/p')
echo "posted case $CASE_ID: received ($CASE_URL); waiting for a reviewer's decision"

# The case's own "status", not its execution's: nested objects are folded away first (without jq,
# this assumes no braces inside strings).
top_level_status() {
  sed -e ':fold' -e 's/\(.\){[^{}]*}/\1null/' -e 't fold' | grep -o '"status": *"[a-z_]*"' | sed 's/.*"\([a-z_]*\)"$/\1/'
}

# Follow the case; stop once a callback has come and the case is no longer being delivered.
DEADLINE=$(( $(date +%s) + TIMEOUT )) SEEN="" SAID_CALLBACK=""
while (( $(date +%s) < DEADLINE )); do
  if [[ -f "$WORK/callback" && -z "$SAID_CALLBACK" ]]; then
    echo "callback verified: $(cat "$WORK/callback")"
    SAID_CALLBACK=yes
  fi
  # The status is read after looking for the callback: once one has come, it tells how its delivery ended.
  STATUS=$(curl -sS -H "Authorization: Bearer $TOKEN" "$CASE_URL" | top_level_status)
  if [[ "$STATUS" != "$SEEN" ]]; then echo "case $CASE_ID is $STATUS"; SEEN=$STATUS; fi
  if [[ -n "$SAID_CALLBACK" && "$STATUS" != approved && "$STATUS" != executing ]]; then exit 0; fi
  sleep 1
done
echo "gave up after $TIMEOUT s: case $CASE_ID is $SEEN" >&2
exit 1
