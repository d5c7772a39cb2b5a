"""Whole-body anatomy of one random patient, painted as organ labels and tissue classes.

Coordinates are physical millimetres in LPS (x to the patient's left, y posterior, z superior),
z = 0 at the vertex. Landmark heights are those of a 175 cm reference man (vertebral levels,
diaphragm domes, hips, mid-thigh), scaled by the patient's height and jittered; organs are randomly
deformed superellipsoids and tubes placed relative to those landmarks, with per-patient size,
position, orientation and shape. Later organs win where shapes overlap, in anatomical order
(lungs are carved by the heart and great vessels, the liver by the kidney and IVC, ...).
"""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from ..labels import LABELS
from .shapes import KEEP, Canvas, Ellipsoid, Grid, SmoothField, Tube, Where

logger = logging.getLogger(__name__)

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
class Lesion:
    """A tumour: centre (mm), diameter (mm), site and its shape (painted as label 'lesion')."""

    center: Tuple[float, float, float]
    diameter: float
    site: str
    shape: Ellipsoid = field(repr=False)


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
# Systems, painted in anatomical order.
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


def lobe_labels(body: Body, rng: np.random.Generator, side: float):
    """Per-voxel lobe label of one lung: oblique fissure (and the right horizontal fissure)."""
    p, zs = body.patient, body.patient.z
    slope = rng.uniform(0.75, 1.2)
    posterior_top = zs["t4"] - rng.uniform(-10, 25) + (12 if side == LEFT else 0)
    y_post = float(body.spine_y(zs["t4"]))
    oblique = SmoothField(rng, 6.0, modes=3, frequency=(0.8, 2.0), scale=60.0)
    horizontal_z = zs["carina"] - rng.uniform(35, 55) * p.height
    horizontal = SmoothField(rng, 5.0, modes=3, frequency=(0.8, 2.0), scale=60.0)
    tilt = rng.uniform(-0.15, 0.15)

    def labels(coords):
        x, y, z = coords
        lower = z < posterior_top - slope * (y_post - y) + oblique(x, y, z)
        if side == LEFT:
            return np.where(lower, LABELS["lung_lower_lobe_left"], LABELS["lung_upper_lobe_left"]).astype(np.uint8)
        middle = z < horizontal_z + tilt * y + horizontal(x, y, z)
        upper_or_middle = np.where(middle, LABELS["lung_middle_lobe_right"], LABELS["lung_upper_lobe_right"])
        return np.where(lower, LABELS["lung_lower_lobe_right"], upper_or_middle).astype(np.uint8)

    return labels


def paint_lungs(canvas: Canvas, body: Body, rng: np.random.Generator) -> None:
    """Two lungs filling the thoracic cavity above the diaphragm, beside the mediastinum."""
    p, zs = body.patient, body.patient.z
    scale = p.organ_scale["lung"]
    apex = zs["lung_apex"] + rng.uniform(-10, 10)
    for side in (RIGHT, LEFT):
        chest_ax = float(body.ax(zs["carina"] - 60))
        dome = zs["dome_right"] if side == RIGHT else zs["dome_left"]
        base = dome - 45 * p.height
        center = np.array([side * 0.48 * chest_ax, 10.0 * p.depth, base])
        radii = np.array([0.62 * chest_ax * scale, 105 * p.depth * scale, apex - base])
        lung = Ellipsoid(center, radii, exponent=2.2, deformation=SmoothField(rng, 0.04, components=3))
        mediastinum = 20.0 + rng.uniform(-3, 4) if side == RIGHT else 25.0 + rng.uniform(-3, 4)

        def keep(x, y, z, side=side, mediastinum=mediastinum):
            spine_gap = (y > body.spine_y(z) - 15) & (np.abs(x) < body.spine_r(z) + 22)
            return (
                (side * x > mediastinum)
                & ~spine_gap
                & body.in_cavity(x, y, z)
                & (z > body.diaphragm(x, y) + 2.0)
            )

        canvas.paint(Where(lung, keep), Tissue.LUNG, label=lobe_labels(body, rng, side), within_tissue=(Tissue.MUSCLE,))
    # Trachea and main bronchi (air) down the middle of the upper mediastinum.
    carina = (0.0, 20.0, zs["carina"])
    trachea = [(0.0, -10.0, zs["chin"] - 20), (0.0, 5.0, zs["t1"]), carina]
    canvas.paint(Tube(trachea, 8.0), Tissue.AIR, label=0, except_tissue=BONY)


def paint_abdomen(canvas: Canvas, body: Body, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Liver, gallbladder, spleen, stomach, kidneys with renal pelvis and calyces; returns the renal hila."""
    p, zs = body.patient, body.patient.z
    below = body.below_diaphragm()
    cavity = body.in_cavity

    def in_abdomen(x, y, z):
        return below(x, y, z) & cavity(x, y, z)

    s = p.organ_scale["liver"]
    dome = zs["dome_right"]
    right_lobe = Ellipsoid(
        (RIGHT * 62 * p.width + rng.normal(0, 5), -5 * p.depth, dome - 62 * p.height),
        np.array([78, 76, 80]) * s,
        frame((1, rng.normal(0, 0.1), rng.uniform(0.1, 0.35)), (0, 1, 0)),
        deformation=SmoothField(rng, 0.08, components=3),
    )
    left_lobe = Ellipsoid(
        (LEFT * rng.uniform(10, 30) * p.width, -48 * p.depth, dome - 45 * p.height),
        np.array([rng.uniform(60, 80), 36, 38]) * s,
        frame((1, 0.15, rng.uniform(0.0, 0.3)), (0, 1, 0)),
        deformation=SmoothField(rng, 0.1, components=3),
    )
    liver = Where(right_lobe | left_lobe, in_abdomen)
    canvas.paint(liver, Tissue.LIVER, LABELS["liver"], within_tissue=(Tissue.MUSCLE,))
    if rng.random() < 0.6:
        gb_center = (RIGHT * 40 * p.width, -45 * p.depth, dome - 120 * p.height)
        gallbladder = Ellipsoid(gb_center, (16, 16, 35), frame((0.3, -0.4, -1), (1, 0, 0)))
        canvas.paint(gallbladder, Tissue.GALLBLADDER, 0, within_label=(LABELS["liver"],))

    s = p.organ_scale["spleen"]
    spleen_center = (LEFT * (body.ax(zs["dome_left"] - 80) - body.wall - 30), 45 * p.depth, zs["dome_left"] - 70 * p.height)
    spleen_axes = frame((rng.uniform(0.2, 0.5), rng.uniform(-0.8, -0.5), -0.75), (-1, -0.2, 0))
    spleen_radii = np.array([rng.uniform(61, 75), rng.uniform(24, 29), rng.uniform(40, 48)]) * s
    spleen = Ellipsoid(spleen_center, spleen_radii, spleen_axes, deformation=SmoothField(rng, 0.08, components=3))
    hilum = Ellipsoid(np.asarray(spleen_center) + spleen_axes[:, 1] * spleen_radii[1] * 1.6,
                      spleen_radii * (0.9, 1.0, 0.7), spleen_axes)
    canvas.paint(Where(spleen - hilum, in_abdomen), Tissue.SPLEEN, LABELS["spleen"], within_tissue=(Tissue.MUSCLE,))

    stomach_center = (LEFT * 55 * p.width, -30 * p.depth, zs["dome_left"] - 70 * p.height)
    stomach = Ellipsoid(stomach_center, (rng.uniform(30, 45), rng.uniform(28, 40), rng.uniform(45, 65)),
                        frame((-0.3, -0.2, -1), (1, 0, 0)), deformation=SmoothField(rng, 0.12, components=3))
    canvas.paint(Where(stomach, in_abdomen), Tissue.STOMACH, 0, within_tissue=(Tissue.MUSCLE,))

    hila = {}
    s = p.organ_scale["kidney"]
    for side, name, drop in ((LEFT, "kidney_left", 0.0), (RIGHT, "kidney_right", rng.uniform(8, 25))):
        z_center = zs["l1"] - drop * p.height + rng.normal(0, 8)
        depth = float(body.spine_y(z_center)) + rng.uniform(-5, 10)
        center = np.array([side * rng.uniform(62, 75) * p.width, depth, z_center])
        axes = frame((-side * rng.uniform(0.1, 0.3), rng.uniform(0.15, 0.35), 1.0), (-side, -rng.uniform(0.4, 0.9), 0))
        radii = np.array([rng.uniform(57, 64), rng.uniform(30, 34), rng.uniform(23, 26)]) * s
        kidney = Ellipsoid(center, radii, axes, deformation=SmoothField(rng, 0.06, components=3))
        notch = Ellipsoid(center + axes[:, 1] * radii[1] * 1.05, radii * (0.4, 0.45, 0.45), axes)
        perirenal_fat = Ellipsoid(center, radii + rng.uniform(4, 9), axes, deformation=kidney.deformation)
        canvas.paint(Where(perirenal_fat, cavity), Tissue.FAT, 0, except_tissue=BONY)
        canvas.paint(Where(kidney - notch, cavity), Tissue.KIDNEY, LABELS[name], except_tissue=BONY)
        pelvis_center = center + axes[:, 1] * radii[1] * 0.45
        renal_pelvis = Ellipsoid(pelvis_center, radii * (0.3, 0.3, 0.35), axes)
        calyces = Tube([center + axes[:, 0] * radii[0] * 0.45, pelvis_center, center - axes[:, 0] * radii[0] * 0.45], 4.0)
        canvas.paint(renal_pelvis | calyces, Tissue.RENAL_PELVIS, KEEP, within_label=(LABELS[name],))
        hila[name] = center + axes[:, 1] * radii[1]
    return hila


def paint_heart_and_vessels(canvas: Canvas, body: Body, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """IVC and SVC, the heart with its left-ventricular myocardium, aorta, iliac and femoral vessels."""
    p, zs = body.patient, body.patient.z
    s = p.organ_scale["heart"]
    xh, yh = LEFT * rng.uniform(10, 25) * p.width, -rng.uniform(15, 30) * p.depth
    radii = np.array([rng.uniform(63, 71), rng.uniform(50, 56), rng.uniform(44, 50)]) * s
    z_heart = float(body.diaphragm(xh, yh)) + radii[2] * rng.uniform(0.9, 1.05)
    center = np.array([xh, yh, z_heart])
    long_axis = np.array([rng.uniform(0.45, 0.65), -rng.uniform(0.35, 0.55), -rng.uniform(0.5, 0.8)])
    axes = frame(long_axis, (1, 1, 0))
    base = center - axes[:, 0] * radii[0] * 0.75

    def spine_front(z, offset):
        return float(body.spine_y(z) - body.spine_r(z)) - offset

    # Caval veins, painted first so the heart and aorta win where they meet.
    ivc = [center + (-45 * s, 15, -25), (RIGHT * 25, spine_front(zs["dome_right"], 20), zs["dome_right"] - 40),
           (RIGHT * 20, spine_front(zs["l2"], 14), zs["l2"]), (RIGHT * 15, spine_front(zs["l5"], 12), zs["l5"])]
    canvas.paint(Tube(ivc, 10.5), Tissue.BLOOD, 0, except_tissue=BONY)
    svc = [base + (-30, 5, 0), (RIGHT * 28, 0.0, zs["arch"] + 10)]
    canvas.paint(Tube(svc, 9.0), Tissue.BLOOD, 0, except_tissue=BONY)

    heart = Where(Ellipsoid(center, radii, axes, deformation=SmoothField(rng, 0.05, components=3)), body.above_diaphragm())
    canvas.paint(heart, Tissue.BLOOD, LABELS["heart"], except_tissue=BONY)
    toward_lv = frame(axes[:, 0], (1, 0.7, 0))[:, 1]
    lv_center = center + axes[:, 0] * radii[0] * 0.2 + toward_lv * radii[1] * 0.25
    lv_radii = radii * (0.75, 0.6, 0.62)
    wall = rng.uniform(9, 12)
    canvas.paint(Ellipsoid(lv_center, lv_radii, axes), Tissue.MYOCARDIUM, KEEP, within_label=(LABELS["heart"],))
    canvas.paint(Ellipsoid(lv_center, lv_radii - wall, axes), Tissue.BLOOD, KEEP, within_label=(LABELS["heart"],))

    # Aorta: root at the heart base, ascending, arch over to the left, descending by the spine.
    a = p.organ_scale["aorta"] * rng.uniform(0.95, 1.15)
    arch_z = zs["arch"]
    arch_top = min(arch_z, base[2] + 90)
    root = base + axes[:, 0] * 10 + (RIGHT * 5, -5, 0)
    centre_line = [
        root,
        (RIGHT * 20, root[1] - 8, (root[2] + arch_top) / 2),
        (RIGHT * 8, -15 * p.depth, arch_top - 8),
        (LEFT * 10, 10 * p.depth, arch_top),
        (LEFT * 22, spine_front(arch_top - 20, 8), arch_top - 20),
        (LEFT * 20, spine_front(arch_top - 70, 8), arch_top - 70),
        (LEFT * 15, spine_front(zs["dome_left"], 10), zs["dome_left"] - 10),
        (LEFT * 10, spine_front(zs["l2"], 14), zs["l2"]),
        (LEFT * 5, spine_front(zs["l4"], 12), zs["l4"]),
    ]
    aorta_radii = np.array([15, 15, 14, 13.5, 12.5, 12, 11, 10, 9]) * a
    canvas.paint(Tube(centre_line, aorta_radii), Tissue.BLOOD, LABELS["aorta"], except_tissue=BONY)
    # Iliac and femoral vessels (blood pool, no label).
    bifurcation = np.asarray(centre_line[-1])
    for side in (RIGHT, LEFT):
        hip_z = zs["hip"]
        iliac = [bifurcation + (0, 0, -5), (side * 45 * p.width, 10.0, zs["s1"] - 10),
                 (side * 75 * p.width, -15.0, hip_z + 5), (side * 85 * p.width, -40.0, zs["crotch"] - 20),
                 (side * 80 * p.width, -20.0, zs["mid_thigh"] - 60)]
        canvas.paint(Tube(iliac, (7.5, 6.5, 6, 5, 4.5)), Tissue.BLOOD, 0, within_tissue=SOFT)
    return {"aortic_arch": np.asarray(centre_line[3])}


def paint_pelvis_and_gut(canvas: Canvas, body: Body, rng: np.random.Generator, kidney_hila: Dict[str, np.ndarray]) -> None:
    """Ureters, colon and small bowel, bladder, prostate and testes."""
    p, zs = body.patient, body.patient.z
    bladder_ml = float(np.exp(rng.uniform(np.log(60), np.log(450))))
    shape = np.array([1.25, 0.95, 0.85])
    bladder_radii = shape * (bladder_ml * 1000 / (4 / 3 * np.pi * shape.prod())) ** (1 / 3)
    bladder_bottom = zs["pubis"] + rng.uniform(-5, 10)
    bladder_center = np.array([rng.normal(0, 5), -20 * p.depth + rng.normal(0, 5), bladder_bottom + bladder_radii[2]])

    for name, hilum in kidney_hila.items():
        side = LEFT if name.endswith("left") else RIGHT
        ureter = [hilum, (side * 45, float(body.spine_y(zs["l3"])) - 5, zs["l3"]),
                  (side * 50 * p.width, 25.0, zs["s1"]), (side * 55 * p.width, 30.0, bladder_center[2] - 5),
                  bladder_center + (side * 20, bladder_radii[1] * 0.8, -bladder_radii[2] * 0.3)]
        canvas.paint(Tube(ureter, 3.0), Tissue.URETER, 0, within_tissue=SOFT)

    colon_points = [
        (RIGHT * 70, -10, zs["l5"] - 15), (RIGHT * 88, 15, zs["l3"]), (RIGHT * 80, 0, zs["l1"] - 10),
        (RIGHT * 20, -70, zs["l2"] - rng.uniform(0, 50)), (LEFT * 50, -60, zs["l1"] - 10),
        (LEFT * 90, 10, zs["dome_left"] - 110), (LEFT * 90, 25, zs["l3"]), (LEFT * 75, 10, zs["s1"] - 10),
        (LEFT * 30, -20, zs["s1"] - 40), (RIGHT * 10, 40, zs["s1"] - 30), (0, 55, zs["pubis"]),
        (0, 50, zs["pubis"] - 40),
    ]
    colon_points = np.array(colon_points, dtype=float) * (p.width, p.depth, 1.0) + rng.normal(0, 6, (12, 3))
    canvas.paint(Tube(colon_points, rng.uniform(15, 22)), Tissue.COLON, 0, within_tissue=(Tissue.MUSCLE,))
    small_bowel = Ellipsoid((rng.normal(0, 10), -30 * p.depth, zs["l4"]), (95 * p.width, 45 * p.depth, 70 * p.height),
                            deformation=SmoothField(rng, 0.15, components=3))
    canvas.paint(Where(small_bowel, body.in_cavity), Tissue.SMALL_BOWEL, 0, within_tissue=(Tissue.MUSCLE,))

    bladder = Ellipsoid(bladder_center, bladder_radii, deformation=SmoothField(rng, 0.06, components=3))
    canvas.paint(bladder, Tissue.URINE, LABELS["urinary_bladder"], except_tissue=BONY)
    if p.sex == "M":
        s = p.organ_scale["prostate"]
        radii = np.array([rng.uniform(19, 24), rng.uniform(14, 18), rng.uniform(15, 19)]) * s
        center = bladder_center + (0, 8, -bladder_radii[2] - radii[2] * 0.6)
        prostate = Ellipsoid(center, radii, deformation=SmoothField(rng, 0.07, components=3))
        canvas.paint(prostate, Tissue.PROSTATE, LABELS["prostate"], except_tissue=BONY)
        scrotum = np.array([0.0, body.anterior(zs["pubis"]) - 10, zs["crotch"] - 35])
        canvas.paint(Ellipsoid(scrotum, (40, 35, 40)), Tissue.FAT, 0, except_tissue=(*BONY, Tissue.MUSCLE))
        for side in (RIGHT, LEFT):
            canvas.paint(Ellipsoid(scrotum + (side * 15, 5, rng.uniform(-8, 8)), (14, 12, 20)), Tissue.TESTIS, 0)


def paint_head(canvas: Canvas, body: Body, rng: np.random.Generator) -> None:
    """Brain (hot cortex and deep grey matter, cooler white matter, cerebellum) and neck glands."""
    p, zs = body.patient, body.patient.z
    s = p.organ_scale["brain"]
    center = np.array([0.0, 5.0, zs["brain"] * s / p.height])
    radii = np.array([66, 82, 58]) * s
    deform = SmoothField(rng, 0.04, components=3)
    cerebrum = Where(Ellipsoid(center, radii, deformation=deform), lambda x, y, z: z > center[2] - 40 * s)
    cerebellum = Ellipsoid(center + (0, 42 * s, -45 * s), np.array([52, 30, 24]) * s,
                           deformation=SmoothField(rng, 0.05, components=3))
    canvas.paint(cerebrum, Tissue.GRAY_MATTER, LABELS["brain"])
    canvas.paint(Ellipsoid(center, radii - rng.uniform(9, 13), deformation=deform), Tissue.WHITE_MATTER, KEEP,
                 within_label=(LABELS["brain"],))
    for side in (RIGHT, LEFT):
        canvas.paint(Ellipsoid(center + (side * 20 * s, 0, -8), (12, 20, 13)), Tissue.DEEP_GRAY, KEEP,
                     within_label=(LABELS["brain"],))
    canvas.paint(cerebellum, Tissue.CEREBELLUM, LABELS["brain"])
    glands = [((RIGHT * 18, -25, -170), (9, 10, 14)), ((LEFT * 18, -25, -170), (9, 10, 14)),
              ((RIGHT * 55, 5, -150), (12, 18, 24)), ((LEFT * 55, 5, -150), (12, 18, 24)),
              ((RIGHT * 35, -30, -200), (11, 11, 10)), ((LEFT * 35, -30, -200), (11, 11, 10))]
    for center_ref, gland_radii in glands:
        c = np.array(center_ref) * (p.width, p.depth, p.height)
        canvas.paint(Ellipsoid(c, gland_radii), Tissue.GLAND, 0, within_tissue=(Tissue.MUSCLE,))


def node_stations(body: Body, vessels: Dict[str, np.ndarray]) -> List[np.ndarray]:
    """Centres (mm) of lymph-node stations where nodal lesions grow."""
    p, zs = body.patient, body.patient.z
    stations = []
    for side in (RIGHT, LEFT):
        stations += [
            (side * 40 * p.width, 0.0, zs["chin"] - 30),                       # cervical
            (side * 55 * p.width, 5.0, zs["t1"] + 5),                          # supraclavicular
            (side * (body.ax(zs["carina"]) - 40), 10.0, zs["carina"] + 10),    # axillary
            (side * 50, 20.0, zs["carina"] - 20),                              # hilar
            (side * 60 * p.width, 15.0, zs["s1"] - 15),                        # iliac
            (side * 85 * p.width, -55 * p.depth, zs["pubis"] - 10),            # inguinal
        ]
    arch = vessels["aortic_arch"]
    stations += [
        (RIGHT * 15, 10.0, arch[2] - 25), (0.0, 35.0, zs["carina"] - 15),     # mediastinal
        (LEFT * 35, float(body.spine_y(zs["l2"])) - 30, zs["l2"]),           # para-aortic
        (RIGHT * 5, float(body.spine_y(zs["l3"])) - 35, zs["l3"]),
    ]
    return [np.asarray(s, dtype=float) for s in stations]


def paint_lesions(canvas: Canvas, body: Body, rng: np.random.Generator, vessels: Dict[str, np.ndarray],
                  max_lesions: int = 15) -> List[Lesion]:
    """0..N tumours (5-30 mm) in liver, lung, lymph-node stations and bone marrow."""
    count = min(int(rng.poisson(rng.choice([0.6, 2.0, 6.0], p=[0.35, 0.45, 0.2]))), max_lesions)
    lung_labels = [LABELS[n] for n in LABELS if n.startswith("lung_")]
    sites = {"liver": ("label", [LABELS["liver"]]), "lung": ("label", lung_labels),
             "bone": ("tissue", [int(Tissue.MARROW)]), "node": ("station", None)}
    stations = node_stations(body, vessels)
    lesions: List[Lesion] = []
    for _ in range(count):
        site = str(rng.choice(list(sites), p=[0.25, 0.25, 0.2, 0.3]))
        kind, values = sites[site]
        if kind == "station":
            center = stations[rng.integers(len(stations))] + rng.normal(0, 8, 3)
        else:
            volume = canvas.label if kind == "label" else canvas.tissue
            candidates = np.flatnonzero(np.isin(volume, values))
            if candidates.size == 0:
                continue
            index = np.unravel_index(candidates[rng.integers(candidates.size)], volume.shape)
            center = canvas.grid.index_to_point(index) + rng.uniform(-1.5, 1.5, 3)
        diameter = float(np.exp(rng.uniform(np.log(5), np.log(30))))
        radius = diameter / 2
        shape = Ellipsoid(center, radius * rng.uniform(0.85, 1.15, 3), frame(rng.normal(size=3), rng.normal(size=3)),
                          deformation=SmoothField(rng, 0.08, components=3))
        painted = canvas.paint(shape, Tissue.LESION, LABELS["lesion"], except_tissue=(Tissue.AIR,))
        if painted == 0:  # smaller than a voxel: the voxel holding its centre
            index = canvas.grid.point_to_index(center)
            if canvas.tissue[index] == Tissue.AIR:
                continue
            canvas.tissue[index], canvas.label[index] = Tissue.LESION, LABELS["lesion"]
        lesions.append(Lesion(tuple(float(c) for c in center), diameter, site, shape))
    return lesions


@dataclass
class Anatomy:
    """The painted patient: organ labels, tissue classes, lesions and the patient's build."""

    label: np.ndarray
    tissue: np.ndarray
    lesions: List[Lesion]
    patient: Patient
    grid: Grid


def field_of_view(patient: Patient, rng: np.random.Generator, spacing: Tuple[float, float, float],
                  in_plane: Tuple[int, int]) -> Grid:
    """Scanner grid: from near the vertex (top of the brain sometimes cut) to mid-thigh."""
    top = rng.uniform(-35.0, 15.0)
    bottom = patient.z["mid_thigh"] + rng.uniform(-40.0, 20.0)
    nz = int(round((top - bottom) / spacing[2]))
    nx, ny = in_plane
    origin = (-(nx - 1) / 2 * spacing[0], -(ny - 1) / 2 * spacing[1] + 5.0, top - (nz - 1) * spacing[2])
    return Grid((nx, ny, nz), spacing, origin)


def build_anatomy(rng: np.random.Generator, grid: Grid | None = None, spacing=(4.07, 4.07, 3.0),
                  in_plane=(160, 112), patient: Patient | None = None) -> Anatomy:
    """Sample a patient and paint its anatomy; ``grid`` overrides the default field of view."""
    patient = patient or Patient.sample(rng)
    grid = grid or field_of_view(patient, rng, spacing, in_plane)
    body = Body(patient, rng)
    canvas = Canvas(grid)
    paint_body(canvas, body, rng)
    paint_arms(canvas, body, rng)
    paint_skeleton(canvas, body, rng)
    paint_lungs(canvas, body, rng)
    hila = paint_abdomen(canvas, body, rng)
    vessels = paint_heart_and_vessels(canvas, body, rng)
    paint_pelvis_and_gut(canvas, body, rng, hila)
    paint_head(canvas, body, rng)
    lesions = paint_lesions(canvas, body, rng, vessels)
    return Anatomy(canvas.label, canvas.tissue, lesions, patient, grid)
