"""On-box vision: model cards, ONNX sessions, decoders, tracking and occupancy."""
