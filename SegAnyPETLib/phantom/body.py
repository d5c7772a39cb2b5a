"""Patient build and body frame: tissue classes, landmarks, trunk outline, limbs and skeleton.

Contract: :class:`Patient` samples one build (sex, scales, fat, arms, jittered landmark heights of a
175 cm reference man); :class:`Body` turns it into landmark functions in millimetres (LPS, z = 0 at
the vertex): trunk cross-section, rib cage, spine, diaphragm. ``paint_body``, ``paint_arms`` and
``paint_skeleton`` paint the outline (fat around lean tissue), the arms and the bones onto a
:class:`~.shapes.Canvas`, drawing from ``rng`` in a fixed order. :class:`Tissue`, ``BONY``, ``SOFT``,
``RIGHT``/``LEFT`` and :func:`frame` are the shared vocabulary of :mod:`.organs` and :mod:`.anatomy`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Dict, List

import numpy as np

from .shapes import Canvas, Ellipsoid, SmoothField, Tube, Where

RIGHT, LEFT = -1.0, 1.0  # sign of x on the patient's right / left side


class Tissue(enum.IntEnum):
    """Tissue classes: what decides the FDG uptake of a voxel (several per organ label)."""

    AIR = 0
    FAT = 1
    MUSCLE = 2
    BONE = 3
    MARROW = 4
    FATTY_MARROW = 5
    LUNG = 6
    BLOOD = 7
    MYOCARDIUM = 8
    LIVER = 9
    SPLEEN = 10
    KIDNEY = 11
    RENAL_PELVIS = 12
    URETER = 13
    URINE = 14
    PROSTATE = 15
    GRAY_MATTER = 16
    WHITE_MATTER = 17
    DEEP_GRAY = 18
    CEREBELLUM = 19
    SPINAL_CORD = 20
    STOMACH = 21
    SMALL_BOWEL = 22
    COLON = 23
    GALLBLADDER = 24
    GLAND = 25
    TESTIS = 26
    LESION = 27


BONY = (Tissue.BONE, Tissue.MARROW, Tissue.FATTY_MARROW)
SOFT = (Tissue.MUSCLE, Tissue.FAT)

# Reference man (175 cm): landmark heights below the vertex, mm.
REFERENCE_Z: Dict[str, float] = {
    "brain": -75, "skull_base": -140, "c2": -170, "chin": -225, "t1": -300, "shoulder": -325,
    "lung_apex": -285, "arch": -370, "t4": -390, "carina": -400, "dome_right": -505, "dome_left": -525,
    "t12": -600, "l1": -630, "l2": -665, "l3": -700, "l4": -735, "l5": -770, "s1": -790,
    "hip": -850, "pubis": -880, "crotch": -905, "mid_thigh": -1075,
}

# Lean trunk cross-section (superellipse half-axes, mm) along the reference body.
TRUNK_Z = np.array([-180, -265, -295, -330, -400, -500, -600, -700, -770, -840, -915], dtype=float)
TRUNK_AX = np.array([50, 56, 120, 165, 158, 150, 142, 138, 150, 165, 170], dtype=float)
TRUNK_AY = np.array([52, 56, 80, 95, 105, 108, 102, 98, 98, 100, 95], dtype=float)
TRUNK_CY = np.array([12, 12, 10, 5, 0, 0, 0, 0, 5, 10, 10], dtype=float)
FAT_PROFILE = np.array([0.3, 0.3, 0.4, 0.5, 0.6, 0.7, 1.0, 1.0, 1.0, 0.95, 0.85], dtype=float)
# Inner half-width of the rib cage: narrow at the thoracic inlet, widest at the lower ribs.
CAGE_Z = np.array([-280, -310, -350, -400, -470, -560], dtype=float)
CAGE_AX = np.array([45, 80, 105, 120, 130, 132], dtype=float)

# Vertebral column: centre line depth (y) and body radius along the reference spine.
SPINE_Z = np.array([-165, -230, -300, -400, -480, -600, -680, -740, -790], dtype=float)
SPINE_Y = np.array([12, 15, 35, 58, 62, 50, 38, 36, 45], dtype=float)
SPINE_R = np.array([9, 10, 12, 14, 15, 17, 20, 21, 21], dtype=float)
# (top landmark, bottom landmark, number of vertebrae) per spine region
SPINE_REGIONS = (("c2", "t1", 6), ("t1", "t12", 12), ("t12", "s1", 5))


def frame(primary, secondary) -> np.ndarray:
    """Rotation whose columns are ``primary`` and the part of ``secondary`` orthogonal to it."""
    u = np.asarray(primary, dtype=float)
    u = u / np.linalg.norm(u)
    v = np.asarray(secondary, dtype=float)
    v = v - (v @ u) * u
    v = v / np.linalg.norm(v)
    return np.stack([u, v, np.cross(u, v)], axis=1)


@dataclass
class Patient:
    """Per-patient build: sex, scales, fat, arm position, organ size factors and landmarks."""

    sex: str
    height: float
    width: float
    depth: float
    fat: float
    arms: str
    z: Dict[str, float]
    organ_scale: Dict[str, float]

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Patient":
        sex = "M" if rng.random() < 0.55 else "F"
        height = float(np.clip(rng.normal(1.0 if sex == "M" else 0.93, 0.04), 0.84, 1.1))
        width = float(np.clip(rng.normal(1.0, 0.05), 0.88, 1.12)) * (1.0 if sex == "M" else 0.92)
        depth = float(np.clip(rng.normal(1.0, 0.06), 0.85, 1.15)) * (1.0 if sex == "M" else 0.94)
        fat = float(rng.gamma(4.0, 5.5))  # abdominal subcutaneous fat, mm: median ~20, 5..50
        fat = min(max(fat, 5.0), 55.0)
        arms = "down" if rng.random() < 0.6 else "up"
        z = {name: value * height for name, value in REFERENCE_Z.items()}
        for name, spread in (("dome_right", 15), ("arch", 10), ("l1", 10), ("hip", 8), ("pubis", 8)):
            z[name] += rng.normal(0, spread)
        z["dome_left"] = z["dome_right"] - rng.uniform(8, 30)
        body = height * np.sqrt(width * depth)
        organ_scale = {
            name: float(np.clip(rng.normal(1.0, sd), 1 - 2.5 * sd, 1 + 2.5 * sd)) * body ** (0.35 * power)
            for name, sd, power in (
                ("brain", 0.04, 1.0), ("heart", 0.06, 1.0), ("liver", 0.06, 1.0), ("spleen", 0.1, 1.0),
                ("kidney", 0.06, 1.0), ("aorta", 0.08, 1.0), ("lung", 0.05, 1.0), ("prostate", 0.12, 0.5),
            )
        }
        if sex == "F":
            for name in ("brain", "heart", "liver", "kidney", "lung"):
                organ_scale[name] *= 0.95
        return cls(sex, height, width, depth, fat, arms, z, organ_scale)


def _along(z, heights: np.ndarray, values: np.ndarray, **kwargs):
    """Piecewise-linear profile along the body (``heights`` descending from the head)."""
    return np.interp(z, heights[::-1], values[::-1], **kwargs)


class Body:
    """Landmark functions of one patient: trunk outline, spine, diaphragm, abdominal cavity."""

    def __init__(self, patient: Patient, rng: np.random.Generator) -> None:
        self.patient = p = patient
        female = p.sex == "F"
        shape = 1.0 + rng.normal(0.0, 0.025, TRUNK_Z.size)  # the patient's own outline
        self._trunk_z = TRUNK_Z * p.height
        self._ax = TRUNK_AX * p.width * shape * (np.where(TRUNK_Z > -450, 0.92, 1.05) if female else 1.0)
        self._ay = TRUNK_AY * p.depth * shape
        self._cy = TRUNK_CY * p.depth
        self._fat = FAT_PROFILE * p.fat * (np.where(TRUNK_Z < -700, 1.2, 1.0) if female else 1.0)
        self._cage_z = CAGE_Z * p.height
        self._cage_ax = CAGE_AX * p.width * (0.95 if female else 1.0)
        self._spine_z = SPINE_Z * p.height
        self._spine_y = SPINE_Y * p.depth
        self._spine_r = SPINE_R * np.sqrt(p.width * p.depth)
        self.diaphragm_wobble = SmoothField(rng, 5.0, modes=3, frequency=(0.8, 2.0), scale=80.0)
        self.dome_x = (RIGHT * rng.uniform(55, 75) * p.width, LEFT * rng.uniform(55, 75) * p.width)
        self.dome_curvature = rng.uniform(0.0055, 0.0075)
        self.wall = rng.uniform(14, 20)  # thickness of the trunk wall (muscle, ribs), mm

    # -- trunk outline ---------------------------------------------------------------------------
    def ax(self, z):
        """Half-width (x) of the lean trunk at height z."""
        return _along(z, self._trunk_z, self._ax)

    def ay(self, z):
        """Half-depth (y) of the lean trunk at height z."""
        return _along(z, self._trunk_z, self._ay)

    def cy(self, z):
        return _along(z, self._trunk_z, self._cy)

    def fat(self, z):
        """Subcutaneous fat thickness at height z."""
        return _along(z, self._trunk_z, self._fat)

    def anterior(self, z) -> float:
        """y of the lean body's anterior surface at height z."""
        return float(self.cy(z) - self.ay(z))

    def in_section(self, x, y, z, ax, ay) -> np.ndarray:
        """Inside the rounded-rectangle trunk cross-section with half-axes ax, ay at height z."""
        u = np.abs(x) / np.asarray(ax, dtype=np.float32)
        v = np.abs(y - self.cy(z).astype(np.float32)) / np.asarray(ay, dtype=np.float32)
        return u ** 2.4 + v ** 2.4 < 1.0

    def in_cavity(self, x, y, z) -> np.ndarray:
        """Inside the trunk's inner wall and rib cage (where thoracic and abdominal organs may lie)."""
        cage = _along(z, self._cage_z, self._cage_ax, left=1e4, right=1.0)
        return self.in_section(x, y, z, np.minimum(self.ax(z) - self.wall, cage), self.ay(z) - self.wall)

    # -- spine and diaphragm ---------------------------------------------------------------------
    def spine_y(self, z):
        """Depth (y) of the vertebral body centres at height z."""
        return _along(z, self._spine_z, self._spine_y)

    def spine_r(self, z):
        """Radius of the vertebral bodies at height z."""
        return _along(z, self._spine_z, self._spine_r)

    def diaphragm(self, x, y) -> np.ndarray:
        """Height of the diaphragm (two domes, lower laterally and posteriorly), mm."""
        zs = self.patient.z
        k = self.dome_curvature
        dy = y + 10.0
        slope = 0.003 * dy * dy + 0.3 * np.maximum(dy, 0)
        right = zs["dome_right"] - k * (x - self.dome_x[0]) ** 2
        left = zs["dome_left"] - k * (x - self.dome_x[1]) ** 2
        return np.maximum(right, left) - slope + self.diaphragm_wobble(x, y, 0.0 * x)

    def below_diaphragm(self, gap: float = 4.0):
        return lambda x, y, z: z < self.diaphragm(x, y) - gap

    def above_diaphragm(self, gap: float = 3.0):
        return lambda x, y, z: z > self.diaphragm(x, y) + gap


# ---------------------------------------------------------------------------------------------
# Body frame, painted first: outline, arms, skeleton.
# ---------------------------------------------------------------------------------------------


def paint_body(canvas: Canvas, body: Body, rng: np.random.Generator) -> None:
    """Trunk, legs and head: subcutaneous fat around lean tissue."""
    grid, p = canvas.grid, body.patient
    x = grid.axis(0)[None, None, :]
    y = grid.axis(1)[None, :, None]
    z = grid.axis(2)[:, None, None]
    crotch = p.z["crotch"]
    thigh = np.clip((crotch + 30 - z) / (p.z["mid_thigh"] - crotch), 0, 1.5)  # 0 at the hips, 1 mid-thigh
    for tissue, grow in ((Tissue.FAT, 1.0), (Tissue.MUSCLE, 0.0)):
        fat = grow * body.fat(z)
        trunk = body.in_section(x, y, z, body.ax(z) + fat, body.ay(z) + 1.1 * fat) & (z >= crotch)
        # Legs: two ellipses below the hips, narrowing towards the knees.
        lx = ((78 - 16 * thigh) * p.width + 0.75 * grow * p.fat).astype(np.float32)
        ly = ((82 - 18 * thigh) * p.depth + 0.75 * grow * p.fat).astype(np.float32)
        legs = np.zeros_like(trunk)
        for side in (RIGHT, LEFT):
            legs |= ((x - side * 86 * p.width) / lx) ** 2 + ((y - 5) / ly) ** 2 < 1.0
        canvas.tissue[trunk | (legs & (z < crotch + 30))] = tissue
    head_radii = np.array([76, 96, 112]) * p.organ_scale["brain"]
    head_center = (0.0, 8.0, -head_radii[2] + rng.uniform(-3, 3))
    deform = SmoothField(rng, 0.03, components=3)
    canvas.paint(Ellipsoid(head_center, head_radii + 4, deformation=deform), Tissue.FAT)
    canvas.paint(Ellipsoid(head_center, head_radii, deformation=deform), Tissue.MUSCLE)
    canvas.paint(Ellipsoid(head_center, head_radii - 5, deformation=deform), Tissue.BONE)
    neck_bottom = p.z["shoulder"]
    canvas.paint(Tube([(0, 12, -190 * p.height), (0, 12, neck_bottom)], 56 * p.width + 0.3 * p.fat), Tissue.MUSCLE)


def paint_arms(canvas: Canvas, body: Body, rng: np.random.Generator) -> None:
    """Arms down along the trunk (hands at the thighs) or raised beside the head."""
    p, zs = body.patient, body.patient.z
    fat = 0.45 * p.fat
    for side in (RIGHT, LEFT):
        shoulder = (side * (body.ax(zs["shoulder"]) - 10), 10.0, zs["shoulder"] + 5)
        if p.arms == "down":
            gap = rng.uniform(25, 60)
            elbow_z, wrist_z = zs["l2"], zs["hip"] + 10
            points = [
                shoulder,
                (side * (body.ax(elbow_z) + body.fat(elbow_z) + gap + 30), 15.0, elbow_z),
                (side * (body.ax(wrist_z) + body.fat(wrist_z) + gap + 20), -5.0, wrist_z),
                (side * (body.ax(wrist_z) + body.fat(wrist_z) + gap + 10), -15.0, wrist_z - 110),
            ]
        else:
            points = [shoulder, (side * 125, 20.0, zs["c2"] + 60), (side * 100, 25.0, zs["c2"] + 330)]
        radii = np.array([44, 36, 28, 22][: len(points)]) * np.sqrt(p.width * p.depth)
        canvas.paint(Tube(points, radii + fat), Tissue.FAT, except_tissue=(Tissue.MUSCLE, *BONY))
        canvas.paint(Tube(points, radii), Tissue.MUSCLE, except_tissue=BONY)
        canvas.paint(Tube(points[:2], 9.0), Tissue.FATTY_MARROW)
        canvas.paint(Ellipsoid(shoulder, (22, 22, 22)), Tissue.FATTY_MARROW)


def paint_skeleton(canvas: Canvas, body: Body, rng: np.random.Generator) -> None:
    """Vertebral bodies (red marrow) and discs, posterior arches, spinal cord, pelvis, femora, sternum."""
    p, zs = body.patient, body.patient.z
    z_line = np.linspace(zs["c2"], zs["s1"], 60)
    centre = np.stack([0.0 * z_line, body.spine_y(z_line), z_line], axis=1)
    spine = Tube(centre, body.spine_r(z_line), step=1.0)
    canvas.paint(spine, Tissue.MARROW)
    # Discs: a thin band at the bottom of each vertebra, vertebra heights per spine region.
    boundaries: List[float] = []
    for top, bottom, count in SPINE_REGIONS:
        boundaries.extend(np.linspace(zs[top], zs[bottom], count + 1)[1:])
    levels = np.asarray(boundaries, dtype=np.float32)
    half_disc = 0.075 * (zs["c2"] - zs["s1"]) / len(levels)
    discs = Where(spine, lambda x, y, z: np.abs(z[..., None] - levels).min(axis=-1) < half_disc)
    canvas.paint(discs, Tissue.BONE)
    # Posterior arch and the canal with the cord behind each vertebral body.
    arch_line = centre + np.stack([0 * z_line, body.spine_r(z_line) + 14, 0 * z_line], axis=1)
    canvas.paint(Tube(arch_line, 13.0 * np.sqrt(p.width)), Tissue.BONE, except_tissue=(Tissue.MARROW,))
    cord_end = np.searchsorted(-z_line, -zs["l1"])
    canvas.paint(Tube(arch_line[: cord_end + 1] - (0, 3, 0), 5.5), Tissue.SPINAL_CORD)
    # Sacrum: a curved wedge behind the pelvis.
    top = np.array([0.0, float(body.spine_y(zs["s1"])) + 8, zs["s1"] - 10])
    down = np.array([0.0, 0.45, -1.0])
    canvas.paint(Ellipsoid(top + 55 * down / np.linalg.norm(down), (58, 46, 15), frame(down, (1, 0, 0)),
                           deformation=SmoothField(rng, 0.06, components=3)), Tissue.MARROW)
    for side in (RIGHT, LEFT):
        hip = np.array([side * 90 * p.width, 2.0 * p.depth, zs["hip"]])
        si = np.array([side * 45 * p.width, float(body.spine_y(zs["s1"])) + 15, zs["s1"] + 10])
        asis = np.array([side * 122 * p.width, -35 * p.depth, zs["l4"] - 10])
        wing_center = (si + asis) / 2 + (0, 0, -5)
        wing = Ellipsoid(wing_center, (np.linalg.norm(asis - si) / 2 + 8, 52 * p.height, 8),
                         frame(asis - si, (0, 0, 1)), exponent=2.5, deformation=SmoothField(rng, 0.05, components=3))
        canvas.paint(wing, Tissue.MARROW)
        canvas.paint(Tube([wing_center - (0, 0, 30), hip], 16.0), Tissue.MARROW)
        symphysis = np.array([side * 12.0, -55 * p.depth, zs["pubis"]])
        tuberosity = np.array([side * 55 * p.width, 40 * p.depth, zs["pubis"] - 25])
        canvas.paint(Tube([hip, symphysis], 10.0), Tissue.MARROW)
        canvas.paint(Tube([hip, tuberosity, symphysis - (0, 0, 20)], 10.0), Tissue.MARROW)
        canvas.paint(Ellipsoid(hip, (24, 24, 24)), Tissue.MARROW)
        trochanter = hip + (side * 35 * p.width, 10, -25)
        knee = np.array([side * 80 * p.width, 5.0, zs["mid_thigh"] - 200])
        canvas.paint(Tube([hip, trochanter], 16.0), Tissue.MARROW)
        canvas.paint(Tube([trochanter, (trochanter + knee) / 2, knee], 14.0), Tissue.FATTY_MARROW)
        canvas.paint(Tube([trochanter, trochanter + 0.25 * (knee - trochanter)], 14.0), Tissue.MARROW)
    sternum_top = np.array([0.0, body.anterior(zs["t1"] - 30) + 16, zs["t1"] - 30])
    sternum_bottom = np.array([0.0, body.anterior(zs["dome_right"]) + 14, zs["dome_right"] + 5])
    canvas.paint(Tube([sternum_top, sternum_bottom], 9.0), Tissue.MARROW)
