"""The synthetic sensor stream and tiny encoder of tests/helpers/sensor_stream.py."""

from sensor_stream import _keep_torch_threads, make_stream, tiny_encoder

__all__ = ["_keep_torch_threads", "make_stream", "tiny_encoder"]
