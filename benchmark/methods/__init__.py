"""The methods: one module each, registered by name (registry.py).

`import peft` imports bitsandbytes where it is installed, and bitsandbytes then logs, on a CPU with AVX512-BF16,
that an optional CPU kernel package (`kernels`) is missing. mmbench never computes with bitsandbytes on a CPU (a
quantized base is a GPU cell; elsewhere its row is skipped), so that notice is nothing a user can or needs to act
on, and it would stand in every run's output and every cell's log: it is dropped here, and only it.
"""

import logging


class _MissingCpuKernelNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to load CPU gemm_4bit_forward from kernels-community")


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_MissingCpuKernelNotice())
