"""llama.cpp's native log lines, routed into Python logging (DEBUG) or dropped.

The last warning/error lines are kept so a failed load can say why; `line_hook` sees every line
(quantize uses it for progress)."""

from __future__ import annotations

import ctypes
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

native_log = logging.getLogger("edge_slm.llm.native")

_WARN, _ERROR = 2, 3


class NativeLogs:
    def __init__(self) -> None:
        self.enabled = False
        self.recent: deque[str] = deque(maxlen=8)
        self._callback: Any = None
        self._partial = ""
        self.line_hook: Callable[[str], None] | None = None

    def install(self, llama_cpp: Any, enabled: bool) -> None:
        self.enabled = enabled
        if self._callback is not None:
            return

        @llama_cpp.llama_log_callback
        def _cb(level: int, text: bytes, user_data: Any) -> None:
            try:
                line = text.decode("utf-8", errors="replace")
            except Exception:  # pragma: no cover - never raise into C
                return
            if level in (_WARN, _ERROR):
                self.recent.append(line.strip())
            hook = self.line_hook
            if hook is not None:
                try:
                    hook(line)
                except Exception:  # pragma: no cover - never raise into C
                    pass
            if self.enabled:
                self._partial += line
                if self._partial.endswith("\n"):
                    native_log.debug("%s", self._partial.rstrip())
                    self._partial = ""

        self._callback = _cb  # keep a reference: the C side holds a raw pointer
        llama_cpp.llama_log_set(_cb, ctypes.c_void_p(0))

    def last_error(self) -> str:
        return self.recent[-1] if self.recent else ""


NATIVE_LOGS = NativeLogs()
