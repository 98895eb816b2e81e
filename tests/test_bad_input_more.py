"""Bad input found by the adversarial pass (issue 13): one line, non-zero exit, no traceback."""

from __future__ import annotations

import subprocess


def test_cpu_out_of_memory_is_one_line(normx_exe):
    result = subprocess.run([*normx_exe, "spec", "bn", "--width", "100000000", "--batch", "100000"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == ("normx: error: out of memory on the CPU; use a smaller --batch-size, "
                                     "--width or model")
