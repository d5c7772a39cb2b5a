"""FDG uptake (SUV) per tissue, drawn per patient from ranges reported in the literature.

The table below is the single source of the values (docs/phantoms.md prints it). Each entry is a
range a patient's tissue SUVmean is drawn from, uniformly or log-uniformly, either absolute or
relative to another tissue (spleen relative to liver, white matter relative to cortex, ...), plus
the amplitude of the smooth within-tissue heterogeneity. Sources (short keys, full references in
docs/phantoms.md):

- Wang2007: Wang Y et al., Standardized uptake value atlas: characterization of physiological
  FDG uptake in normal tissues. Mol Imaging Biol 2007;9:83-90 (98 patients, SUVmean per organ).
- PERCIST: Wahl RL et al., From RECIST to PERCIST. J Nucl Med 2009;50:122S-150S (liver and
  mediastinal blood-pool references).
- EANM2015: Boellaard R et al., FDG PET/CT: EANM procedure guidelines for tumour imaging v2.0.
  Eur J Nucl Med Mol Imaging 2015;42:328-354 (liver SUVmean and its noise, COV < 15 %).
- Israel2007: Israel O et al., PET/CT quantitation of the effect of patient-related factors on
  cardiac 18F-FDG uptake. J Nucl Med 2007;48:234-239 (myocardium from blood-pool-like to intense).
- Engel1996 / Shreve1999: physiological FDG accumulations and pitfalls (urinary tract, bowel,
  tonsils, salivary glands, brown fat). J Nucl Med 1996;37:441-446; Radiographics 1999;19:61-77.
- Prabhakar2007: Prabhakar HB et al., Bowel hot spots at PET-CT. Radiographics 2007;27:145-159.
- estimate: no single normal-value reference; chosen to give the usual appearance.
- AutoPET: Gatidis S et al., A whole-body FDG-PET/CT dataset with manually annotated tumor
  lesions. Sci Data 2022;9:601 (lesion sizes and SUVs of lymphoma, melanoma, lung cancer).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from .anatomy import Anatomy
from .body import Tissue
from .scanner import nonzero_box
from .shapes import Grid


@dataclass(frozen=True)
class Uptake:
    """How one tissue's SUVmean is drawn: [low, high], optionally log-uniform or times another tissue."""

    low: float
    high: float
    log: bool = False
    relative_to: Optional[Tissue] = None
    heterogeneity: float = 0.1
    source: str = ""
    note: str = ""


T = Tissue
UPTAKE: Dict[Tissue, Uptake] = {
    T.LIVER: Uptake(1.8, 3.0, heterogeneity=0.06, source="PERCIST, EANM2015, Wang2007", note="SUVmean of the normal liver"),
    T.BLOOD: Uptake(0.62, 0.82, relative_to=T.LIVER, heterogeneity=0.03, source="PERCIST, Wang2007",
                    note="blood pool (aorta, heart cavities, caval veins), ~1.3-2.3"),
    T.SPLEEN: Uptake(0.75, 0.95, relative_to=T.LIVER, heterogeneity=0.06, source="Wang2007", note="spleen below liver"),
    T.MYOCARDIUM: Uptake(1.5, 15.0, log=True, heterogeneity=0.2, source="Israel2007",
                         note="LV wall, fasting-dependent: blood-pool-like to intense"),
    T.LUNG: Uptake(0.3, 0.8, heterogeneity=0.1, source="Wang2007", note="plus an anterior-posterior gradient"),
    T.KIDNEY: Uptake(1.8, 3.5, heterogeneity=0.1, source="Wang2007", note="renal parenchyma"),
    T.URINE: Uptake(5.0, 60.0, log=True, heterogeneity=0.02, source="Engel1996, Shreve1999",
                    note="bladder: urinary excretion"),
    T.RENAL_PELVIS: Uptake(0.15, 0.6, relative_to=T.URINE, heterogeneity=0.3, source="Engel1996, Shreve1999; estimate",
                           note="urine in calyces and pelvis, diluted by partial volume and flow"),
    T.URETER: Uptake(0.05, 0.4, relative_to=T.URINE, heterogeneity=1.5, source="Shreve1999; estimate",
                     note="patchy (peristalsis), unlabelled"),
    T.GRAY_MATTER: Uptake(6.0, 12.0, heterogeneity=0.08, source="Wang2007", note="cerebral cortex"),
    T.DEEP_GRAY: Uptake(0.9, 1.1, relative_to=T.GRAY_MATTER, heterogeneity=0.05, source="estimate",
                        note="basal ganglia, thalami"),
    T.WHITE_MATTER: Uptake(0.3, 0.42, relative_to=T.GRAY_MATTER, heterogeneity=0.05, source="estimate",
                           note="grey/white ratio 2.4-3.3"),
    T.CEREBELLUM: Uptake(0.65, 0.9, relative_to=T.GRAY_MATTER, heterogeneity=0.05, source="Wang2007",
                         note="cerebellum 8.0 +- 2.2 in Wang2007"),
    T.MARROW: Uptake(1.0, 2.5, heterogeneity=0.15, source="Wang2007, PERCIST", note="red marrow: spine, pelvis, sternum"),
    T.FATTY_MARROW: Uptake(0.4, 0.8, heterogeneity=0.15, source="estimate", note="femoral and humeral shafts"),
    T.BONE: Uptake(0.3, 0.6, heterogeneity=0.1, source="estimate", note="cortical bone, discs, skull"),
    T.MUSCLE: Uptake(0.5, 1.0, heterogeneity=0.15, source="Wang2007", note="skeletal muscle, soft tissue"),
    T.FAT: Uptake(0.2, 0.4, heterogeneity=0.15, source="Wang2007", note="subcutaneous fat"),
    T.PROSTATE: Uptake(1.3, 2.8, heterogeneity=0.1, source="estimate", note="normal gland, close to blood pool"),
    T.TESTIS: Uptake(1.9, 3.2, heterogeneity=0.08, source="Wang2007", note="2.57 +- 0.56 in Wang2007"),
    T.GLAND: Uptake(1.5, 3.5, heterogeneity=0.15, source="Wang2007", note="tonsils, parotid and submandibular glands"),
    T.SPINAL_CORD: Uptake(0.9, 1.6, heterogeneity=0.1, source="estimate"),
    T.STOMACH: Uptake(1.2, 3.0, heterogeneity=0.3, source="Wang2007, Prabhakar2007"),
    T.SMALL_BOWEL: Uptake(0.8, 2.0, heterogeneity=0.45, source="Prabhakar2007", note="patchy"),
    T.COLON: Uptake(0.9, 2.8, heterogeneity=0.6, source="Prabhakar2007", note="patchy, caecum and rectum often hot"),
    T.GALLBLADDER: Uptake(0.5, 1.2, heterogeneity=0.1, source="estimate", note="photopenic defect in the liver"),
    T.AIR: Uptake(0.0, 0.0, heterogeneity=0.0, note="trachea, outside the body"),
}
LESION_SUV = Uptake(3.0, 20.0, log=True, heterogeneity=0.0, source="AutoPET, PERCIST",
                    note="per lesion, 5-30 mm; 30 % of those > 18 mm with a necrotic core at 0.3 x")
LUNG_GRADIENT = (0.1, 0.3)  # fractional SUV increase per 100 mm towards the dependent (posterior) lung


def draw(uptake: Uptake, rng: np.random.Generator) -> float:
    if uptake.log:
        return float(np.exp(rng.uniform(np.log(uptake.low), np.log(uptake.high))))
    return float(rng.uniform(uptake.low, uptake.high))


def sample_suv(rng: np.random.Generator) -> Dict[Tissue, float]:
    """One patient's SUVmean per tissue (relative entries after the tissue they refer to)."""
    values: Dict[Tissue, float] = {}
    pending = dict(UPTAKE)
    while pending:
        for tissue, uptake in list(pending.items()):
            if uptake.relative_to is None:
                values[tissue] = draw(uptake, rng)
            elif uptake.relative_to in values:
                values[tissue] = draw(uptake, rng) * values[uptake.relative_to]
            else:
                continue
            del pending[tissue]
    return values


def smooth_texture(shape, rng: np.random.Generator, cell: int = 4) -> np.ndarray:
    """Unit-variance random field with a correlation length of about ``cell`` voxels."""
    from scipy import ndimage

    coarse_shape = tuple(int(np.ceil(n / cell)) for n in shape)
    coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape, dtype=np.float32), 0.8)
    coarse /= coarse.std() + 1e-6
    fine = coarse
    for axis in range(3):  # block upsampling, then a box filter: piecewise-linear interpolation
        fine = np.repeat(fine, cell, axis=axis)
    fine = fine[: shape[0], : shape[1], : shape[2]]
    return ndimage.uniform_filter(fine, cell, mode="nearest")


def activity_map(anatomy: Anatomy, suv: Dict[Tissue, float], rng: np.random.Generator):
    """True (unblurred) SUV per voxel: tissue SUVs with smooth heterogeneity, lung gradient, lesions.

    Returns the activity (float32) and one dict per lesion with its site, diameter and SUV.
    """
    tissue = anatomy.tissue
    table = np.zeros(len(Tissue), dtype=np.float32)
    amplitude = np.zeros(len(Tissue), dtype=np.float32)
    for t, u in UPTAKE.items():
        table[t] = suv[t]
        amplitude[t] = u.heterogeneity
    activity = table[tissue]
    box = nonzero_box(tissue)  # the body: the air outside needs no texture
    texture = smooth_texture(activity[box].shape, rng)
    activity[box] *= np.maximum(1.0 + amplitude[tissue[box]] * texture, 0.0)
    y = anatomy.grid.axis(1)[None, :, None]
    gradient = 1.0 + rng.uniform(*LUNG_GRADIENT) * (y - 10.0) / 100.0
    lung = tissue == Tissue.LUNG
    activity[lung] = (activity * gradient)[lung]
    lesions = [paint_lesion_activity(activity, anatomy, lesion, rng) for lesion in anatomy.lesions]
    return activity, lesions


def paint_lesion_activity(activity: np.ndarray, anatomy: Anatomy, lesion, rng: np.random.Generator) -> dict:
    """Set a lesion's SUV where it is labelled; big ones sometimes have a cooler necrotic core."""
    grid: Grid = anatomy.grid
    value = draw(LESION_SUV, rng)
    region = grid.region(*lesion.shape.bounds())
    necrotic = lesion.diameter > 18 and rng.random() < 0.3
    if region is not None:
        x, y, z = grid.coords(region)
        level = np.broadcast_to(lesion.shape.level(x, y, z), activity[region].shape)
        mine = (anatomy.tissue[region] == Tissue.LESION) & (level < 1.0)
        lesion_values = np.where(necrotic & (level < 0.2), 0.3 * value, value).astype(np.float32)
        activity[region][mine] = lesion_values[mine]
    index = grid.point_to_index(lesion.center)
    if anatomy.tissue[index] == Tissue.LESION and activity[index] < 0.3 * value:
        activity[index] = value  # sub-voxel lesion painted at its centre voxel only
    return {"site": lesion.site, "diameter_mm": round(lesion.diameter, 1), "suv": round(value, 2),
            "center_mm": [round(c, 1) for c in lesion.center], "necrotic": bool(necrotic)}


def uptake_table_markdown() -> str:
    """The uptake table as Markdown (docs/phantoms.md embeds it; a test keeps them equal)."""
    rows = ["| tissue | SUVmean per patient | heterogeneity | sources | note |", "|---|---|---|---|---|"]
    entries = [(t.name.lower().replace("_", " "), u) for t, u in UPTAKE.items() if t != Tissue.AIR]
    entries.append(("lesion", LESION_SUV))
    for name, u in entries:
        scale = f" x {u.relative_to.name.lower().replace('_', ' ')}" if u.relative_to is not None else ""
        spread = " (log-uniform)" if u.log else ""
        rows.append(f"| {name} | {u.low:g}-{u.high:g}{scale}{spread} | {u.heterogeneity:.0%} | {u.source} | {u.note} |")
    return "\n".join(rows) + "\n"
