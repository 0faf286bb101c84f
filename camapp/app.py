"""The composition root: validated settings in, a running app of N cameras out.

Everything that can be wrong with the set-up (models, labels, backends, TLS files, sources) is
found here, before capture starts and before anything is announced on the broker. Parts are
wired by explicit registration (`publisher.on_connected(...)`, `channel.subscribe(...)`), never
by constructors with side effects.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from camapp.capture import Reconnecting, Source, imx500, open_source
from camapp.capture.base import source_name
from camapp.capture.motion import MotionGate
from camapp.config.load import RunConfig
from camapp.config.schema import CameraSettings
from camapp.detect.zones import Zone, parse_zones
from camapp.devices import Devices
from camapp.errors import EXIT_OK, CamappError, ConfigError, SourceError
from camapp.governor.controller import Controller, SourceInfo
from camapp.governor.loop import Governor
from camapp.governor.sensors import Sensors
from camapp.inference import ladder, loader
from camapp.inference.detector import DetectorSpec
from camapp.inference.preprocess import Roi
from camapp.publish import ha
from camapp.publish.commands import Action, CommandHandler
from camapp.publish.mqtt import MqttPublisher, default_client_id, dumps
from camapp.publish.objects import ObjectsSink
from camapp.publish.sinks import ClassificationSink, PrintSink
from camapp.publish.snapshot import EventSnapshots, Snapshots, objects_drawer
from camapp.publish.source import SourceWatch
from camapp.publish.state import StateSink
from camapp.publish.topics import Channel, process_topic
from camapp.runtime import actions
from camapp.runtime.camera import Camera, CameraPlan, RunStats, Sink
from camapp.runtime.controls import Controls
from camapp.runtime.pipeline import Pipeline, RunReport
from camapp.web import auth
from camapp.web.feed import CameraFeed, ModelView
from camapp.web.labelling import Labels

if TYPE_CHECKING:
    from camapp.web.server import LiveServer

log = logging.getLogger("camapp")
Switched = Callable[[loader.Planned], None]  # told of a model switched by `set`
Rezoned = Callable[[Sequence[Zone]], None]  # told of a detector camera's zones set by `set`


@dataclass(frozen=True)
class Offers:
    """What a camera's `set` commands act within: the models it offers, its dataset's
    limits, and who follows a model switch (Home Assistant's entities)."""

    known: actions.KnownModels
    limits: actions.DatasetLimits
    switched: Switched | None
    crops: actions.Crops | None = None  # a detector camera's tracked objects


@dataclass
class Wired:
    """One camera's parts, as the app keeps them for the run."""

    settings: CameraSettings
    setup: loader.Planned
    channel: Channel
    controls: Controls
    camera: Camera
    costs: tuple[float, ...]  # the model ladder's, rung 0 first
    feed: CameraFeed | None  # the live view's, when it is on


class App:
    def __init__(self, config: RunConfig) -> None:
        self.config = config
        cameras = config.cameras
        for camera in cameras:
            if not camera.source:
                raise ConfigError("no source: pass --source or set 'source' in the config file")
        http = config.app.http
        self.http_password = auth.password_hash(http) if http.bind is not None else None
        if http.bind is not None:
            auth.check_exposure(http, self.http_password)
        threads = config.app.threads_per_worker
        self.devices = Devices()  # a Hailo's or the AI Camera's network: closed when run() ends
        # A camera whose model file is a detector detects; the others classify.
        setups = _shared([loader.plan_camera(c, threads, self.devices) for c in cameras])
        mqtt = config.mqtt
        client_id = mqtt.client_id or default_client_id(cameras[0].camera_id)
        own = [f"{mqtt.base_topic}/{c.camera_id}/availability" for c in cameras]
        shared = [process_topic(mqtt.base_topic, client_id)] if len(cameras) > 1 else []
        # Checks the TLS files before any camera opens.
        self.publisher = MqttPublisher(mqtt, client_id, config.password, [*shared, *own])
        self.stop = threading.Event()  # shared with reconnecting sources
        app = config.app
        power_model = (app.power_idle, app.power_full) if app.power_idle is not None else None
        self._sensors = Sensors(power_model=power_model)
        self.pipeline = Pipeline(config.app.duration, self.stop)
        self.pool = self.pipeline.add_pool(config.app.workers, loader.load_checked)
        # Each model loaded and run once before capture; the workers are handed that copy.
        first = {setup.key: loader.load_any(setup) for setup in dict.fromkeys(setups)}
        for setup in setups:
            self.pool.seed(setup, [first[setup.key]])
        self.snapshots: list[Snapshots | EventSnapshots] = []
        self.wired = [
            self._camera(settings, setup, first[setup.key], shared)
            for settings, setup in zip(cameras, setups, strict=True)
        ]
        self.governor = self._governor()
        self.live = self._live_view()  # listens already: a taken port is found before capture
        self._threads: list[threading.Thread] = []

    def _camera(
        self,
        settings: CameraSettings,
        setup: loader.Planned,
        loaded: loader.Model,
        shared: list[str],
    ) -> Wired:
        """One camera wired: its channel, controls, source, sinks, commands and pictures;
        `loaded` is its model as loaded and run once at start."""
        base = self.config.mqtt.base_topic
        own = f"{base}/{settings.camera_id}/availability"
        channel = Channel(self.publisher, base, settings.camera_id, (*shared, own))
        controls = Controls(
            **{k: getattr(settings, k) for k in ("stride", "threshold", "paused")},
            **{k: getattr(settings, k) for k in ("cpu_budget", "power_budget", "temp_limit")},
        )
        if isinstance(setup, DetectorSpec):
            return self._detector(settings, setup, loaded, channel, controls)
        state = StateSink(channel, controls, settings.state_frames)
        self.publisher.on_connected(state.republish)
        watch = SourceWatch(channel, state, settings.source_timeout)
        source = self._open(settings, setup, max(loaded.size), watch)
        known = actions.KnownModels(settings.camera_id, dataset_of(settings), (setup,))
        sinks, switched = self._sinks(settings, setup, channel, state, source.live, known)
        crop, roi = loader.view(settings, setup)
        offers = Offers(known, actions.DatasetLimits.of(settings, dataset_of(settings)), switched)
        plan = _plan(settings, crop, roi, offers.limits)
        camera, rungs = self._add(settings, setup, loaded, plan, (source, sinks), known, controls)
        commands = self._commands(settings, channel, controls, camera, offers)
        view = ModelView(setup.name, loaded.size, crop, roi)
        feed = self._pictures(settings, view, camera, commands, state)
        return Wired(settings, setup, channel, controls, camera, rungs.costs, feed)

    def _detector(
        self,
        settings: CameraSettings,
        spec: DetectorSpec,
        loaded: loader.Model,
        channel: Channel,
        controls: Controls,
    ) -> Wired:
        """A detector camera: the same capture, queues, workers, stop, governor and model
        ladder (detectors that know its tracked labels), its results published by one
        ObjectsSink, whose tracker follows labels by name across a step; its zones set by
        `set`, its model switched by `set` (another detector of its tracked labels), its
        pictures with their boxes, its Home Assistant entities those of its counts, the live
        view's feed when the page is on."""
        zones = parse_zones((zone.name, zone.points) for zone in settings.zones)
        objects = ObjectsSink(channel, settings.track, zones, settings.state_frames)
        self.publisher.on_connected(objects.republish)
        watch = SourceWatch(channel, objects, settings.source_timeout)
        source = self._open(settings, spec, max(loaded.size), watch)
        names = [zone.name for zone in zones]
        known = actions.KnownModels(settings.camera_id, dataset_of(settings), (spec,))
        follows = self._counting_ha(settings, spec, channel, source.live, names, known)
        rezoned, switched = follows or (None, None)
        limits = actions.DatasetLimits.of(settings, dataset_of(settings))
        offers = Offers(known, limits, switched, objects)
        crop, roi = loader.view(settings, spec)
        plan = _plan(settings, crop, roi, offers.limits)
        plan.classify = self._crop_classifiers(settings)
        plan.classify_every = settings.classify_every
        objects.classified, objects.eager = frozenset(plan.classify), plan.eager
        camera, rungs = self._add(
            settings, spec, loaded, plan, (source, [objects]), known, controls
        )
        objects.save_crop = functools.partial(actions.keep_crop, offers.limits, camera)
        setter = actions.SetZones(objects.set_zones, objects.zones, rezoned)
        commands = self._commands(settings, channel, controls, camera, offers, setter)
        if settings.snapshot_interval:
            self._counted_pictures(settings, commands.channel, camera, objects)
        view = ModelView(spec.name, loaded.size, "stretch", roi)  # a detector sees its whole ROI
        camera.tap.set_rate(self.config.app.http.view_fps)
        feed = self._feed(settings, view, camera, commands, objects)
        return Wired(settings, spec, channel, controls, camera, rungs.costs, feed)

    def _counting_ha(
        self,
        settings: CameraSettings,
        spec: DetectorSpec,
        channel: Channel,
        live: bool,
        zones: Sequence[str],
        known: actions.KnownModels,
    ) -> tuple[Rezoned, Switched] | None:
        """A detector camera's Home Assistant entities, a function of its zones, tracked
        labels and model: announced at every connection; the functions returned announce
        them again for a change at run time (its zones, or a model switched by `set`),
        removing those of zones gone. Its model select offers the
        detectors it knows."""
        if not self.config.app.ha.discovery:
            return None
        counting, model = ha.Counting(tuple(settings.track), tuple(zones)), spec.name
        lock = threading.Lock()  # zones change on the network thread, models on the handler's

        def described() -> ha.Camera:
            return ha.Camera(
                channel, self.config.mqtt.qos, model, (),
                models=known.options(detectors=True),
                temperature=self._sensors.temperature().value is not None,
                area=settings.area, live=live, snapshots=bool(settings.snapshot_interval),
                counting=counting,
            )  # fmt: skip

        def rezoned(zones: Sequence[Zone]) -> None:
            nonlocal counting
            with lock:
                counting = ha.Counting(counting.track, tuple(zone.name for zone in zones))
                discovery.update(described())

        def switched(setup: loader.Planned) -> None:
            nonlocal model
            with lock:
                model = setup.name
                discovery.update(described())

        discovery = ha.Discovery(described(), self.config.app.ha)
        self.publisher.on_connected(discovery.announce)
        self.publisher.subscribe(discovery.status_topic, discovery.on_status)
        self.publisher.watch(discovery.filter, discovery.note)
        return rezoned, switched

    def _counted_pictures(
        self, settings: CameraSettings, channel: Channel, camera: Camera, objects: ObjectsSink
    ) -> None:
        """A detector camera's snapshots, after its ObjectsSink: the latest frame with the
        boxes it tracks now, and each label's best frame of its latest object."""
        http = self.config.app.http
        latest = Snapshots(
            channel, camera.tap, lambda: objects.states or None,  # None: no state yet
            settings.snapshot_interval, http.view_width,
            objects_drawer(objects, camera.controls),
        )  # fmt: skip
        best = EventSnapshots(channel, camera.tap, objects, http.view_width)
        camera.sinks += [latest, best]
        self.snapshots += [latest, best]

    def _crop_classifiers(self, settings: CameraSettings) -> dict[str, loader.ModelSetup]:
        """Detect, then classify: each label's classifier planned, loaded and run once before
        capture (a model that is not an image classifier is one line, exit 2), and handed to
        the workers."""
        chosen = {}
        for label, model in settings.classify.items():
            try:
                setup = loader.plan(model, threads=self.config.app.threads_per_worker, top_k=1)
                classifier = loader.load(setup)
            except ConfigError as exc:
                raise ConfigError(f"camera {settings.camera_id}: classify {label}: {exc}") from None
            self.pool.seed(setup, [classifier])
            chosen[label] = setup
        return chosen

    def _add(
        self,
        settings: CameraSettings,
        setup: loader.Planned,
        loaded: loader.Model,
        plan: CameraPlan,
        ends: tuple[Source, list[Sink]],
        known: actions.KnownModels,
        controls: Controls,
    ) -> tuple[Camera, ladder.Ladder]:
        """The camera in the pipeline between its source and sinks, with its model ladder,
        whose rungs it knows by name. Frames are dropped only where they go stale: live
        cameras and paced replays."""
        source, sinks = ends
        drop = settings.drop and source.paced
        rungs = self._ladder(settings, setup, loaded)
        camera = self.pipeline.add_camera(
            plan, rungs.setups, source, sinks, controls, self.pool, drop
        )
        for rung in rungs.setups[1:]:
            known.ran(rung)
        return camera, rungs

    def _ladder(
        self, settings: CameraSettings, setup: loader.Planned, loaded: loader.Model
    ) -> ladder.Ladder:
        """The camera's model ladder, measured here; one rung unless `adapt` uses it."""
        if settings.adapt == "stride":
            return ladder.Ladder((setup,), (1.0,), ())
        rungs = ladder.build(settings, setup, loaded, self.config.app.threads_per_worker)
        for rung, classifier in zip(rungs.setups[1:], rungs.classifiers[1:], strict=True):
            self.pool.seed(rung, [classifier])
        pairs = zip(rungs.setups, rungs.costs, strict=True)
        names = ", ".join(f"{rung.name} {cost:.2f} ms" for rung, cost in pairs)
        log.info("camera %s: model ladder %s", settings.camera_id, names)
        return rungs

    def _commands(
        self,
        settings: CameraSettings,
        channel: Channel,
        controls: Controls,
        camera: Camera,
        offers: Offers,
        zones: actions.SetZones | None = None,
    ) -> CommandHandler:
        """The camera's `set` topic: runtime settings, and switching model (on the handler's
        own thread: it loads), saving a frame, or (a detector camera's) setting its zones;
        `config` says the model and the zones in force."""
        threads = self.config.app.threads_per_worker
        switch = actions.ModelSwitch(camera, settings, threads, offers.known, offers.switched)
        doings: dict[str, Action] = {"model": switch}
        state: Callable[[], dict[str, Any]] = switch.state
        if zones is not None:
            doings["zones"] = zones
            state = functools.partial(_merged, (switch.state, zones.state))
        doings["capture"] = actions.Capture(
            camera, offers.limits, settings.capture_per_minute, offers.crops
        )
        commands = CommandHandler(channel, controls, doings, state, slow=("model",))
        channel.subscribe("set", commands.handle)
        self.publisher.on_connected(commands.publish_config)
        return commands

    def _pictures(
        self,
        settings: CameraSettings,
        model: ModelView,
        camera: Camera,
        commands: CommandHandler,
        state: StateSink,
    ) -> CameraFeed | None:
        """Who looks at the camera's frames (through its tap, only while they look): the
        snapshots on MQTT, and the live view's feed when the page is on. Both are sinks too,
        after the state: the snapshots follow its changes, the feed shows the latest result."""
        http = self.config.app.http
        camera.tap.set_rate(http.view_fps)
        if settings.snapshot_interval:
            snapshots = Snapshots(
                commands.channel,
                camera.tap,
                functools.partial(getattr, state, "label"),
                settings.snapshot_interval,
                http.view_width,
            )
            camera.sinks.append(snapshots)
            self.snapshots.append(snapshots)
        return self._feed(settings, model, camera, commands)

    def _feed(
        self,
        settings: CameraSettings,
        model: ModelView,
        camera: Camera,
        commands: CommandHandler,
        objects: ObjectsSink | None = None,
    ) -> CameraFeed | None:
        """The live view's feed of a camera, when the page is on: a classifier camera's is a
        sink after the others and has its labelling; a detector camera's shows the tracked
        objects and zones of its `objects` sink, and takes no results of its own."""
        http = self.config.app.http
        if http.bind is None:
            return None
        interval = self.config.app.stats_interval
        labels = Labels(camera, dataset_of(settings)) if objects is None else None
        feed = CameraFeed(
            settings.camera_id, camera.tap, camera.controls, commands, model, http.view_width,
            interval, labels, objects,
        )  # fmt: skip
        if objects is None:
            camera.sinks.append(feed)
        return feed

    def _live_view(self) -> LiveServer | None:
        """The page's server, listening, when `http.bind` is set; aiohttp is imported only
        then (the `web` extra)."""
        http = self.config.app.http
        if http.bind is None:
            return None
        try:
            from camapp.web.server import LiveServer
        except ImportError:
            raise ConfigError(
                "http.bind: the live view needs aiohttp: pip install 'camapp[web]'"
            ) from None
        feeds = [wired.feed for wired in self.wired if wired.feed is not None]
        return LiveServer(http, self.http_password, feeds)

    def _open(
        self,
        settings: CameraSettings,
        setup: loader.Planned,
        model_size: int,
        watch: SourceWatch,
    ) -> Source:
        assert settings.source is not None
        # A reconnection reopens the source with the same settings.
        opener = functools.partial(
            open_source,
            settings.source,
            settings.realtime,
            settings.loop,
            settings.picamera,
            model_size,
            # The AI Camera's own network, which its backend handed to the sensor.
            imx500.network(setup.devices, setup.path) if _on_sensor(setup) else None,
            settings.crop,
            _fitted(settings, setup),
        )
        first = self._first(settings, opener)
        if not isinstance(first, str) and not first.live:
            return first
        self.publisher.on_connected(watch.republish)
        reconnecting = Reconnecting(opener, self.stop, first=first, on_change=watch.changed)
        if isinstance(first, str):
            watch.changed(False)  # `source` says offline from the start
        return reconnecting

    def _first(self, settings: CameraSettings, opener: Callable[[], Source]) -> Source | str:
        """The camera's source, opened; or, when one of several cameras' camera or stream
        cannot be opened (it is still booting, or away), its name: that camera is retried
        with backoff while the others run, where the whole process would stop. A lone
        camera's still ends the run (exit 1): a typo is told at once, and systemd retries."""
        try:
            return opener()
        except SourceError as exc:
            if len(self.config.cameras) == 1:
                raise
            log.warning("camera %s: %s; retrying it with backoff", settings.camera_id, exc)
            assert settings.source is not None
            return source_name(settings.source)

    def _sinks(
        self,
        settings: CameraSettings,
        setup: loader.ModelSetup,
        channel: Channel,
        state: StateSink,
        live: bool,
        known: actions.KnownModels,
    ) -> tuple[list[Sink], Switched | None]:
        """The camera's sinks, and its Home Assistant entities with what makes them follow a
        model switch."""
        switched = None
        if self.config.app.ha.discovery:
            described = self._ha_camera(settings, setup, channel, live, known)
            discovery = ha.Discovery(described, self.config.app.ha)
            self.publisher.on_connected(discovery.announce)
            self.publisher.subscribe(discovery.status_topic, discovery.on_status)
            switched = functools.partial(self._switched, settings, channel, live, discovery, known)
        sinks: list[Sink] = [ClassificationSink(channel), state]
        if self.config.app.print:
            sinks.append(PrintSink(settings.camera_id))
        return sinks, switched

    def _switched(
        self,
        settings: CameraSettings,
        channel: Channel,
        live: bool,
        discovery: ha.Discovery,
        known: actions.KnownModels,
        setup: loader.ModelSetup,
    ) -> None:
        """Home Assistant's entities follow a model switched by `set` (its classes, its
        binary sensor, its buttons); an `on_label` the new model lacks is not used."""
        if settings.on_label not in setup.classes:
            settings = settings.model_copy(update={"on_label": None})
        discovery.update(self._ha_camera(settings, setup, channel, live, known))

    def _ha_camera(
        self,
        settings: CameraSettings,
        setup: loader.ModelSetup,
        channel: Channel,
        live: bool,
        known: actions.KnownModels,
    ) -> ha.Camera:
        if settings.on_label is not None and settings.on_label not in setup.classes:
            raise ConfigError(
                f"camera {settings.camera_id}: on_label {settings.on_label[:60]!r} is not a class"
                f" of {setup.name} ({', '.join(setup.classes[:5])}...)"
            )
        return ha.Camera(
            channel,
            self.config.mqtt.qos,
            setup.name,
            setup.classes,
            buttons=known.labels(),
            models=known.options(),
            temperature=self._sensors.temperature().value is not None,
            device_class=settings.device_class,
            on_label=settings.on_label,
            area=settings.area,
            live=live,
            snapshots=bool(settings.snapshot_interval),
        )

    def _governor(self) -> Governor:
        """The governor always runs: budgets may be set over MQTT at any time, and stats flow."""
        app = self.config.app
        sensors = self._sensors
        governor = Governor(sensors, stats_interval=app.stats_interval)
        for wired in self.wired:
            source = wired.camera.source
            paced = source.paced
            info = SourceInfo(paced=paced, slowable=not source.live, fps=source.fps if paced else 0)
            policy = wired.settings.adapt
            controller = Controller(info, app.workers, sensors.power_model[0], wired.costs, policy)
            governor.add(wired.camera, wired.controls, controller, self._stats_sink(wired))
        return governor

    def _stats_sink(self, wired: Wired) -> Callable[[dict[str, Any]], None]:
        """`stats` on MQTT, and to the live view's charts when the page is on."""
        publisher, channel, feed = self.publisher, wired.channel, wired.feed

        def send(stats: dict[str, Any]) -> None:
            # The outbox's shedding and the broker's refusals are counted with the pipeline's
            # skips, in one message.
            counts = {"mqtt_dropped": publisher.dropped, "mqtt_refused": publisher.refused}
            channel.publish("stats", dumps(stats | counts))
            if feed is not None:
                feed.add_stats(stats)

        return send

    def run(self) -> int:
        """Capture until the sources end or a signal; then drain, report and disconnect."""
        on_signal = signal_handler(self.pipeline)
        for signum in STOP_SIGNALS:
            signal.signal(signum, on_signal)
        mqtt = self.config.mqtt
        for wired in self.wired:
            log.info(
                "%s %s with %s on %d worker(s); publishing to %s:%d under %s",
                "detecting in" if isinstance(wired.setup, DetectorSpec) else "classifying",
                wired.camera.source.name,
                wired.setup.name,
                self.config.app.workers,
                mqtt.host,
                mqtt.port,
                wired.channel.topic("#"),
            )
        self.publisher.start()
        governing = threading.Event()
        thread = threading.Thread(
            target=self.governor.run, args=(governing,), name="governor", daemon=True
        )
        thread.start()
        self._start_pictures()
        report = self.pipeline.run()
        governing.set()
        thread.join()
        self._stop_pictures()
        self.devices.close()
        undelivered = self.publisher.close()
        self._summary(report)
        if report.errors:
            raise report.errors[0]
        if undelivered:
            raise CamappError(
                f"{undelivered} MQTT messages not delivered to {mqtt.host}:{mqtt.port}"
            )
        refused = self.publisher.refusal_error()
        if refused:
            raise CamappError(refused)
        return EXIT_OK

    def _start_pictures(self) -> None:
        """The snapshot threads, and the live view's server and encoders."""
        for snapshots in self.snapshots:
            name = f"snapshot-{snapshots.camera_id}"
            thread = threading.Thread(target=snapshots.run, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.live is not None:
            self.live.start()

    def _stop_pictures(self) -> None:
        """Before the connection closes, so that a snapshot being taken still goes out."""
        for snapshots in self.snapshots:
            snapshots.stop()
        for thread in self._threads:
            thread.join(5)
        if self.live is not None:
            self.live.stop()

    def _summary(self, report: RunReport) -> None:
        several = len(report.cameras) > 1
        for camera_id, stats in report.cameras.items():
            _log_stats(f"camera {camera_id}: " if several else "", stats)
        warning = self.publisher.drop_warning()
        if warning:
            log.warning("%s", warning)


def _plan(
    settings: CameraSettings, crop: str, roi: Roi | None, limits: actions.DatasetLimits
) -> CameraPlan:
    """What the camera does with its frames: its view, frame limit, motion gate, and where a
    `capture` saves a frame."""
    motion = None
    if settings.motion_threshold:
        # After a change, let enough frames through for the debounced state to confirm it.
        follow = settings.state_frames - 1
        motion = MotionGate(settings.motion_threshold, settings.motion_refresh, follow)
    save = functools.partial(actions.save_frame, limits)
    return CameraPlan(settings.camera_id, crop, roi, settings.max_frames, motion, save)


def _merged(states: Sequence[Callable[[], dict[str, Any]]]) -> dict[str, Any]:
    """What several actions have in force, in one `config`."""
    return {key: value for state in states for key, value in state().items()}


def _fitted(settings: CameraSettings, setup: loader.Planned) -> bool:
    """Whether the camera's frames come fitted in the model input rather than covering it: a
    letterboxing detector's whole frame is placed unscaled then. Not with a region of
    interest or crops to classify, which would lose the detail that covering keeps."""
    letterbox = isinstance(setup, DetectorSpec) and setup.letterbox
    return letterbox and settings.roi is None and not settings.classify


def _on_sensor(setup: loader.Planned) -> bool:
    """The AI Camera's network runs on its sensor, which opens it (never a detector yet)."""
    return isinstance(setup, loader.ModelSetup) and setup.backend == "imx500"


def _shared(setups: list[loader.Planned]) -> list[loader.Planned]:
    """Cameras with the same model get the same setup, so that the workers load it once."""
    by_key: dict[tuple[object, ...], loader.Planned] = {}
    return [by_key.setdefault(setup.key, setup) for setup in setups]


def _log_stats(prefix: str, stats: RunStats) -> None:
    rate = stats.classified / stats.elapsed_s if stats.elapsed_s else 0.0
    log.info(
        "%s%d frames captured, %d classified (%.1f/s), skipped %s, in %.1f s",
        prefix,
        stats.captured,
        stats.classified,
        rate,
        ", ".join(f"{n} {reason}" for reason, n in stats.skipped.items()),
        stats.elapsed_s,
    )
    if stats.discarded:
        log.warning("%s%d queued frames discarded by a forced stop", prefix, stats.discarded)
    if stats.skipped["undecodable"]:
        log.warning(
            "%s%d frames would not decode (a corrupt stretch of the file) and were skipped",
            prefix,
            stats.skipped["undecodable"],
        )


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StoppedDuringStart(BaseException):
    """A stop signal before capture began (a BaseException, as KeyboardInterrupt is, so that
    no `except Exception` on the way turns it into a failure); `args[0]` is its number."""


def stop_during_start() -> None:
    """Until `App.run` installs its own handler: SIGINT, SIGTERM or SIGHUP while the app is
    being set up (models loaded and run, each stream given 5 s to open) ends the command
    with exit 0, as a stop does, as soon as the step under way returns to Python (a stream's
    open: within its 5 s), rather than SIGTERM's and SIGHUP's death without a word (exit
    143, 129) or SIGINT's `interrupted` (1) or failed open. Nothing was captured or
    announced yet; a second signal is ignored."""

    def on_signal(signum: int, _frame: Any) -> None:
        for each in STOP_SIGNALS:  # a second one must not interrupt the way out (SIG_IGN
            signal.signal(each, _stopping)  # would have CPython report one already pending)
        raise StoppedDuringStart(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)


def _stopping(_signum: int, _frame: Any) -> None:
    """A signal while camapp already stops during start-up: nothing more to do."""


def signal_handler(pipeline: Pipeline) -> Callable[[int, Any], None]:
    """SIGINT/SIGTERM/SIGHUP: the first finishes the run gracefully, a second abandons the queued
    frames. Counted here, not read off the pipeline: --duration or a failure may have
    stopped it before the user's first signal."""
    signals = 0

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            log.info("%s: finishing in-flight frames", signal.Signals(signum).name)
            pipeline.stop()
        else:
            log.warning("%s again: abandoning the queued frames", signal.Signals(signum).name)
            pipeline.abort()

    return on_signal


def dataset_of(settings: CameraSettings) -> Path:
    """Where the camera's `capture` commands and the live view's labels save frames."""
    return Path(settings.dataset or f"datasets/{settings.camera_id}")
