import os

# headless rendering for every test; set before MuJoCo can be imported
os.environ.setdefault("MUJOCO_GL", "egl")
