"""The raw binding against include/zerohttp.h: every zh_* function declared there is bound with
argtypes/restype matching its C prototype; structs, callback types and constants match."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from ctypes import POINTER, c_bool, c_char_p, c_int32, c_int64, c_size_t, c_uint8, c_uint16, c_uint32, c_uint64, c_void_p

import pytest

import zerohttp
from zerohttp import _ffi as ffi

from conftest import HEADER, PKG_DIR

SCALARS = {
    "uint8_t": c_uint8,
    "uint16_t": c_uint16,
    "uint32_t": c_uint32,
    "uint64_t": c_uint64,
    "int32_t": c_int32,
    "int64_t": c_int64,
    "size_t": c_size_t,
    "ptrdiff_t": ctypes.c_ssize_t,
    "bool": c_bool,
    "zh_result": c_uint32,
}


def _source() -> str:
    text = HEADER.read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


SRC = _source()
OPAQUE = set(re.findall(r"typedef struct (zh_\w+) \1;", SRC))
STRUCTS = {name: body for name, body in re.findall(r"typedef struct (zh_\w+) \{(.*?)\} \1;", SRC, flags=re.S)}
CALLBACKS = {
    name: (ret, params)
    for ret, name, params in re.findall(r"typedef\s+([\w\s\*]+?)\s*\(\*(zh_\w+)\)\s*\(([^;]*?)\)\s*;", SRC, flags=re.S)
}
FUNCS = {
    name: (ret, params)
    for ret, name, params in re.findall(r"^([A-Za-z_][\w \t\*]*?)\b(zh_\w+)\s*\(([^;{]*?)\)\s*;", SRC, flags=re.M | re.S)
    if not ret.lstrip().startswith("typedef")
}


def _norm(ctype: str) -> tuple[str, int]:
    """'const struct zh_request *' -> ('struct zh_request', 1)."""
    t = re.sub(r"\bconst\b", " ", ctype)
    stars = t.count("*")
    base = " ".join(t.replace("*", " ").split())
    return base, stars


def expected_ctype(ctype: str):
    """The ctypes types accepted for a C type of the header (a tuple of alternatives)."""
    base, stars = _norm(ctype)
    name = base.removeprefix("struct ")
    if name in OPAQUE:
        return {1: (c_void_p,), 2: (POINTER(c_void_p),)}[stars]
    if name in STRUCTS:
        struct = getattr(ffi, name)
        return {0: (struct,), 1: (POINTER(struct),)}[stars]
    if name in CALLBACKS:
        assert stars == 0
        return (getattr(ffi, name),)
    if base == "char":
        return {1: (c_char_p,), 2: (POINTER(c_char_p),)}[stars]
    if base == "void":
        return {0: (None,), 1: (c_void_p,)}[stars]
    if base == "uint8_t" and stars == 2:
        return (POINTER(c_void_p), POINTER(POINTER(c_uint8)))
    if base == "uint8_t" and stars == 1:
        return (POINTER(c_uint8), c_void_p)
    scalar = SCALARS[base]
    if stars == 0:
        return (scalar,)
    assert stars == 1, ctype
    return (POINTER(scalar),)


def split_params(params: str) -> list[str]:
    """Parameter types without names: 'struct zh_config *cfg, uint32_t threads' -> [...]."""
    params = " ".join(params.split())
    if params in ("", "void"):
        return []
    out = []
    for p in params.split(","):
        p = p.strip()
        m = re.match(r"^(.*?[\s\*])(\w+)$", p)
        assert m, f"cannot parse parameter {p!r}"
        out.append(m.group(1).strip())
    return out


def test_header_parsed():
    # Guard against a parser that silently finds nothing.
    assert len(FUNCS) >= 50, sorted(FUNCS)
    assert {"zh_engine_new", "zh_respond", "zh_stream_end", "zh_result_str"} <= set(FUNCS)
    assert {"zh_engine", "zh_request", "zh_response", "zh_stream", "zh_config", "zh_source"} <= OPAQUE
    assert {"zh_stats", "zh_chunk_out"} <= set(STRUCTS)


def test_every_header_function_is_bound():
    lib = ffi.lib()
    unbound = sorted(set(FUNCS) - set(ffi.FUNCTIONS))
    assert not unbound, f"zh_ functions in include/zerohttp.h without a binding in zerohttp/_ffi.py: {unbound}"
    stale = sorted(set(ffi.FUNCTIONS) - set(FUNCS))
    assert not stale, f"bindings for functions no longer in the header: {stale}"
    assert not ffi.MISSING, f"functions the loaded library ({ffi.library_path()}) does not export: {ffi.MISSING}"
    for name, (ret, params) in FUNCS.items():
        fn = getattr(lib, name)
        assert fn.argtypes is not None, f"{name}: argtypes not set"
        want_args = [expected_ctype(t) for t in split_params(params)]
        assert len(fn.argtypes) == len(want_args), f"{name}: {len(fn.argtypes)} argtypes, header has {len(want_args)}"
        for i, (got, want) in enumerate(zip(fn.argtypes, want_args)):
            assert got in want, f"{name} argument {i}: bound {got}, header says {split_params(params)[i]!r}"
        ret = ret.strip()
        if ret == "void":
            assert fn.restype is None, f"{name}: restype should be None"
        else:
            want = expected_ctype(ret)
            # Pointer returns are bound as c_char_p / c_void_p (never the default c_int).
            assert fn.restype in want, f"{name}: restype {fn.restype}, header says {ret!r}"


def test_callback_types_match_header():
    assert {"zh_handler_fn", "zh_head_handler_fn", "zh_body_done_fn", "zh_release_fn", "zh_poll_fn", "zh_drain_fn"} <= set(CALLBACKS)
    for name, (ret, params) in CALLBACKS.items():
        cb = getattr(ffi, name, None)
        assert cb is not None, f"callback type {name} has no ctypes CFUNCTYPE in _ffi"
        want_ret = expected_ctype(ret)
        assert cb._restype_ in want_ret, f"{name}: returns {cb._restype_}, header {ret!r}"
        want = [expected_ctype(t) for t in split_params(params)]
        assert len(cb._argtypes_) == len(want), name
        for got, w in zip(cb._argtypes_, want):
            assert got in w, f"{name}: {got} not in {w}"


def _struct_fields(body: str) -> list[tuple[str, str]]:
    fields = []
    for decl in body.split(";"):
        decl = " ".join(decl.split())
        if not decl:
            continue
        m = re.match(r"^(.*?[\s\*])(\w+)$", decl)
        assert m, decl
        fields.append((m.group(2), m.group(1).strip()))
    return fields


@pytest.mark.parametrize("struct", sorted(STRUCTS))
def test_struct_fields_match_header(struct):
    want = _struct_fields(STRUCTS[struct])
    got = getattr(ffi, struct)._fields_
    assert [n for n, _ in got] == [n for n, _ in want], f"{struct} fields differ from the header (order matters)"
    for (name, gtype), (_, ctype) in zip(got, want):
        assert gtype in expected_ctype(ctype), f"{struct}.{name}: {gtype} vs {ctype!r}"
    if struct == "zh_stats":
        assert want[0] == ("struct_size", "uint32_t")


def test_every_struct_in_header_is_mirrored():
    for name in STRUCTS:
        assert hasattr(ffi, name), f"struct {name} is not mirrored in _ffi"


def test_constants_match_header():
    defines = dict(re.findall(r"^#define (ZH_\w+) (\S+)\s*$", SRC, flags=re.M))
    assert len(defines) >= 25
    for name, value in defines.items():
        want = 2**64 - 1 if value == "UINT64_MAX" else int(value, 0)
        assert getattr(zerohttp, name, None) == want, f"{name}: header {value}, Python {getattr(zerohttp, name, None)}"
    # Every error code has a name and a library description.
    for name, value in defines.items():
        if name.startswith("ZH_ERR_"):
            assert ffi.RESULT_NAMES[int(value)] == name
            assert zerohttp.result_str(int(value))


def test_version_agrees():
    v = zerohttp.version()
    assert v == f"{zerohttp.ZH_VERSION_MAJOR}.{zerohttp.ZH_VERSION_MINOR}.{zerohttp.ZH_VERSION_PATCH}"
    assert v == zerohttp.__version__


def test_zherror_carries_result_str():
    e = zerohttp.ZhError(zerohttp.ZH_ERR_ALREADY_USED, call="zh_respond")
    assert e.code == 3 and e.name == "ZH_ERR_ALREADY_USED"
    assert e.message == zerohttp.result_str(3)
    assert "zh_respond" in str(e) and e.message in str(e)
    assert isinstance(zerohttp.ClosedError(zerohttp.ZH_ERR_CLOSED), zerohttp.ZhError)


# ---- the loader: env override -> bundled -> system ----------------------------------------


def _run(code: str, env_extra: dict, pythonpath: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ZEROHTTP_LIBRARY", "ZEROHTTP_LIB")}
    env.update(env_extra)
    env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_loader_env_alias(library_path):
    r = _run("import zerohttp; print(zerohttp.library_path()); print(zerohttp.version())", {"ZEROHTTP_LIB": library_path}, str(PKG_DIR))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [library_path, zerohttp.version()]


def test_loader_env_missing_file_is_a_clear_error():
    r = _run(
        "import zerohttp\ntry:\n    zerohttp.version()\nexcept zerohttp.LibraryNotFound as e:\n    print('ERR', e)\n",
        {"ZEROHTTP_LIBRARY": "/nonexistent/libzerohttp.so"},
        str(PKG_DIR),
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ERR") and "/nonexistent/libzerohttp.so" in r.stdout


def test_loader_bundled_then_system(tmp_path, library_path):
    pkg = tmp_path / "zerohttp"
    shutil.copytree(PKG_DIR / "zerohttp", pkg, ignore=shutil.ignore_patterns("__pycache__", "*.so*"))
    code = "import zerohttp\ntry:\n    print('OK', zerohttp.library_path())\nexcept zerohttp.LibraryNotFound as e:\n    print('ERR', e)\n"
    # Without a bundled copy: the system's, or a clear error naming the override.
    r = _run(code, {}, str(tmp_path))
    assert r.returncode == 0, r.stderr
    if ctypes.util.find_library("zerohttp") is None:
        assert r.stdout.startswith("ERR") and "ZEROHTTP_LIBRARY" in r.stdout, r.stdout
    else:
        assert r.stdout.startswith("OK"), r.stdout
    # With a bundled copy next to the package: that one.
    shutil.copy(library_path, pkg / "libzerohttp.so")
    r = _run(code, {}, str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"OK {pkg / 'libzerohttp.so'}"
