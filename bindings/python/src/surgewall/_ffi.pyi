# The cffi API-mode module generated at build time from include/surgewall.h.
from typing import Any

ffi: Any
lib: Any
