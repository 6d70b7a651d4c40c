import resource

import numpy as np
import pytest

from interp.allocator import keep_freed_memory


def faults_of_a_fresh_block(mb: int = 16) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(mb << 18, np.float32)  # touches every page
    del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_freed_blocks_are_reused_without_page_faults():
    if not keep_freed_memory():
        pytest.skip("malloc is not glibc's")
    assert keep_freed_memory()  # idempotent
    faults_of_a_fresh_block()  # the first one may grow the heap
    # 16 MB is 4096 pages: glibc's default would mmap and fault them all again every time
    assert faults_of_a_fresh_block() < 256
