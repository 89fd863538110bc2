"""Only for the opt-in compiled build; pyproject.toml holds the package's metadata.

By default this is plain setuptools: a pure-Python package, and mypy is not needed to build it.
With ``GATEWAY_COMPILE=1`` (``make compiled``) the hot modules below are compiled with mypyc into C
extensions; that build needs mypy (which brings mypyc) and a C compiler with the Python headers, and
is meant for a wheel (``pip wheel --no-build-isolation``), never an in-place build: an extension module
next to its .py file shadows it, so later edits of the source would be silently ignored.
"""

from __future__ import annotations

import os
from glob import glob

from setuptools import setup

#: The per-request path: parse, the checks, admission, the call, rendering, signing, the memory store (whose
#: MemoryStore stays open to interpreted subclasses: mypy_extensions.mypyc_attr, a runtime dependency)
#: and the middleware (no await in its except/finally blocks: the note in gateway/middleware.py; a
#: compiled `except E: await ...` re-raised an exception the interpreted callee had already caught, when
#: the Task had thrown it in as a future's failure).
#: Left interpreted, like everything else here (configuration, CLI, Redis store, proxy):
#: - gateway/metrics.py: a dataclass whose annotations exist only under TYPE_CHECKING fails at import
#:   once compiled.
COMPILED = [
    "gateway/identity.py",
    "gateway/render.py",
    "gateway/chain.py",
    "gateway/call.py",
    "gateway/parse.py",
    "gateway/named_twice.py",
    "gateway/parsing.py",
    "gateway/admit.py",
    "gateway/admitted.py",
    "gateway/respond.py",
    "gateway/memo.py",
    "gateway/middleware.py",
    *sorted(glob("gateway/checks/*.py")),
    "gateway/signing/_encoding.py",
    "gateway/signing/_mac.py",
    "gateway/signing/v1.py",
    "gateway/signing/v3.py",
    "gateway/stores/memory.py",
]

if os.environ.get("GATEWAY_COMPILE") == "1":
    from mypyc.build import mypycify

    # A build directory of its own: the extension modules must never end up in a pure-Python wheel
    # built later from the same checkout (setuptools packs whatever build/lib holds).
    setup(ext_modules=mypycify(COMPILED, opt_level="3", target_dir="build/compiled/mypyc"),
          options={"build": {"build_base": "build/compiled"}})
else:
    setup()
