"""MirroredStrategy and non-TensorFlow backends, each in a fresh process
(logical devices and the Keras backend must be chosen before start-up)."""

import json

import pytest

pytestmark = pytest.mark.slow

MIRRORED = """
import json, tempfile
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from kinit.callbacks import InitDiagnostics
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
y = x[:, :1] * 2.0

def run(strategy):
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, "relu", name="hidden"),
                                  keras.layers.Dense(1, name="out")])
        model.compile("sgd", "mse")
    log_dir = tempfile.mkdtemp()
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0,
                        callbacks=[InitDiagnostics(log_dir, (x[:16], y[:16]))])
    events = EventAccumulator(log_dir, size_guidance={"tensors": 0})
    events.Reload()
    return {"replicas": strategy.num_replicas_in_sync, "epochs": len(history.history["loss"]),
            "steps": {tag: sorted(e.step for e in events.Tensors(tag)) for tag in events.Tags()["tensors"]}}

print(json.dumps({"mirrored": run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])),
                  "default": run(tf.distribute.get_strategy())}))
"""

OTHER_BACKEND = """
import json, logging, tempfile
import keras, numpy as np
from kinit.callbacks import InitDiagnostics, diagnose
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

notices = []
logging.getLogger("kinit.callbacks").addHandler(type("H", (logging.Handler,), {"emit": lambda s, r: notices.append(r.getMessage())})())
x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
y = x[:, :1]
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, "relu", name="hidden"), keras.layers.Dense(1, name="out")])
model.compile("sgd", "mse")
log_dir = tempfile.mkdtemp()
model.fit(x, y, epochs=2, verbose=0, callbacks=[InitDiagnostics(log_dir, (x[:8], y[:8]))])
events = EventAccumulator(log_dir, size_guidance={"tensors": 0})
events.Reload()
hidden = np.maximum(x[:8] @ model.layers[0].get_weights()[0] + model.layers[0].get_weights()[1], 0)
report = diagnose(model, x[:8], y[:8])
std = [r["std"] for r in report.rows if r["kind"] == "activation" and r["path"] == "hidden"][0]
print(json.dumps({"tags": sorted(events.Tags()["tensors"]), "notices": notices,
                  "std": [std, float(hidden.std())], "notes": report.notes}))
"""


def run_json(fresh_python, code, **kwargs):
    result = fresh_python(code, **kwargs)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_mirrored_strategy_on_two_cpus_writes_the_same_tags(fresh_python):
    runs = run_json(fresh_python, MIRRORED)
    mirrored, default = runs["mirrored"], runs["default"]
    assert (mirrored["replicas"], mirrored["epochs"]) == (2, 2)
    assert mirrored["steps"] == default["steps"]
    histograms = [t for t in mirrored["steps"] if t.split("/")[0] in ("weights", "activations", "gradients")]
    assert len(histograms) == 10 and all(mirrored["steps"][t] == [0, 1, 2] for t in histograms)


def test_jax_backend_logs_weights_and_activations_and_skips_gradients_once(fresh_python):
    result = run_json(fresh_python, OTHER_BACKEND, backend="jax")
    assert {"weights/hidden/kernel", "activations/out/output", "activation_std/hidden/output"} <= set(result["tags"])
    assert not [t for t in result["tags"] if t.startswith("gradient")]
    skipped = [n for n in result["notices"] if "'jax' backend" in n]
    assert len(skipped) == 1 and "gradients are not logged" in skipped[0]
    assert result["std"][0] == pytest.approx(result["std"][1], rel=1e-5)
    assert result["notes"] == ["gradients are not logged: they need the TensorFlow backend "
                               "and the 'jax' backend is active"]
