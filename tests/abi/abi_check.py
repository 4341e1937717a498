#!/usr/bin/env python3
"""ABI checks on the built library: version agreement (Cargo.toml, header macros, zh_version(),
ZH_VERSION_NUMBER as the C compiler sees it), the SONAME, and the exported symbol list (only
zh_* may be exported, so Rust internals never become ABI).

Usage: abi_check.py [LIBDIR]   (default: target/release). Prints "N passed, M failed".
"""
import ctypes
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIBDIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release")
SO = os.path.join(LIBDIR, "libzerohttp.so")
passed = failed = 0


def check(ok, what):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)


cargo = open(os.path.join(ROOT, "Cargo.toml")).read()
pkg = cargo.split("[package]", 1)[1].split("\n[", 1)[0]
cargo_version = re.search(r'^version\s*=\s*"([^"]+)"', pkg, re.M).group(1)
header = open(os.path.join(ROOT, "include", "zerohttp.h")).read()
macros = {k: int(re.search(rf"#define ZH_VERSION_{k} (\d+)", header).group(1)) for k in ("MAJOR", "MINOR", "PATCH")}
header_version = f"{macros['MAJOR']}.{macros['MINOR']}.{macros['PATCH']}"
check(header_version == cargo_version, f"header macros {header_version} == Cargo.toml {cargo_version}")

lib = ctypes.CDLL(SO)
lib.zh_version.restype = ctypes.c_char_p
runtime = lib.zh_version().decode()
check(runtime == cargo_version, f"zh_version() {runtime} == Cargo.toml {cargo_version}")

with tempfile.TemporaryDirectory() as d:
    src = os.path.join(d, "v.c")
    with open(src, "w") as f:
        f.write('#include <stdio.h>\n#include "zerohttp.h"\nint main(void){printf("%u", (unsigned)ZH_VERSION_NUMBER);return 0;}\n')
    exe = os.path.join(d, "v")
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", os.path.join(ROOT, "include"), src, "-o", exe], check=True)
    number = int(subprocess.run([exe], capture_output=True, text=True, check=True).stdout)
expected = (macros["MAJOR"] << 16) | (macros["MINOR"] << 8) | macros["PATCH"]
check(number == expected, f"ZH_VERSION_NUMBER {number:#08x} == (MAJOR<<16)|(MINOR<<8)|PATCH")

dyn = subprocess.run(["readelf", "-d", SO], capture_output=True, text=True, check=True).stdout
soname = re.search(r"Library soname: \[([^\]]+)\]", dyn)
check(bool(soname) and soname.group(1) == f"libzerohttp.so.{macros['MAJOR']}", f"SONAME {soname.group(1) if soname else None}")

syms = subprocess.run(["nm", "-D", "--defined-only", SO], capture_output=True, text=True, check=True).stdout.split("\n")
exported = [line.split()[-1] for line in syms if len(line.split()) == 3 and line.split()[1] in "TDBRVWi"]
foreign = [s for s in exported if not s.startswith("zh_")]
check(len(exported) > 50 and not foreign, f"{len(exported)} exported symbols, all zh_* (others: {foreign[:10]})")
declared = set(re.findall(r"\b(zh_\w+)\s*\(", header))
missing = sorted(s for s in declared if s not in exported and not s.endswith("_fn"))
check(not missing, f"every function declared in the header is exported (missing: {missing[:10]})")

print(f"{passed} passed, {failed} failed")
sys.exit(0 if failed == 0 else 1)
