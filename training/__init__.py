"""The training worker: turns a retrain command into a proven ONNX model, then model-deployed."""
