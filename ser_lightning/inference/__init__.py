"""Inference outside training: the prediction engine, emotion over time, and ONNX export."""
