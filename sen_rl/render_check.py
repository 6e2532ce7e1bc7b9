"""``python -m sen_rl.render_check``: exit 0 when MuJoCo can render off-screen here."""

import sys

from sen_rl.render import INSTALL_HINT, OffscreenRenderer, mujoco_module


def main() -> int:
    mujoco = mujoco_module()
    model = mujoco.MjModel.from_xml_string(
        '<mujoco><worldbody><light pos="0 0 2"/><geom type="box" size=".1 .1 .1"/></worldbody></mujoco>'
    )
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    try:
        renderer = OffscreenRenderer(model, 16, 16)
        img = renderer.render(data)
        renderer.close()
    except Exception as exc:
        print(exc, file=sys.stderr)
        return 1
    if img.shape != (16, 16, 3) or img.max() == 0:
        print(f"MuJoCo rendered an empty image. {INSTALL_HINT}", file=sys.stderr)
        return 1
    print("MuJoCo renders off-screen with MUJOCO_GL =", __import__("os").environ.get("MUJOCO_GL"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
