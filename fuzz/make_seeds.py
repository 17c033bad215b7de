#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (run from anywhere; stdlib only).

The seeds are committed; run this again after changing it. Each seed is a small, meaningful
input in the format its target reads (see the //! comment of fuzz/fuzz_targets/<target>.rs).
"""
import base64
import hashlib
import hmac
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")

# Must match fuzz_targets/jwt_decode.rs.
SECRET = b"gateway-fuzz-hs256-secret-0123456789abcdefghijklmnopqrstuvwxyz!!"
ISS, AUD = "fuzz-issuer", "fuzz-api"
FAR = 4102444800  # 2100-01-01: a seed token stays valid


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def hs256(header, payload):
    signing_input = f"{b64(header)}.{b64(payload)}"
    sig = hmac.new(SECRET, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


# ------------------------------------------------------------------ path_normalise
PATHS = [
    "/", "/a", "/a/b/", "/api/v1/users:batch@x", "/~user/file.txt", "/.well-known/x",
    "//a///b/", "/a//..//b", "/a/./b", "/a/../b", "/a/b/../../c", "/a/b/..", "/..", "/../a",
    "/a/../..", "/...", "/a/..%20/b", "/a/.%20./b", "/a/. /b", "/a/%2e%2E/b", "/a/.%2e/b",
    "/%2e%2e/x", "/a%2eb", "/a/..;/b", "/a/..;x/b", "/a/..%3bx/b", "/a;b=c,d",
    "/p/%EF%BC%8E%EF%BC%8E/admin", "/p/\uff0e\uff0e/admin", "/p/%E2%80%A4%E2%80%A4/x",
    "/p/%EF%B9%92./x", "/p/%E2%80%A6/x", "/p/%EF%BC%8E%EF%BC%8E%EF%BC%8Fadmin",
    "/a%2fb", "/a%5Cb", "/a\\b", "/a%00", "/a%0d%0aX-Evil:1", "/a%zz", "/a%", "/a%%41",
    "/%41pi", "/a%2520", "/a%3fb%23c", "/caf%c3%a9", "/caf\u00e9", "/a b", "/a{b}",
    "/a%c0%ae%c0%ae/", "/%e0%80%ae", "/%ed%a0%80", "/%f4%90%80%80", "/%ff",
    # tests/security*.rs
    "/%2Fadmin/x", "/%61%64%6D%69%6E/x", "/ADMIN/x", "/admin;/x", "/public%2F..%2Fadmin/x",
    "/public/%%32%65", "/public/%252E%252E%252Fadmin", "/public/%2e./api/x",
    "/public/%5c..%5cadmin", "/public/%c0%2e", "/public/%c1%9c", "/public/%f0%80%80%ae/admin/x",
    "/public/%u002e%u002e/admin", "/public/.%20/admin", "/public/../../admin/x",
    "/public/./x/.", "/public/x%0d%0aX-User-Id:%20admin", "/public/x%3Bjsessionid=1",
    "/public/x/../../admin/x", "/public/{}x", "/public/~~", "///public///x", "/.%00.",
]
for i, p in enumerate(PATHS):
    write("path_normalise", f"seed-{i:03}", p)

# ------------------------------------------------------------------ bearer_extract
good = hs256(b'{"alg":"HS256","kid":"h1","typ":"JWT"}',
             json.dumps({"iss": ISS, "aud": AUD, "sub": "u1", "sid": "s1", "exp": FAR}).encode())
BEARER = [
    ("gw_access", ["authorization: Bearer a.b.c"]),
    ("gw_access", ["authorization: bEaReR a.b.c"]),
    ("", [f"authorization: Bearer {good}"]),
    ("__Host-gw_access", [f"cookie: __Host-gw_access={good}"]),
    ("gw_access", ["authorization: Bearer a.b.c", "cookie: gw_access=a.b.c"]),
    ("gw_access", ["authorization: Bearer a.b.c", "cookie: gw_access=x.y.z"]),
    ("gw_access", ["authorization: Bearer a.b.c", "authorization: Bearer a.b.c"]),
    ("gw_access", ["authorization: Basic dXNlcjpwYXNz"]),
    ("gw_access", ["authorization: Bearer  a.b.c"]),
    ("gw_access", ["authorization: Bearer a.b.c extra"]),
    ("gw_access", ["authorization: Bearer \"a.b.c\""]),
    ("gw_access", ["authorization: Bearer abc=="]),
    ("gw_access", ["authorization: Bearer ="]),
    ("gw_access", ["cookie: a=1; gw_access=t.o.k; b=2"]),
    ("gw_access", ["cookie: a=1", "cookie: gw_access=\"t.o.k\"", "cookie: gw_access=t.o.k"]),
    ("gw_access", ["cookie: gw_access=a; gw_access=b"]),
    ("gw_access", ["cookie: gw_access=a", "cookie: gw_access=b"]),
    ("gw_access", ["cookie: gw_access="]),
    ("gw_access", ["cookie: GW_ACCESS=x; gw_access_2=y"]),
    ("gw_access", ["cookie: gw_access=a{b}"]),
    ("gw_access", ["cookie: gw_access"]),
    ("gw_access", ["cookie:  gw_access = t ;;; =x; ;a"]),
    ("gw_access", ["cookie: gw_access=\"a;b\""]),
    ("gw_access", ["cookie: gw_access=\xe9"]),
    ("gw_access", ["x-other: kept", "cookie: c=3", "authorization: Bearer t"]),
    ("", ["cookie: gw_access=t.o.k", "authorization: Bearer t.o.k"]),
    ("gw_access", ["authorization: Bearer a/b+c~d_e-f.g=="]),
    ("gw_access", ["authorization:Bearer a.b.c"]),
    ("gw_access", ["authorization: Bearer\ta.b.c"]),
    ("a=b", ["cookie: a=b=c"]),
]
for i, (name, lines) in enumerate(BEARER):
    write("bearer_extract", f"seed-{i:03}", "\n".join([name] + lines))

# ------------------------------------------------------------------ jwt_decode
def claims(**kw):
    c = {"iss": ISS, "aud": AUD, "sub": "u1", "sid": "s1", "iat": 1700000000, "exp": FAR}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


H = '{"alg":"HS256","kid":"h1","typ":"JWT"}'
JWT_PARTS = [
    (H, json.dumps(claims())),
    ('{"alg":"HS256"}', json.dumps(claims(roles=["admin", "user"]))),
    ('{"alg":"HS256","typ":"at+jwt"}', json.dumps(claims(roles="a b,c ,, d"))),
    (H, json.dumps(claims(aud=["x", AUD]))),
    (H, json.dumps(claims(exp=1))),
    (H, json.dumps(claims(exp=1.5))),
    (H, json.dumps(claims(exp=-1))),
    (H, json.dumps(claims(nbf=FAR))),
    (H, json.dumps(claims(iss="other"))),
    (H, json.dumps(claims(aud=[]))),
    (H, json.dumps(claims(aud=[AUD, 1]))),
    (H, json.dumps(claims(sub="a\nb"))),
    (H, json.dumps(claims(sid=""))),
    (H, json.dumps(claims(roles=["a,b"]))),
    (H, json.dumps(claims(roles=[1]))),
    (H, '{"sub":"alice","sub":"admin","iss":"fuzz-issuer","aud":"fuzz-api","sid":"s","exp":4102444800}'),
    (H, '{"x":[{"k":1,"k":1}],"iss":"fuzz-issuer"}'),
    (H, '{"sub":"a","s\\u0075b":"b"}'),
    ('{"alg":"HS256","alg":"none"}', json.dumps(claims())),
    ('{"alg":"none"}', json.dumps(claims())),
    ('{"alg":"NONE"}', json.dumps(claims())),
    ('{"alg":"RS256","kid":"h1"}', json.dumps(claims())),
    ('{"alg":"EdDSA","kid":"k1"}', json.dumps(claims())),
    ('{"alg":"HS256","kid":"nope"}', json.dumps(claims())),
    ('{"alg":"HS256","kid":7}', json.dumps(claims())),
    ('{"alg":"HS256","crit":["exp"]}', json.dumps(claims())),
    ('{"alg":"HS256","jwk":{"kty":"oct","k":"AAAA"}}', json.dumps(claims())),
    ('{"alg":"HS256","jku":"https://evil/jwks"}', json.dumps(claims())),
    ('{"alg":"HS256","x5c":["MIIB"]}', json.dumps(claims())),
    ('{"alg":"HS256","enc":"A256GCM"}', json.dumps(claims())),
    ('{"alg":"HS256","typ":"JOSE"}', json.dumps(claims())),
    ('{"alg":"HS256","typ":1}', json.dumps(claims())),
    ('[]', json.dumps(claims())),
    (H, '[]'),
    (H, '{"a":1e400}'),
    (H, '{"a":' + '[' * 200 + '}'),
    (H, '{"a":1,}'),
    (H, '{"iss":"fuzz-issuer","aud":"fuzz-api","sub":"' + "x" * 600 + '","sid":"s","exp":4102444800}'),
]
for i, (h, c) in enumerate(JWT_PARTS):
    write("jwt_decode", f"parts-{i:03}", h.encode() + b"\0" + c.encode())
TOKENS = [
    good,
    hs256(b'{"alg":"HS256"}', json.dumps(claims(roles=["admin"])).encode()),
    hs256(b'{"alg":"HS256","kid":"h1"}', json.dumps(claims(exp=1)).encode()),
    good[: good.rindex(".")] + ".",
    good[: good.rindex(".")] + "." + b64(b"\0" * 32),
    good + ".x",
    "a.b.c",
    "...",
    "",
    b64(b'{"alg":"none"}') + "." + b64(json.dumps(claims()).encode()) + ".",
    good.replace(".", "=.", 1),
    "x" * 9000,
]
for i, t in enumerate(TOKENS):
    write("jwt_decode", f"token-{i:03}", t)

# ------------------------------------------------------------------ config_load
MIN = """[listen]
https = "127.0.0.1:8443"

[tls]
cert = "c.pem"
key = "k.pem"

[jwt]
algorithms = ["EdDSA"]
issuer = "gw"
audience = "api"
keys = [{ kid = "k1", public_key = "pub.pem" }]

[[route]]
path = "/"
upstream = "http://127.0.0.1:9000"
"""


def with_(old, new):
    assert MIN.count(old) == 1, old
    return MIN.replace(old, new, 1)


CONFIGS = {
    "shipped": open(os.path.join(ROOT, "gateway.toml")).read(),
    "deploy": open(os.path.join(ROOT, "deploy", "gateway.toml")).read(),
    "min": MIN,
    "full": MIN + """
[runtime]
workers = 2

[reload]
watch = false
interval = "5s"

[otlp]
endpoint = "http://127.0.0.1:4318/v1/traces"
service_name = "gw"
timeout = "3s"

[session]
store = "redis"
redis_url = "rediss://redis.internal:6380/1"
key_prefix = "gw:"
timeout = "300ms"
max_concurrent = 64
cache = false

[headers]
user_id = "X-Auth-User"
roles = "X-Auth-Roles"
session_id = "X-Auth-Session"

[auth]
path = "/auth"
signing_key = "signing.pem"
signing_kid = "k1"
access_ttl = "15m"
refresh_ttl = "7d"
refresh_max_uses = 10
bind_refresh = "ip"
registration = true
cookies = false

[limits]
header_timeout = "2s"
max_header_bytes = 16384
max_headers = 50
max_connections = 100
h2_max_streams = 10
idle_timeout = "30s"
body_idle_timeout = "5s"
shutdown_grace = "2s"
drain_linger = "200ms"

[demo]
echo = "127.0.0.1:9001"

[[route]]
path = "/api/"
host = "Example.COM"
methods = ["GET", "POST"]
upstream = ["http://127.0.0.1:9000", "http://[::1]:9000"]
protocol = "h2c"
auth = "optional"
roles = ["admin", "user"]
strip_prefix = true
forward_token = true
timeout = "5s"
max_body = "512KiB"
""",
    "hs256": with_('["EdDSA"]', '["HS256"]').replace('public_key = "pub.pem"', 'secret_env = "GATEWAY_FUZZ_HS256_SECRET"'),
    "hs-unset-env": with_('["EdDSA"]', '["HS512", "RS256"]').replace('public_key = "pub.pem"', 'secret_env = "GW_SECRET"'),
    "jwks": with_('audience = "api"\n', 'audience = "api"\njwks_url = "https://idp.example/jwks.json"\njwks_refresh = "1m"\n'),
    "jwks-http": with_('audience = "api"\n', 'audience = "api"\njwks_url = "http://example.com/jwks"\n'),
    "bad-upstream": with_('"http://127.0.0.1:9000"', '"ftp://x"'),
    "unknown-table": MIN + '\n[listener]\nhttps = "x"\n',
    "syntax": with_("[tls]\n", "[tls\n"),
    "dup-key": with_('issuer = "gw"\n', 'issuer = "gw"\nissuer = "again"\n'),
    "type-int": with_('https = "127.0.0.1:8443"', "https = 8443"),
    "type-float": with_('key = "k.pem"', 'key = "k.pem"\nmin_version = 1.3'),
    "workers-str": MIN + '\n[runtime]\nworkers = "4"\n',
    "workers-neg": MIN + "\n[runtime]\nworkers = -1\n",
    "alg-string": with_('["EdDSA"]', '"EdDSA"'),
    "alg-none": with_('["EdDSA"]', '["EdDSA", "none"]'),
    "alg-empty": with_('["EdDSA"]', "[]"),
    "no-listen": MIN.replace('[listen]\nhttps = "127.0.0.1:8443"\n', "", 1),
    "localhost": with_('"127.0.0.1:8443"', '"localhost:8443"'),
    "demo-clash": MIN + '\n[demo]\necho = "127.0.0.1:8443"\n',
    "hsts": with_('key = "k.pem"', 'key = "k.pem"\nhsts = "1y"'),
    "tls11": with_('key = "k.pem"', 'key = "k.pem"\nmin_version = "1.1"'),
    "empty-cert": with_('cert = "c.pem"', 'cert = ""'),
    "cookie-space": with_('audience = "api"\n', 'audience = "api"\ncookie = "gw access"\n'),
    "route-no-path": MIN.replace('path = "/"\n', "", 1),
    "route-table": MIN + '[route]\npath = "/x"\n',
    "route-dup": MIN + '\n[[route]]\npath = "/"\nupstream = "http://127.0.0.1:9000"\n',
    "route-odd": MIN + '\n[[route]]\npath = "/a/../b"\nupstream = "http://127.0.0.1:9000/x?y"\nmethods = ["get", "X Y"]\nmax_body = "10TiB"\ntimeout = "0s"\n',
    "durations": MIN + '\n[limits]\nheader_timeout = "1h"\nbody_idle_timeout = "-1s"\nshutdown_grace = "1.5s"\ndrain_linger = "99999999999999999999d"\n',
    "headers-bad": MIN + '\n[headers]\nuser_id = "X User"\nroles = "x-user-id"\nsession_id = ""\n',
    "auth-both": MIN + '\n[auth]\nsigning_key = "s.pem"\nsigning_secret_env = "X"\nsigning_kid = "k1"\nrefresh_ttl = "1s"\n',
    "unicode": MIN.replace('issuer = "gw"', 'issuer = "g\\u00e9w\u00e9"'),
    "crlf": MIN.replace("\n", "\r\n"),
    "empty": "",
    "comment-only": "# nothing\n",
    "inline-tables": 'listen = { https = "127.0.0.1:1" }\ntls = { cert = "c", key = "k" }\nroute = [{ path = "/", upstream = "http://127.0.0.1:1" }]\n',
    "deep": "a = " + "[" * 300 + "]" * 300 + "\n",
}
for name, text in CONFIGS.items():
    write("config_load", name, text)
write("config_load", "latin1", MIN.encode().replace(b'"gw"', b'"g\xe9w"'))
write("config_load", "nul", MIN.encode() + b"\0")

# ------------------------------------------------------------------ host_parse
# First byte: odd HTTP/2, even HTTP/1.1; then the request target; then Host lines.
HOSTS = [
    (0, "/", ["example.com"]),
    (0, "/", ["Example.COM.:443"]),
    (0, "/", ["example.com:8443"]),
    (0, "/", ["[::1]:8443"]),
    (0, "/", ["[2001:DB8::1]"]),
    (0, "/", ["127.0.0.1:8443"]),
    (0, "/", []),
    (0, "/", ["a", "b"]),
    (0, "/", ["a, b"]),
    (0, "/", ["a/path"]),
    (0, "/", ["user@example.com"]),
    (0, "/", [""]),
    (0, "/", ["exa mple.com"]),
    (0, "/", ["example.com:80:80"]),
    (0, "/", ["example.com:123456"]),
    (0, "/", ["[::1"]),
    (0, "/", ["[]:443"]),
    (0, "/", ["[::1]x"]),
    (0, "/", ["::1"]),
    (0, "/", ["."]),
    (0, "/", [".."]),
    (0, "/", ["a.."]),
    (0, "/", [":443"]),
    (0, "https://example.com/x", ["example.com"]),
    (0, "https://example.com/x", ["other.com"]),
    (0, "https://EXAMPLE.com/x", ["example.COM"]),
    (1, "https://example.com/x", []),
    (1, "https://example.com:8443/x", ["example.com:8443"]),
    (1, "https://example.com/x", ["evil.com"]),
    (1, "/", []),
    (1, "https://user@example.com/", []),
    (0, "/", ["ex\u00e4mple.com"]),
    (0, "/", ["xn--exmple-cua.com"]),
    (0, "*", ["example.com"]),
    (0, "example.com:443", ["example.com:443"]),
    # host::parse: bracket, port and length edges; `[1.2.3.4]` routing alone accepts.
    (0, "/", ["[1.2.3.4]"]),
    (0, "/", ["[fe80::1%25eth0]:443"]),
    (0, "/", ["[::FFFF:1.2.3.4]:1"]),
    (0, "/", ["a:0"]),
    (0, "/", ["a:00080"]),
    (0, "/", ["A_b~C-d.:65535"]),
    (0, "/", ["a" * 253]),
    (0, "/", ["a" * 254 + ":1"]),
    (0, "/", ["a;b", "a\tb"]),
]
for i, (flags, target, hosts) in enumerate(HOSTS):
    write("host_parse", f"seed-{i:03}", bytes([flags]) + "\n".join([target] + hosts).encode())

# ------------------------------------------------------------------ proxy_header
SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(cmd, fam, addrs, tlvs=b""):
    body = addrs + tlvs
    return SIG + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(body)) + body


ip4 = bytes([192, 168, 0, 1]) + bytes([10, 0, 0, 1]) + struct.pack("!HH", 56324, 443)
ip6 = bytes(15) + b"\x01" + bytes(15) + b"\x02" + struct.pack("!HH", 1234, 8443)
unix = b"/tmp/a".ljust(108, b"\0") + b"/tmp/b".ljust(108, b"\0")
tlv_alpn = b"\x01" + struct.pack("!H", 2) + b"h2"
tlv_authority = b"\x02" + struct.pack("!H", 11) + b"example.com"
tlv_crc = b"\x03" + struct.pack("!H", 4) + b"\0\0\0\0"
tlv_noop = b"\x04" + struct.pack("!H", 3) + b"\0\0\0"
tlv_ssl = b"\x20" + struct.pack("!H", 5) + b"\x07" + b"\0\0\0\0"
PROXY = {
    "v1-tcp4": b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
    "v1-tcp6": b"PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n",
    "v1-unknown": b"PROXY UNKNOWN\r\n",
    "v1-unknown-addrs": b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
    "v1-with-request": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "v1-max": b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
    "v1-port-overflow": b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 +1\r\n",
    "v1-family-mismatch": b"PROXY TCP4 ::1 ::1 1 2\r\n",
    "v1-no-crlf": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
    "v1-truncated": b"PROXY TCP4 1.2.3.4",
    "v1-leading-zero": b"PROXY TCP4 01.2.3.4 5.6.7.8 01 2\r\n",
    "v1-too-long": b"PROXY TCP4 " + b"1" * 120 + b"\r\n",
    "v2-tcp4": v2(1, 0x11, ip4),
    "v2-udp4": v2(1, 0x12, ip4),
    "v2-tcp6": v2(1, 0x21, ip6),
    "v2-unix": v2(1, 0x31, unix),
    "v2-local": v2(0, 0x00, b""),
    "v2-local-with-addrs": v2(0, 0x11, ip4),
    "v2-unspec": v2(1, 0x00, b""),
    "v2-tlvs": v2(1, 0x11, ip4, tlv_alpn + tlv_authority + tlv_crc + tlv_noop + tlv_ssl),
    "v2-tlv-overrun": v2(1, 0x11, ip4, b"\x02" + struct.pack("!H", 200) + b"x"),
    "v2-short-addrs": v2(1, 0x21, ip4),
    "v2-bad-version": SIG + bytes([0x11, 0x11]) + struct.pack("!H", 12) + ip4,
    "v2-bad-command": SIG + bytes([0x2F, 0x11]) + struct.pack("!H", 12) + ip4,
    "v2-length-past-end": SIG + bytes([0x21, 0x11]) + struct.pack("!H", 65535) + ip4,
    "v2-truncated-sig": SIG[:7],
    "v2-with-request": v2(1, 0x11, ip4) + b"GET / HTTP/1.1\r\n\r\n",
    "not-proxy": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "tls-hello": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    "empty": b"",
    # Found by the fuzzer (both were accepted before src/proxy_protocol.rs refused them).
    "v1-plus-port": b"PROXY TCP4 1.2.3.4 5.6.7.8 65535 +1\r\n",
    "v1-unknown-lf": b"PROXY UNKNOWN fffffff 5f 536 5PROXY \n",
    "v1-tcp6-then-tls": b"PROXY TCP6 ::1 ::2 1 443\r\n\x16\x03\x01\x00\xa5\x01",
    # V2_MAX (16 + 4096) exactly, and one byte more: longer than libFuzzer's default -max_len.
    "v2-max": v2(1, 0x11, ip4, b"\x04" + struct.pack("!H", 4096 - 12 - 3) + bytes(4096 - 12 - 3)),
    "v2-over-max": v2(1, 0x11, ip4, b"\x04" + struct.pack("!H", 4097 - 12 - 3) + bytes(4097 - 12 - 3)),
    "v2-local-then-tls": v2(0, 0x00, b"") + b"\x16\x03\x01\x00\xa5\x01",
}
for name, data in PROXY.items():
    write("proxy_header", name, data)

if __name__ == "__main__":
    for t in sorted(os.listdir(CORPUS)):
        print(t, len(os.listdir(os.path.join(CORPUS, t))))
