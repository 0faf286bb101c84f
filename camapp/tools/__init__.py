"""Tools above the runtime: `model compare` (the zoo through the pipeline), the comparison
of a model with its quantized or dequantized copy, and calibration frames. They reuse the
loader and the `Classifier`: no inference loop of their own."""
