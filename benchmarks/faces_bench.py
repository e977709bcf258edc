"""Face detection and identification: accuracy, speed and memory, beside the naive use of the library.

The naive baseline is what the face_recognition README suggests: decode at
full resolution, ``face_locations`` with its defaults (HOG, upsample 1), then
``face_encodings`` and ``compare_faces``. Both run in this same process on the
same pictures, one core, so the ratios hold even on a busy machine.

Needs the real photographs folder (``--faces-dir`` or DOJOGUARD_FACES_DIR):
``dlib-pascal/`` with its XML ground truth, ``people/knn_examples`` and
``no-faces/``. Run:

    python benchmarks/faces_bench.py --faces-dir PATH [--quick]
"""

from __future__ import annotations

import os

# One core, as the image workers run: OpenBLAS (when dlib links it) must not
# spread one check over both cores. Set before numpy or dlib load it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402 - after the thread setting above
import asyncio  # noqa: E402
import io  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from dojoguard import config  # noqa: E402
from dojoguard.consent_registry import faces, worker  # noqa: E402
from dojoguard.consent_registry.imagecheck import ImageChecker, settings_from  # noqa: E402

FRAME = (4032, 3024)
IOU = 0.3


# -- inputs ------------------------------------------------------------------

def ground_truth(root: Path) -> dict[str, list[tuple[int, int, int, int]]]:
    """Face boxes [top, right, bottom, left] per PASCAL photo, from dlib's XML files."""
    truth: dict[str, list] = {}
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(root / "dlib-pascal" / name).getroot().iter("image"):
            boxes = [(int(b.get("top")), int(b.get("left")) + int(b.get("width")),
                      int(b.get("top")) + int(b.get("height")), int(b.get("left")))
                     for b in image.iter("box") if b.get("ignore") != "1"]
            if (root / "dlib-pascal" / image.get("file")).exists():
                truth[image.get("file")] = boxes
    return truth


def encode_jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def render(image: Image.Image, boxes, size=FRAME):
    """The photo scaled to fill a phone-sized frame, and its boxes scaled the same way."""
    factor = min(size[0] / image.width, size[1] / image.height)
    scaled = image.convert("RGB").resize((round(image.width * factor), round(image.height * factor)),
                                         Image.Resampling.BICUBIC)
    frame = Image.new("RGB", size, (128, 128, 128))
    ox, oy = (size[0] - scaled.width) // 2, (size[1] - scaled.height) // 2
    frame.paste(scaled, (ox, oy))
    return frame, [(round(t * factor) + oy, round(r * factor) + ox, round(b * factor) + oy, round(l * factor) + ox)
                   for t, r, b, l in boxes]


def montage(photos: list[tuple[Image.Image, list]], size=FRAME, columns=3, rows=3):
    """Several group photos tiled into one 12-megapixel "class photo"."""
    frame = Image.new("RGB", size, (128, 128, 128))
    cell = (size[0] // columns, size[1] // rows)
    all_boxes = []
    for i, (image, boxes) in enumerate(photos[: columns * rows]):
        tile, tile_boxes = render(image, boxes, cell)
        ox, oy = (i % columns) * cell[0], (i // columns) * cell[1]
        frame.paste(tile, (ox, oy))
        all_boxes += [(t + oy, r + ox, b + oy, l + ox) for t, r, b, l in tile_boxes]
    return frame, all_boxes


# -- scoring -----------------------------------------------------------------

def iou(a, b) -> float:
    top, right, bottom, left = max(a[0], b[0]), min(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    area = lambda r: (r[1] - r[3]) * (r[2] - r[0])  # noqa: E731
    return inter / (area(a) + area(b) - inter) if inter else 0.0


def score(found, truth) -> tuple[int, int, int]:
    """(true positives, ground-truth faces, detections), matching greedily at IoU >= 0.3."""
    unused = list(truth)
    hits = 0
    for box in found:
        best = max(unused, key=lambda t: iou(box, t), default=None)
        if best is not None and iou(box, best) >= IOU:
            unused.remove(best)
            hits += 1
    return hits, len(truth), len(found)


def summarise(counts) -> tuple[float, float]:
    hits = sum(c[0] for c in counts)
    truth = sum(c[1] for c in counts)
    found = sum(c[2] for c in counts)
    return hits / truth if truth else 1.0, hits / found if found else 1.0


# -- the two ways of checking -------------------------------------------------

def ours_detect(data: bytes, settings: faces.Settings):
    analysis = faces.analyse(data, settings, None, False)
    if analysis.error:
        raise RuntimeError(analysis.error)
    return list(analysis.boxes)


def naive_detect(data: bytes):
    fr = faces.engine()
    return [tuple(b) for b in fr.face_locations(fr.load_image_file(io.BytesIO(data)))]


def ours_check(data: bytes, settings: faces.Settings, allowed: np.ndarray) -> int:
    analysis = faces.analyse(data, settings, allowed, True)
    if analysis.error:
        raise RuntimeError(analysis.error)
    return len(analysis.boxes)


def naive_check(data: bytes, allowed: np.ndarray, tolerance: float) -> int:
    fr = faces.engine()
    image = fr.load_image_file(io.BytesIO(data))
    boxes = fr.face_locations(image)
    for encoding in fr.face_encodings(image, boxes):
        fr.compare_faces(list(allowed), encoding, tolerance)
    return len(boxes)


def cpu_time(fn, *args):
    started = time.process_time()
    result = fn(*args)
    return time.process_time() - started, result


# -- sections ----------------------------------------------------------------

def detection(root: Path, truth, chosen: faces.Settings, sweep: list[tuple[int, int]], quick: bool):
    photos = [(Image.open(root / "dlib-pascal" / name), boxes) for name, boxes in sorted(truth.items())]
    native = [(encode_jpeg(img, 95), boxes) for img, boxes in photos]
    framed = [(encode_jpeg(f), b) for f, b in (render(img, boxes) for img, boxes in photos)]
    mosaic_img, mosaic_boxes = montage(photos)
    mosaic = [(encode_jpeg(mosaic_img), mosaic_boxes)]
    negatives = [(p.read_bytes(), []) for p in sorted((root / "no-faces").iterdir())] + \
        [((root / "dlib-pascal" / "dogs.jpg").read_bytes(), [])]
    sets = {"native ~500 px": native, "12 MP frame, one photo": framed,
            f"12 MP montage ({len(mosaic_boxes)} faces)": mosaic}
    print(f"\n== detection (IoU >= {IOU}); recall / precision / median CPU s per image ==")
    print(f"{'input':<28} {'setting':<22} {'recall':>7} {'prec.':>7} {'CPU s':>7}")
    settings_list = [("naive: full res, up1", None)] + [
        (f"{'chosen: ' if (s, u) == (chosen.processing_size, chosen.upsample) else ''}{s} px, up{u}",
         faces.Settings(processing_size=s, upsample=u)) for s, u in sweep]
    for label, items in sets.items():
        for name, settings in settings_list:
            if quick and settings is None and "native" not in label:
                continue
            counts, times = [], []
            for data, boxes in items:
                t, found = cpu_time(naive_detect, data) if settings is None else cpu_time(ours_detect, data, settings)
                counts.append(score(found, boxes))
                times.append(t)
            recall, precision = summarise(counts)
            print(f"{label:<28} {name:<22} {recall:>7.3f} {precision:>7.3f} {statistics.median(times):>7.2f}")
    false_faces = sum(len(ours_detect(d, chosen)) for d, _ in negatives)
    naive_false = sum(len(naive_detect(d)) for d, _ in negatives)
    print(f"faces found in {len(negatives)} pictures with no human face (cat, dogs, rocket...): "
          f"chosen {false_faces}, naive {naive_false}")
    return framed


def timing(framed, chosen: faces.Settings, allowed: np.ndarray, repeat: int):
    print("\n== one 12-megapixel check (decode, detect, identify every face), one core, CPU seconds ==")
    ours, naive, detect_only = [], [], []
    for data, boxes in framed:
        for _ in range(repeat):
            ours.append(cpu_time(ours_check, data, chosen, allowed)[0])
            naive.append(cpu_time(naive_check, data, allowed, chosen.tolerance)[0])
            detect_only.append(cpu_time(ours_detect, data, chosen)[0])
    faces_per = [len(b) for _, b in framed]
    m_ours, m_naive = statistics.median(ours), statistics.median(naive)
    print(f"{len(framed)} photos of {min(faces_per)}-{max(faces_per)} faces, {repeat} run(s) each")
    print(f"median: chosen {m_ours:.2f} s, naive {m_naive:.2f} s, speed-up {m_naive / m_ours:.1f}x "
          f"(target <= 1.5 s and >= 3x)")
    print(f"worst:  chosen {max(ours):.2f} s, naive {max(naive):.2f} s")
    print(f"layers 1-2 only (decode and detect, no identification): median {statistics.median(detect_only):.2f} s")


def identification(root: Path, chosen: faces.Settings):
    knn = root / "people" / "knn_examples"
    names, templates = [], []
    for person in sorted((knn / "train").iterdir()):
        for photo in sorted(person.iterdir()):
            found, problem = faces.templates_of(photo.read_bytes(), chosen)
            if problem is None and len(found) == 1:
                names.append(person.name)
                templates.append(found[0])
    matrix = np.stack(templates)
    # Who is in each test photo; a face of anyone else there must match no one.
    expected = {knn / "test" / "alex_lacamoire1.jpg": {"alex_lacamoire"},
                knn / "test" / "johnsnow_test1.jpg": {"kit_harington"},
                knn / "test" / "kit_with_rose.jpg": {"kit_harington", "rose_leslie"},
                knn / "test" / "obama1.jpg": {"obama"},
                knn / "test" / "obama_and_biden.jpg": {"obama", "biden"},
                root / "people" / "two_people.jpg": {"obama", "biden"}}
    impostors = [root / "people" / n for n in ("lin-manuel-miranda.png", "astronaut.png")] + \
        sorted((root / "dlib-pascal").glob("200*.jpg"))

    def nearest(path: Path) -> list[tuple[str, float]]:
        probe, _ = faces.templates_of(path.read_bytes(), chosen)
        result = []
        for t in probe:
            distances = np.linalg.norm(matrix - t, axis=1)
            best = int(np.argmin(distances))
            result.append((names[best], float(distances[best])))
        return result

    right = wrong = unmatched = 0
    genuine_worst = 0.0
    for path, people in expected.items():
        for name, distance in nearest(path):
            if distance > chosen.tolerance:
                unmatched += 1
            elif name in people:
                right += 1
                genuine_worst = max(genuine_worst, distance)
            else:
                wrong += 1
    impostor = [d for path in impostors if path.exists() for _, d in nearest(path)]
    accepted = sum(d <= chosen.tolerance for d in impostor)
    print(f"\n== identification at tolerance {chosen.tolerance} ({len(templates)} templates of "
          f"{len(set(names))} people) ==")
    print(f"faces in the test photos: {right} matched to the right person, {wrong} to a wrong person, "
          f"{unmatched} matched no one (bystanders, or missed)")
    print(f"correct-match rate {right / max(1, right + wrong + unmatched):.2f}; largest accepted genuine "
          f"distance {genuine_worst:.3f}")
    print(f"strangers (never enrolled): {accepted} of {len(impostor)} faces accepted; nearest stranger "
          f"distance {min(impostor):.3f}")


def memory(framed, images_settings: dict, allowed_rows: int):
    print("\n== peak resident memory of one checking process ==")

    async def run_checks():
        checker = ImageChecker(images_settings, None, {"class_story": "class_story"}, workers=1)
        try:
            for data, _ in framed:
                await checker.run(worker.check, data, checker.settings, np.zeros((allowed_rows, 128)), True)
            return await checker.run(worker.peak_rss_mb)
        finally:
            checker.close()

    ours = asyncio.run(run_checks())
    with ProcessPoolExecutor(1) as pool:
        for data, _ in framed:
            pool.submit(_naive_in_child, data).result()
        naive = pool.submit(worker.peak_rss_mb).result()
    print(f"chosen settings worker: {ours:.0f} MB; naive full-resolution process: {naive:.0f} MB (target <= 600 MB)")


def _naive_in_child(data: bytes) -> int:
    return naive_check(data, np.zeros((1, 128)), 0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces-dir", type=Path, default=os.environ.get("DOJOGUARD_FACES_DIR"))
    parser.add_argument("--quick", action="store_true", help="fewer settings and one timing run")
    parser.add_argument("--repeat", type=int, default=None, help="timing runs per photo")
    parser.add_argument("--sections", default="detection,timing,identification,memory",
                        help="comma-separated sections to run (default: all)")
    args = parser.parse_args()
    if not args.faces_dir or not (Path(args.faces_dir) / "dlib-pascal").is_dir():
        print("give --faces-dir (or set DOJOGUARD_FACES_DIR) to the real photographs folder", file=sys.stderr)
        return 2
    root = Path(args.faces_dir)
    images = config.load()["images"]
    chosen = settings_from(images)
    print(f"chosen settings (config images.*): processing_size {chosen.processing_size}, "
          f"upsample {chosen.upsample}, tolerance {chosen.tolerance}, mode {images['mode']}")
    print(f"face engine: {faces.engine_build()}")
    sweep = [(chosen.processing_size, chosen.upsample)]
    if not args.quick:
        sweep += [(s, u) for s, u in ((1600, 0), (2048, 0), (2048, 1), (1280, 1), (1024, 2))
                  if (s, u) != sweep[0]]
    faces.engine()
    sections = set(args.sections.split(","))
    truth = ground_truth(root)
    if "detection" in sections:
        framed = detection(root, truth, chosen, sweep, args.quick)
    else:
        framed = [(encode_jpeg(f), b) for f, b in (render(Image.open(root / "dlib-pascal" / n), boxes)
                                                    for n, boxes in sorted(truth.items()))]
    # An allow-list the size of a primary school's enrolled consenting pupils.
    allowed = np.random.default_rng(1).normal(0, 0.1, (300, 128))
    if "timing" in sections:
        timing(framed, chosen, allowed, args.repeat or (1 if args.quick else 2))
    if "identification" in sections:
        identification(root, chosen)
    if "memory" in sections:
        memory(framed, images, 300)
    return 0


if __name__ == "__main__":
    sys.exit(main())
