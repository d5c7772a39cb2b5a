"""Internal organs, painted onto the body frame in anatomical order.

Contract: each ``paint_*`` takes the :class:`~.shapes.Canvas` already holding the body frame of
:mod:`.body`, the patient's :class:`~.body.Body` and ``rng``, and paints organ labels
(:data:`SegAnyPETLib.labels.LABELS`) and tissue classes in millimetres; later organs win where shapes
overlap (lungs are carved by the heart and great vessels, the liver by the kidney and IVC, ...).
:func:`~.anatomy.build_anatomy` calls them in the order lungs, abdomen, heart and vessels, pelvis
and gut, head; the order and the draws from ``rng`` fix the phantom. ``paint_abdomen`` returns the
renal hila (for the ureters), ``paint_heart_and_vessels`` the aortic arch (for node stations).
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from ..labels import LABELS
from .body import BONY, LEFT, RIGHT, SOFT, Body, Tissue, frame
from .shapes import KEEP, Canvas, Ellipsoid, SmoothField, Tube, Where


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
