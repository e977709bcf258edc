"""The backstop for people whose faces cannot be checked: how often it fires, what it finds, what it costs.

On the real photographs folder (``--faces-dir`` or DOJOGUARD_FACES_DIR):

- how often it fires on photos with no one in them, on single portraits and
  on group photos whose faces are all found and checked;
- people whose faces cannot be checked, built from those photos: each face
  the detector found, in turn, hidden (the least blur that hides it, a bar
  over the eyes, heavy blur, a grey block) so that the detector no longer
  finds it; is that person seen?
- CPU seconds for a 12-megapixel photo's processing frame.

The figures are in docs/images.md, "People whose faces cannot be checked". Run:

    python benchmarks/people_bench.py --faces-dir PATH
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from dojoguard.consent_registry import decoding, faces, people

SETTINGS = faces.Settings()
NO_ONE = ["no-faces/chelsea.png", "no-faces/coffee.png", "no-faces/hubble_deep_field.jpg", "no-faces/rocket.jpg",
          "dlib-pascal/dogs.jpg"]
GROUPS = [f"dlib-pascal/{n}.jpg" for n in ("2007_007763", "2008_001009", "2008_001322", "2008_002079",
                                            "2008_002470", "2008_002506", "2008_004176", "2008_007676",
                                            "2009_004587", "bald_guys")]
GROUPS += ["people/two_people.jpg", "people/knn_examples/test/obama_and_biden.jpg",
           "people/knn_examples/test/kit_with_rose.jpg"]


def portraits(root: Path) -> list[str]:
    names = [p for p in sorted((root / "people").glob("*.*")) if p.name != "two_people.jpg"]
    names += sorted((root / "people/knn_examples/train").glob("*/*"))
    names += [root / "people/knn_examples/test" / n for n in ("alex_lacamoire1.jpg", "johnsnow_test1.jpg",
                                                              "obama1.jpg")]
    names += [root / "dlib-pascal/Tom_Cruise_avp_2014_4.jpg"]
    return [str(p.relative_to(root)) for p in names]


def frame(path: Path) -> np.ndarray:
    return decoding.decode(path.read_bytes(), max_pixels=SETTINGS.max_pixels, long_side=faces.frame_side(SETTINGS),
                           max_frames=1).frames[0].pixels


def checked(pixels: np.ndarray) -> list:
    height, width = pixels.shape[:2]
    return [tuple(int(v) for v in f.box) for f in faces.detect(decoding.Frame(pixels, 1.0, (width, height)), SETTINGS)]


def area(box, shape, margin: float):
    top, right, bottom, left = box
    extra = (right - left) * margin
    return (max(0, int(top - extra)), min(shape[1], int(right + extra)), min(shape[0], int(bottom + extra)),
            max(0, int(left - extra)))


def blurred(pixels: np.ndarray, box, radius_of_width: float, margin: float) -> np.ndarray:
    top, right, bottom, left = area(box, pixels.shape, margin)
    out = pixels.copy()
    patch = Image.fromarray(out[top:bottom, left:right])
    out[top:bottom, left:right] = np.asarray(patch.filter(ImageFilter.GaussianBlur((box[1] - box[3]) * radius_of_width)))
    return out


def hidden_versions(pixels: np.ndarray, box):
    """(how, pixels) for each way of hiding the face in ``box``."""
    for radius in (0.04, 0.07, 0.1, 0.15):
        soft = blurred(pixels, box, radius, 0.25)
        if not found_again(soft, box):
            yield "least blur that hides it", soft
            break
    top, right, bottom, left = box
    eyes = pixels.copy()
    eyes[int(top + 0.15 * (bottom - top)):int(top + 0.5 * (bottom - top)), left:right] = 40
    yield "a bar over the eyes", eyes
    yield "heavy blur", blurred(blurred(pixels, box, 0.25, 0.25), box, 0.25, 0.25)
    t, r, b, lft = area(box, pixels.shape, 0.25)
    block = pixels.copy()
    block[t:b, lft:r] = block[t:b, lft:r].reshape(-1, 3).mean(axis=0).astype(np.uint8)
    yield "a grey block", block


def found_again(pixels: np.ndarray, box) -> bool:
    return any(faces._overlap(box, f) > 0.3 for f in checked(pixels))


def sees(region: people.Region, box) -> bool:
    return people._overlap(region.box, box) >= 0.3 or people.head_of(box, people._widened(region.box, 0.25))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces-dir", default=os.environ.get("DOJOGUARD_FACES_DIR"))
    args = parser.parse_args()
    if not args.faces_dir:
        parser.error("--faces-dir (or DOJOGUARD_FACES_DIR) is needed")
    root = Path(args.faces_dir)
    sets = {"no one in them": NO_ONE, "single portraits": portraits(root), "group photos": GROUPS}
    hidden: dict[tuple[str, str], list[int]] = {}
    for label, names in sets.items():
        fired = []
        for name in names:
            pixels = frame(root / name)
            boxes = checked(pixels)
            if people.find_unverified(pixels, boxes).count:
                fired.append(f"{name} ({len(boxes)} faces checked)")
            if label == "no one in them":
                continue
            for box in boxes:
                for how, version in hidden_versions(pixels, box):
                    if found_again(version, box):
                        continue  # not hidden from the detector: not such a case
                    result = people.find_unverified(version, checked(version))
                    tally = hidden.setdefault((how, label), [0, 0])
                    tally[0] += any(sees(r, box) for r in result.regions)
                    tally[1] += 1
        print(f"fires on {len(fired)} of {len(names)} {label}: {', '.join(fired) or '-'}", flush=True)
    print("people whose face was hidden, seen:")
    for (how, label), (seen, total) in sorted(hidden.items()):
        print(f"  {how:26} {label:17} {seen} of {total}")
    seen, total = (sum(v[i] for v in hidden.values()) for i in (0, 1))
    print(f"  in all: {seen} of {total}")
    photo = Image.open(root / "dlib-pascal/2008_004176.jpg").convert("RGB").resize((4032, 3024))
    data = io.BytesIO()
    photo.save(data, "JPEG", quality=90)
    pixels = decoding.decode(data.getvalue(), max_pixels=SETTINGS.max_pixels, long_side=faces.frame_side(SETTINGS),
                             max_frames=1).frames[0].pixels
    people.find_unverified(pixels, [])  # loads the detectors
    times = []
    for _ in range(5):
        start = time.process_time()
        people.find_unverified(pixels, [])
        times.append(time.process_time() - start)
    print(f"CPU for a 12-megapixel photo ({pixels.shape[1]}x{pixels.shape[0]} frame): "
          f"median {statistics.median(times):.3f} s, worst {max(times):.3f} s")


if __name__ == "__main__":
    main()
