# Set-up and the two everyday commands. Everything the project needs is installed here:
# a venv with the package and its dev tools, the verified model, the sample clips, mosquitto.
SHELL := bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
# Offline installs and CI copy the model from a local mirror instead of downloading it.
MIRROR ?= $(wildcard $(SHARED)/models)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo test lint bench mosquitto streams compiler chromium model samples screenshot \
	check-arm64

setup: $(BIN)/camapp mosquitto streams compiler chromium model samples

$(BIN)/camapp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# The tests also use mosquitto_passwd (same package), mosquitto_sub (the bench's subscriber)
# and openssl (TLS certificates).
mosquitto:
	@command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q mosquitto; }
	@command -v mosquitto_sub >/dev/null || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q mosquitto-clients; }
	@command -v openssl >/dev/null || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q openssl; }

# The stream tests' real servers: GStreamer's RTSP server, run by the system python3
# (tests/rtsp_server.py), and ffmpeg's HTTP server for MJPEG.
STREAM_PACKAGES := ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 \
	gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
streams:
	@{ command -v ffmpeg && /usr/bin/python3 tests/rtsp_server.py --check; } >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -q && \
		  $(SUDO) apt-get install -y -q --no-install-recommends $(STREAM_PACKAGES); }

# The tests build a stand-in libedgetpu (tests/fake_libedgetpu.c) with it.
compiler:
	@command -v cc >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q gcc; }

# The live view's browser tests drive Debian's Chromium through its chromedriver; nothing
# downloads a browser of its own.
chromium:
	@[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver; }

model: $(BIN)/camapp
	$(BIN)/camapp model fetch $(if $(MIRROR),--mirror $(MIRROR))

samples: $(BIN)/camapp
	$(BIN)/python sample_videos/build.py --shared $(SHARED)

# Replays the sample clip at its own pace and prints each classification as it is published,
# to a throwaway mosquitto of its own on a free loopback port, gone when the demo ends: no
# Home Assistant, no other subscriber, keeps anything of it. DEMO_BROKER=HOST:PORT publishes
# to that broker instead (Home Assistant discovery included); DEMO_SOURCE and DEMO_ARGS
# change what `camapp run` replays and how.
DEMO_BROKER ?=
DEMO_SOURCE ?= sample_videos/photos.mp4
DEMO_ARGS ?=
demo: setup
	@PATH="$$PATH:/usr/sbin"; target="$(DEMO_BROKER)"; broker=; dir=; \
	trap '[ -z "$$broker" ] || { kill $$broker; wait $$broker; }; [ -z "$$dir" ] || rm -rf "$$dir"' \
		EXIT; \
	if [ -z "$$target" ]; then \
		dir=$$(mktemp -d); port=$$($(BIN)/python -c \
			'from camapp.bench.broker import free_port; print(free_port())'); \
		printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$$port" \
			> "$$dir/mosquitto.conf"; \
		mosquitto -c "$$dir/mosquitto.conf" >/dev/null 2>&1 & broker=$$!; \
		for _ in $$(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$$port") 2>/dev/null && break; \
			sleep 0.1; done; \
		target="127.0.0.1:$$port"; \
		echo "demo: publishing to a throwaway broker of its own, $$target, gone when it ends;" \
			"watch with: mosquitto_sub -p $$port -t 'camapp/#' -v"; \
	fi; \
	$(BIN)/camapp run --source "$(DEMO_SOURCE)" --camera-id demo --print \
		--mqtt-host "$${target%:*}" --mqtt-port "$${target##*:}" $(DEMO_ARGS)

# camapp against the bare interpreter and a naive loop; report in benchmarks/results/.
bench: setup
	PATH="$$PATH:/usr/sbin" $(BIN)/camapp bench

# The README's picture of the live view, taken by its browser test.
screenshot: setup
	CAMAPP_SCREENSHOT=docs/live-view.png PATH="$$PATH:/usr/sbin" \
		$(BIN)/python -m pytest -q tests/test_web_browser.py -k screenshot
	CAMAPP_SCREENSHOT=docs/live-view-detector.png PATH="$$PATH:/usr/sbin" \
		$(BIN)/python -m pytest -q tests/test_web_detector.py

# The Pi install checked under emulation (deploy/check-arm64.sh): Debian bookworm arm64 under
# qemu-user, installed as deploy/install.sh does, every module imported, the shared photos
# classified and compared with this machine. Needs root; takes many minutes and downloads a
# few hundred MB from Debian and PyPI, so it is not part of `make test`.
check-arm64: $(BIN)/camapp
	$(SUDO) env SHARED=$(SHARED) PYTHON=$(abspath $(BIN)/python) deploy/check-arm64.sh

lint: $(BIN)/camapp
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Four workers on two cores: most tests wait on brokers, servers and child processes (a run of
# the network tests used 50 CPU s in 138 s wall with two workers, 84 s with four).
test: setup lint
	PATH="$$PATH:/usr/sbin" $(BIN)/python -m pytest -n 4 --dist worksteal
