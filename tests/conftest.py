import os

# headless rendering for every test; set before MuJoCo can be imported
os.environ.setdefault("MUJOCO_GL", "egl")


def pytest_configure(config):
    """Train in fp32 whatever the machine: ``--amp auto`` would pick bf16 where a one-off
    measurement (sen_rl.hardware) finds it faster, so tolerances and exact comparisons would
    depend on the CPU and on the load at the moment of measuring. A cache saying "bf16 is no
    faster here" pins the choice without a measurement; test_hardware points at its own caches."""
    import json
    import tempfile

    from sen_rl import hardware

    cache = tempfile.mkdtemp(prefix="sen-rl-test-cache-")
    entry = {hardware.cpu_info().key: {"bf16_speedup": 0.0, "measured": "pinned by tests/conftest.py"}}
    with open(os.path.join(cache, hardware.CACHE_FILE), "w") as f:
        json.dump(entry, f)
    os.environ[hardware.CACHE_ENV] = cache
