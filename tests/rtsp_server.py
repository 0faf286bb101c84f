"""A real RTSP server for the stream tests: GStreamer's, serving a clip's H.264 as is, looped.

Run with the system Python (/usr/bin/python3), which has the GObject bindings that Debian's
gir1.2-gst-rtsp-server-1.0 and python3-gi packages provide; camapp's venv does not need them.

    /usr/bin/python3 tests/rtsp_server.py CLIP PORT [PATH]
    /usr/bin/python3 tests/rtsp_server.py --check   # exit 0 when all it needs is installed

Serves rtsp://127.0.0.1:PORT/PATH (default `clip`) on loopback only. Each client gets its own
pipeline from the clip's first (key) frame, as a camera hands a new client a fresh GOP; at the
clip's end it seeks back to the start. Stops on SIGTERM.
"""

from __future__ import annotations

import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ELEMENTS = ("filesrc", "qtdemux", "h264parse", "rtph264pay")

# The clip's H.264 untouched (no decoding or encoding: the server costs next to no CPU), with
# the stream's parameter sets before every key frame so a late decoder can start there.
LAUNCH = (
    "( filesrc location={clip} ! qtdemux ! h264parse name=parse "
    "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
)


def _loop_at_end(media: GstRtspServer.RTSPMedia) -> None:
    """Turn the clip's end into a seek back to its start, so the stream never ends."""
    pipeline = media.get_element().get_parent()
    parse = media.get_element().get_by_name("parse")

    def rewind() -> bool:
        pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
        return False

    def on_event(pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        if info.get_event().type != Gst.EventType.EOS:
            return Gst.PadProbeReturn.OK
        GLib.idle_add(rewind)
        return Gst.PadProbeReturn.DROP

    parse.get_static_pad("src").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, on_event)


def main() -> int:
    Gst.init(None)
    if sys.argv[1] == "--check":
        missing = [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]
        print(f"missing GStreamer elements: {', '.join(missing)}" if missing else "ok")
        return 1 if missing else 0
    clip, port = sys.argv[1], sys.argv[2]
    mount = "/" + (sys.argv[3] if len(sys.argv) > 3 else "clip")
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(LAUNCH.format(clip=clip))
    factory.connect("media-configure", lambda _factory, media: _loop_at_end(media))
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
