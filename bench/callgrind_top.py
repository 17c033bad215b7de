#!/usr/bin/env python3
"""Self cost per function of one callgrind dump, for bench/instructions.sh.

    callgrind_top.py FILE [--per N] [--top 15]     # hottest functions, Ir (per request)
    callgrind_top.py FILE --per N --crypto         # the AES-GCM / GHASH code that ran
    callgrind_top.py FILE --per N --callers memcpy # who calls it, inclusive Ir (per request)

Reads the callgrind file itself rather than through callgrind_annotate: valgrind 3.19's
callgrind_annotate counts a call whose count is 0 in that dump (one begun before the dump, like
main's, still on the stack) as the caller's *self* cost, so on a mid-run dump (`callgrind_control
--dump`) `--inclusive=no` shows main and the runtime at 100%. Here a cost line right after
`calls=` is never self cost, whatever the count. Costs of inlined code (`fi=`/`fe=` switch the
file, not the function) stay with the function they were inlined into.

--crypto lists the functions whose name says AES, GCM, GHASH or CLMUL, and, for functions with
no symbol (OpenSSL's libcrypto ships without its assembly's names), disassembles the function
at that address (objdump, up to its first `ret`) and names the instructions it uses: aesenc/
vaesenc and (v)pclmulqdq, with the register width (xmm, ymm or zmm). A heuristic, said as such.
"""
import argparse
import collections
import os
import re
import subprocess
import sys

NAME_RE = re.compile(r"^\((\d+)\)(?: (.*))?$")


def parse(path):
    names = {"fl": {}, "fn": {}, "ob": {}}
    kind_of = {"fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl", "cfl": "fl",
               "fn": "fn", "cfn": "fn", "ob": "ob", "cob": "ob"}

    def name(key, value):
        table = names[kind_of[key]]
        m = NAME_RE.match(value)
        if not m:
            return value
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
            return m.group(2)
        return table.get(m.group(1), "(" + m.group(1) + ")")

    npos = 1
    events = ["Ir"]
    self_cost = collections.Counter()
    call_cost = collections.Counter()  # (caller, callee) -> inclusive cost of the calls
    cfn = "?"
    totals = None
    ob = fn = "?"
    after_calls = False
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                fields = line.split()
                if after_calls:
                    after_calls = False
                    if len(fields) > npos:
                        call_cost[(fn, cfn)] += int(fields[npos])
                    continue
                costs = fields[npos:]
                if costs:
                    self_cost[(ob, fn)] += int(costs[0])
                continue
            key, _, value = line.partition("=")
            if key in ("ob", "fn", "fl", "fi", "fe", "cob", "cfi", "cfl", "cfn") and _:
                v = name(key, value)
                if key == "ob":
                    ob = v
                elif key == "fn":
                    fn = v
                elif key == "cfn":
                    cfn = v
                continue
            if key == "calls" and _:
                after_calls = True
                continue
            if line.startswith("positions:"):
                npos = len(line.split()[1:])
            elif line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("totals:") or line.startswith("summary:"):
                totals = int(line.split()[1])
    return self_cost, call_cost, totals


def short_obj(ob):
    return os.path.basename(ob) if ob and ob != "?" else "?"


def disasm_kinds(obj, addr):
    """The AES and carry-less multiply instructions of the function at ADDR in OBJ."""
    try:
        a = int(addr, 16)
        out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--start-address={a:#x}",
                              f"--stop-address={a + 8192:#x}", obj],
                             capture_output=True, text=True, check=True).stdout
    except (ValueError, OSError, subprocess.CalledProcessError):
        return None
    kinds = collections.Counter()
    for l in out.splitlines():
        m = re.match(r"^\s+[0-9a-f]+:\s+(\S+)\s*(.*)$", l)
        if not m:
            continue
        op, args = m.group(1), m.group(2)
        if op.startswith("ret"):
            break
        if re.match(r"v?(aes(enc|dec)(last)?|pclmulqdq|pclmul\w+)$", op):
            width = "zmm" if "zmm" in args else "ymm" if "ymm" in args else "xmm"
            kinds[f"{op} {width}"] += 1
    return kinds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--per", type=int, default=1, help="divide by this (requests)")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--crypto", action="store_true")
    ap.add_argument("--callers", metavar="REGEX", help="the callers of the functions matching REGEX")
    ap.add_argument("--callers-of-top", action="store_true",
                    help="the callers of the function with the most self cost")
    ap.add_argument("--width", type=int, default=140)
    a = ap.parse_args()

    self_cost, call_cost, totals = parse(a.file)
    total = totals or sum(self_cost.values())
    ranked = self_cost.most_common()

    if a.callers or a.callers_of_top:
        if a.callers_of_top:
            top_fn = ranked[0][0][1]
            match = lambda f: f == top_fn
        else:
            pat = re.compile(a.callers)
            match = lambda f: bool(pat.search(f))
        pairs = [(k, ir) for k, ir in call_cost.items() if match(k[1]) and not match(k[0])]
        for (caller, callee), ir in sorted(pairs, key=lambda kv: -kv[1])[: a.top]:
            label = f"{caller} -> {callee}"
            if len(label) > a.width:
                label = label[: a.width - 3] + "..."
            print(f"{ir / a.per:9.0f} Ir/req  {label}")
        return

    if not a.crypto:
        for (ob, fn), ir in ranked[: a.top]:
            label = f"{fn} [{short_obj(ob)}]"
            if len(label) > a.width:
                label = label[: a.width - 3] + "..."
            print(f"{ir / a.per:9.0f} Ir/req {100 * ir / total:5.2f}%  {label}")
        return

    found = []
    pat = re.compile(r"gcm|ghash|gmult|aes|clmul|polyval", re.I)
    for (ob, fn), ir in ranked:
        if ir / a.per < 1:
            break
        if pat.search(fn):
            found.append(f"{fn} [{short_obj(ob)}] {ir / a.per:.0f} Ir/req")
        elif fn.startswith("0x") and "libcrypto" in ob:
            kinds = disasm_kinds(ob, fn)
            if kinds:
                k = ", ".join(f"{n}x {op}" for op, n in kinds.most_common())
                found.append(f"{short_obj(ob)}:{fn} (no symbol; its code: {k}) {ir / a.per:.0f} Ir/req")
    if not found:
        print("  (none found)")
    for f in found[: a.top]:
        print(f"  {f}")


if __name__ == "__main__":
    sys.exit(main())
