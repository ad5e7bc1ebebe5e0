"""The oracle's models: training recipes (plain and adversarial), ONNX import and export."""
