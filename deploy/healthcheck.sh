#!/bin/bash
# healthcheck [PORT] [PATH]: exits 0 when the gateway's admin listener on 127.0.0.1:PORT
# answers PATH with 200. Used by the image's HEALTHCHECK; needs only bash (no curl in the image).
set -eu
port="${1:-9901}"
path="${2:-/healthz}"
exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
IFS= read -r -t 2 status <&3
case "$status" in
  "HTTP/1.1 200"*) exit 0 ;;
  *) echo "unhealthy: ${status:-no answer}" >&2; exit 1 ;;
esac
