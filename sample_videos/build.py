"""Build the replayable sample clips at set-up time; no third-party video is committed.

- `photos.mp4`: three scenes, each a slow zoom over a photo that ships inside a pip package
  (matplotlib's grace_hopper.jpg; scikit-image's chelsea and coffee, CC0), with the labels
  the model must give each scene in `photos.json`.
- `car-detection.mp4`: copied from ../shared/media when present (CC BY 4.0, Intel
  iot-devkit sample-videos; its licence is copied beside it).

Usage: python sample_videos/build.py [--shared DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
SIZE = (640, 480)
FPS = 10
FRAMES_PER_SCENE = 20

# Scene -> labels any of which is a right answer (ImageNet cats are easily confused).
SCENES: list[tuple[str, list[str]]] = [
    ("grace_hopper", ["military uniform"]),
    ("chelsea", ["Egyptian cat", "tabby, tabby cat", "tiger cat"]),
    ("coffee", ["espresso"]),
]


def _photo(name: str) -> np.ndarray:
    """The photo as BGR, from the package that ships it."""
    if name == "grace_hopper":
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            data = np.frombuffer(f.read(), np.uint8)
        return cv2.imdecode(data, cv2.IMREAD_COLOR)
    import skimage.data

    return cv2.cvtColor(getattr(skimage.data, name)(), cv2.COLOR_RGB2BGR)


def _scene(photo: np.ndarray, frames: int) -> list[np.ndarray]:
    """The whole photo on a grey frame, drifting sideways, so consecutive frames differ as in
    real video while the subject stays in view of the model's centre crop."""
    h, w = photo.shape[:2]
    scale = min(SIZE[0] / w, SIZE[1] / h)
    fitted = cv2.resize(photo, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    fh, fw = fitted.shape[:2]
    out = []
    for i in range(frames):
        canvas = np.full((SIZE[1], SIZE[0], 3), 96, np.uint8)
        top, left = (SIZE[1] - fh) // 2, (SIZE[0] - fw) // 2 + (i % 10) - 5
        left = max(0, min(left, SIZE[0] - fw))
        canvas[top : top + fh, left : left + fw] = fitted
        out.append(canvas)
    return out


def build_photos(dest: Path) -> None:
    video = dest / "photos.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    if not writer.isOpened():
        sys.exit(f"build.py: cannot write {video}")
    segments = []
    for index, (name, labels) in enumerate(SCENES):
        for frame in _scene(_photo(name), FRAMES_PER_SCENE):
            writer.write(frame)
        start = index * FRAMES_PER_SCENE
        segments.append(
            {"scene": name, "first": start, "last": start + FRAMES_PER_SCENE - 1, "labels": labels}
        )
    writer.release()
    meta = {
        "fps": FPS,
        "size": list(SIZE),
        "frames": len(SCENES) * FRAMES_PER_SCENE,
        "segments": segments,
    }
    (dest / "photos.json").write_text(json.dumps(meta, indent=2) + "\n")


def copy_shared(shared: Path, dest: Path) -> None:
    media = shared / "media"
    for name in ("car-detection.mp4", "LICENSE.sample-videos.CC-BY-4.0"):
        if (media / name).is_file() and not (dest / name).is_file():
            shutil.copyfile(media / name, dest / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parents[1] / "shared")
    args = parser.parse_args()
    if not (HERE / "photos.mp4").is_file() or not (HERE / "photos.json").is_file():
        build_photos(HERE)
    copy_shared(args.shared, HERE)
    print(f"sample videos ready in {HERE}")


if __name__ == "__main__":
    main()
