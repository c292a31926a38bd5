"""Reading TensorBoard event files back, for the callback tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


@dataclass
class Events:
    """Every tensor event of a log directory: values[tag][step], plugin[tag]."""

    values: Dict[str, Dict[int, np.ndarray]]
    plugin: Dict[str, str]

    def tags(self, plugin: str) -> set:
        return {tag for tag, name in self.plugin.items() if name == plugin}

    def scalar(self, tag: str, step: int) -> float:
        return float(self.values[tag][step])


def read_events(log_dir) -> Events:
    accumulator = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    accumulator.Reload()
    values, plugin = {}, {}
    for tag in accumulator.Tags()["tensors"]:
        values[tag] = {event.step: tf.make_ndarray(event.tensor_proto)
                       for event in accumulator.Tensors(tag)}
        plugin[tag] = accumulator.SummaryMetadata(tag).plugin_data.plugin_name
    return Events(values, plugin)
