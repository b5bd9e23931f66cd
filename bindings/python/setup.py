"""Build of the `surgewall` Python package.

Steps, all inside `build_ext` (so `pip install`, `pip wheel` and `setup.py build_ext` agree):

1. `cargo build --release -p surgewall-ffi` at the repository root (reusing its target/), which
   makes `libsurgewall.so`. The root is found by walking up from this file to the workspace
   `Cargo.toml`, or taken from `$SURGEWALL_ROOT`.
2. The shared library is copied into the package (`surgewall/libsurgewall.so`).
3. `surgewall._ffi`: a cffi API-mode module for the whole C ABI, its declarations read from the
   committed `include/surgewall.h` (preprocessed by gcc with stub system headers, so whatever
   the lead adds to the ABI is bound without touching this file).
4. `surgewall._speedups`: a small hand-written C extension for the guarded calls of named and
   keyed breakers (acquire + call + record without releasing the GIL), which is what makes G5.

Both extensions link against the one `libsurgewall.so` with an `$ORIGIN` rpath, so the process
holds a single copy of the library (one handle table, one event ring) and needs no
LD_LIBRARY_PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def repo_root() -> Path:
    env = os.environ.get("SURGEWALL_ROOT")
    if env:
        return Path(env).resolve()
    for p in [HERE, *HERE.parents]:
        if (p / "ffi" / "Cargo.toml").is_file() and (p / "include" / "surgewall.h").is_file():
            return p
    raise SystemExit(
        "surgewall: cannot find the repository root (ffi/Cargo.toml); "
        "build from a checkout or set SURGEWALL_ROOT"
    )


def cdef_from_header(header: Path) -> str:
    """The header's declarations as cffi's cdef wants them: no preprocessor lines.

    gcc -E with empty stand-ins for the system headers resolves the header's own #if blocks
    (C11: enums are plain int32_t typedefs) while leaving uint64_t, bool, size_t as names cffi
    knows.
    """
    with tempfile.TemporaryDirectory() as stubs:
        for name in ("stdint.h", "stdbool.h", "stddef.h"):
            Path(stubs, name).write_text("")
        out = subprocess.run(
            ["gcc", "-E", "-P", "-std=c11", "-nostdinc", "-I", stubs, str(header)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    # Integer macros (version numbers) as cffi constants; cffi takes `#define NAME <int>`.
    defines = re.findall(r"^#define (SURGEWALL_\w+) (\d+)\b", header.read_text(), re.M)
    return out + "".join(f"\n#define {name} {value}" for name, value in defines) + "\n"


class BuildExt(build_ext):
    def run(self) -> None:
        root = repo_root()
        cargo = os.environ.get("CARGO", "cargo")
        print(f"surgewall: cargo build --release -p surgewall-ffi in {root}", flush=True)
        subprocess.run(
            [cargo, "build", "--release", "-p", "surgewall-ffi"], cwd=root, check=True
        )
        target = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
        if not target.is_absolute():
            target = root / target
        lib = target / "release" / "libsurgewall.so"
        if not lib.is_file():
            raise SystemExit(f"surgewall: cargo did not produce {lib}")

        # The library goes beside the package modules (build_lib for wheels, the source
        # tree for --inplace builds) and is linked from a private copy in build_temp.
        libdir = Path(self.build_temp).resolve() / "surgewall-lib"
        libdir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib, libdir / "libsurgewall.so")
        if shutil.which("strip"):
            subprocess.run(["strip", "--strip-debug", str(libdir / "libsurgewall.so")], check=False)
        pkg_dir = Path(self.get_ext_fullpath("surgewall._ffi")).resolve().parent
        pkg_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(libdir / "libsurgewall.so", pkg_dir / "libsurgewall.so")

        import cffi

        ffib = cffi.FFI()
        header = root / "include" / "surgewall.h"
        ffib.cdef(cdef_from_header(header))
        ffib.set_source("surgewall._ffi", '#include "surgewall.h"')
        gen = Path(self.build_temp).resolve() / "_ffi.c"
        gen.parent.mkdir(parents=True, exist_ok=True)
        ffib.emit_c_code(str(gen))

        for ext in self.extensions:
            if ext.name == "surgewall._ffi":
                ext.sources = [str(gen)]
            ext.include_dirs.append(str(root / "include"))
            ext.library_dirs.append(str(libdir))
            ext.libraries.append("surgewall")
            ext.extra_link_args.append("-Wl,-rpath,$ORIGIN")
        super().run()


setup(
    ext_modules=[
        Extension("surgewall._ffi", sources=["placeholder.c"]),
        Extension(
            "surgewall._speedups",
            sources=[
                "src/surgewall/_speedups.c",
                "src/surgewall/_keyed_core.c",
                "src/surgewall/_lease.c",
            ],
            depends=["src/surgewall/_speedups.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
        ),
    ],
    cmdclass={"build_ext": BuildExt},
)
