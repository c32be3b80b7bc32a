import numpy as np

from actionfusion.geometry import (
    KINECT_V2_DEPTH_3DV,
    quaternion_from_matrix,
    rotation_from_euler,
    rotation_matrix,
)


def test_project_backproject_inverse():
    rng = np.random.default_rng(0)
    xyz = np.stack([rng.uniform(-1, 1, 100), rng.uniform(-1, 1, 100), rng.uniform(1.5, 5, 100)], -1)
    uv = KINECT_V2_DEPTH_3DV.project(xyz)
    back = KINECT_V2_DEPTH_3DV.backproject(uv[:, 0], uv[:, 1], xyz[:, 2])
    assert np.allclose(back, xyz, atol=1e-9)


def test_image_v_grows_down_while_y_grows_up():
    top = KINECT_V2_DEPTH_3DV.project(np.array([0.0, 0.5, 3.0]))
    bottom = KINECT_V2_DEPTH_3DV.project(np.array([0.0, -0.5, 3.0]))
    assert top[1] < KINECT_V2_DEPTH_3DV.cy < bottom[1]


def test_rotations_are_orthonormal_and_quaternions_match():
    rot = rotation_from_euler(0.3, -1.1, 2.0)
    assert np.allclose(rot @ rot.T, np.eye(3))
    assert np.isclose(np.linalg.det(rot), 1.0)
    # A rotation by angle a about z has quaternion (cos a/2, 0, 0, sin a/2).
    q = quaternion_from_matrix(rotation_matrix("z", 0.8))
    assert np.allclose(q, [np.cos(0.4), 0, 0, np.sin(0.4)])
    # Rebuild the matrix from the quaternion and compare.
    w, x, y, z = quaternion_from_matrix(rot)
    rebuilt = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    assert np.allclose(rebuilt, rot, atol=1e-9)
