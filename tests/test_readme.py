"""The README's usage example runs as written."""

from __future__ import annotations

import re

from conftest import ROOT


def test_usage_example_runs(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    first_python_block = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(first_python_block, "README.md", "exec"), namespace)
    restored, model = namespace["restored"], namespace["model"]
    assert [type(l.kernel_initializer).__name__ for l in restored.layers] == [
        "kinit.HeNormal", "kinit.GlorotUniform", "kinit.LecunNormal"
    ]
    for a, b in zip(model.get_weights(), restored.get_weights()):
        assert (a == b).all()
