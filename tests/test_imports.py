"""Native libraries must coexist whatever the import order (usearch 2.26 + onnxruntime crashed)."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "order",
    [
        "import hnswlib; import onnxruntime",
        "import onnxruntime; import hnswlib",
        "import engram; import engram.providers.embedders.onnx; import onnxruntime",
    ],
)
def test_native_import_order(order: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", order + "; print('ok')"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"
