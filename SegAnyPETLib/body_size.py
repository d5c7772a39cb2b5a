"""Body size, the numerator of an SUV: weight, lean body mass, body surface area, ideal weight.

SUV types (``body size`` in the numerator; sex O takes the mean of the male and female formulas):
    ``bw``        body weight [g]                                          -> g/mL
    ``lbm``       lean body mass, James with 128 (DICOM LBMJAMES128) [g]:
                  male 1.10 W - 128 (W/H)^2, female 1.07 W - 148 (W/H)^2 (W kg, H cm) -> g/mL (SUL)
    ``lbm-janma`` lean body mass, Janmahasatian (DICOM LBMJANMA) [g]:
                  male 9270 W / (6680 + 216 BMI), female 9270 W / (8780 + 244 BMI)  -> g/mL
    ``bsa``       body surface area, Du Bois: 0.007184 W^0.425 H^0.725 m^2 [cm2]  -> cm2/mL
    ``ibw``       ideal body weight, Sugawara 1999 (the IBSI manual's):
                  male 48.0 + 1.06 (H - 152), female 45.5 + 0.91 (H - 152) [kg] -> g/mL
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from .errors import SegAnyPETError

SUV_TYPES: Tuple[str, ...] = ("bw", "lbm", "lbm-janma", "bsa", "ibw")
SUV_TYPE_NAMES: Dict[str, str] = {
    "bw": "SUVbw, body weight",
    "lbm": "SUVlbm (SUL), lean body mass by James with 128 (DICOM LBMJAMES128)",
    "lbm-janma": "SUVlbm (SUL), lean body mass by Janmahasatian (DICOM LBMJANMA)",
    "bsa": "SUVbsa, body surface area by Du Bois",
    "ibw": "SUVibw, ideal body weight by Sugawara",
}
SUV_UNITS: Dict[str, str] = {"bw": "g/mL", "lbm": "g/mL", "lbm-janma": "g/mL", "bsa": "cm2/mL", "ibw": "g/mL"}
BODY_SIZE_TEXT: Dict[str, str] = {
    "bw": "weight [g]",
    "lbm": "lean body mass James-128 [g]",
    "lbm-janma": "lean body mass Janmahasatian [g]",
    "bsa": "body surface area Du Bois [cm2]",
    "ibw": "ideal body weight Sugawara [g]",
}


def _by_sex(sex: str, male: float, female: float, what: str) -> float:
    sex = (sex or "").upper()
    if sex == "M":
        return male
    if sex == "F":
        return female
    if sex == "O":
        return (male + female) / 2.0
    raise SegAnyPETError(f"{what} needs the patient's sex M, F or O, got {sex or 'none'}; pass --sex M|F")


def lean_body_mass_james128(weight_kg: float, height_cm: float, sex: str) -> float:
    """Lean body mass [kg], James with the 128 multiplier (DICOM LBMJAMES128)."""
    ratio = (weight_kg / height_cm) ** 2
    return _by_sex(sex, 1.10 * weight_kg - 128.0 * ratio, 1.07 * weight_kg - 148.0 * ratio, "lean body mass")


def lean_body_mass_janmahasatian(weight_kg: float, height_cm: float, sex: str) -> float:
    """Lean body mass [kg], Janmahasatian 2005 (DICOM LBMJANMA)."""
    bmi = weight_kg / (height_cm / 100.0) ** 2
    male = 9270.0 * weight_kg / (6680.0 + 216.0 * bmi)
    female = 9270.0 * weight_kg / (8780.0 + 244.0 * bmi)
    return _by_sex(sex, male, female, "lean body mass")


def body_surface_area_dubois(weight_kg: float, height_cm: float) -> float:
    """Body surface area [m^2], Du Bois and Du Bois 1916."""
    return 0.007184 * weight_kg**0.425 * height_cm**0.725


def ideal_body_weight(height_cm: float, sex: str) -> float:
    """Ideal body weight [kg], Sugawara 1999 as in the IBSI SUV manual."""
    return _by_sex(sex, 48.0 + 1.06 * (height_cm - 152.0), 45.5 + 0.91 * (height_cm - 152.0), "ideal body weight")


def body_size(suv_type: str, weight_kg: Optional[float], height_cm: Optional[float] = None, sex: Optional[str] = None) -> float:
    """The SUV numerator: grams of body weight, lean or ideal mass, or cm^2 of body surface."""
    if suv_type not in SUV_TYPES:
        raise SegAnyPETError(f"unknown SUV type {suv_type!r}; choose one of {', '.join(SUV_TYPES)}")
    if suv_type != "ibw" and not (weight_kg and weight_kg > 0):
        raise SegAnyPETError(f"SUV{suv_type} needs the patient's weight; pass --weight KG")
    if suv_type != "bw" and not (height_cm and height_cm > 0):
        raise SegAnyPETError(f"SUV{suv_type} needs the patient's height; pass --height CM")
    if suv_type == "bw":
        return 1000.0 * weight_kg
    if suv_type == "bsa":
        return 1e4 * body_surface_area_dubois(weight_kg, height_cm)
    if suv_type == "lbm":
        mass = lean_body_mass_james128(weight_kg, height_cm, sex)
    elif suv_type == "lbm-janma":
        mass = lean_body_mass_janmahasatian(weight_kg, height_cm, sex)
    else:
        mass = ideal_body_weight(height_cm, sex)
    if mass <= 0:
        raise SegAnyPETError(
            f"SUV{suv_type}: the formula gives {mass:.1f} kg for weight {weight_kg} kg, height {height_cm} cm; "
            "check --weight and --height"
        )
    return 1000.0 * mass
