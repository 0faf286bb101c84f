"""Object detection: detector outputs to boxes, boxes back to the frame, labels, tracking,
zones and debounced counts (docs/detection.md).

It depends only on numpy, OpenCV, camapp.errors and the settings' zone check (camapp.config),
so that inference, runtime and publish can all build on it.
"""
