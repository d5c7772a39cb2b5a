"""Whole-body anatomy of one random patient: build, organs, lesions, field of view.

Contract: :func:`build_anatomy` samples a :class:`~.body.Patient`, its scanner grid and its
:class:`~.body.Body`, paints the body frame (:mod:`.body`), the organs (:mod:`.organs`) and then the
lesions (this module) in that fixed order from one ``rng``, and returns an :class:`Anatomy`: organ
labels and tissue classes on the grid, the lesions and the patient's build. Same ``rng`` state, same
arrays. Lesions are placed in already painted liver, lung or red marrow, or at lymph-node stations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from ..labels import LABELS
from .body import LEFT, RIGHT, Body, Patient, Tissue, frame, paint_arms, paint_body, paint_skeleton
from .organs import paint_abdomen, paint_head, paint_heart_and_vessels, paint_lungs, paint_pelvis_and_gut
from .shapes import Canvas, Ellipsoid, Grid, SmoothField


@dataclass
class Lesion:
    """A tumour: centre (mm), diameter (mm), site and its shape (painted as label 'lesion')."""

    center: Tuple[float, float, float]
    diameter: float
    site: str
    shape: Ellipsoid = field(repr=False)


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
