"""Face detection and identification: recall by face width, speed and memory, beside the naive use of the library.

The naive baseline is what the face_recognition README suggests: decode at
full resolution, ``face_locations`` with its defaults (HOG, upsample 1), then
``face_encodings`` and ``compare_faces``, in one process. dojoguard's check
runs as the proxy runs it: in the image worker pool (one worker per core),
its detection split over two workers (see dojoguard/consent_registry/detection.py).
Both are measured in the same run on the same pictures, so the ratios hold
even on a busy machine; CPU seconds are reported beside wall time (a school
server has more cores than two).

Recall is measured on 12-megapixel group photos built from the labelled
PASCAL photos at several scales (tests/support/groupphotos.py), by face
width in the photo's own pixels: the back row's small faces, not the average.

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

import argparse  # after the thread setting above
import asyncio
import io
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

# The group-photo builder is shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dojoguard import config
from dojoguard.consent_registry import detection as detection_plan, faces, worker
from dojoguard.consent_registry.imagecheck import ImageChecker, settings_from
from tests.support import groupphotos

# Median face widths the group photos are built at: every band from the
# back row's (under 40 px) to a close portrait's.
WIDTHS = (34, 44, 52, 60, 70, 84, 100, 130, 170, 250, 400)
QUICK_WIDTHS = (44, 60, 84, 130)


# -- the two ways of checking -------------------------------------------------

def ours_detect(data: bytes, settings: faces.Settings):
    """dojoguard's detection, both parts in this process (CPU seconds are the sum of what two workers do)."""
    parts = [faces.analyse(data, settings, None, False, part) for part in (detection_plan.TOP, detection_plan.REST)]
    analysis = faces.combine(parts)
    if analysis.error:
        raise RuntimeError(analysis.error)
    return list(analysis.boxes)


def naive_detect(data: bytes):
    fr = faces.engine()
    return [tuple(b) for b in fr.face_locations(fr.load_image_file(io.BytesIO(data)))]


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


def wall_time(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


# -- sections ----------------------------------------------------------------

def recall(root: Path, chosen: faces.Settings, quick: bool):
    widths = QUICK_WIDTHS if quick else WIDTHS
    photos = [p for w in widths for p in groupphotos.frames(root, w)]
    faces_in = sum(len(p.boxes) for p in photos)
    print(f"\n== recall by face width (photo pixels), {len(photos)} 12 MP group photos, {faces_in} faces, "
          f"IoU >= {groupphotos.IOU} ==")
    print(f"{'setting':<34} " + "  ".join(f"{f'{a}-{b}' if b < 10_000 else f'{a}+':>7}" for a, b in groupphotos.BANDS)
          + f"  {'>=56':>6} {'>=100':>6} {'prec.':>6} {'CPU s':>6}")
    results = {}
    for label, detect in ((f"dojoguard ({chosen.detect_megapixels:g} MP top level)",
                           lambda d: ours_detect(d, chosen)),
                          ("naive: full resolution, upsample 1", naive_detect)):
        tally, times = groupphotos.Tally(), []
        for photo in photos:
            t, found = cpu_time(detect, photo.jpeg)
            tally.add(found, photo.boxes)
            times.append(t)
        results[label] = tally
        print(f"{label:<34} {tally.row()}  {tally.recall(56):>6.3f} {tally.recall(100):>6.3f} "
              f"{tally.precision:>6.3f} {statistics.median(times):>6.2f}")
    print("(each band: faces found / faces; targets: >= 0.97 from 56 px, >= 0.99 from 100 px, precision >= 0.95)")
    return results


def negatives(root: Path, chosen: faces.Settings) -> None:
    pictures = [p.read_bytes() for p in sorted((root / "no-faces").iterdir())]
    pictures.append((root / "dlib-pascal" / "dogs.jpg").read_bytes())
    ours = sum(len(ours_detect(d, chosen)) for d in pictures)
    naive = sum(len(naive_detect(d)) for d in pictures)
    print(f"faces found in {len(pictures)} pictures with no human face (cat, dogs, rocket, coffee, deep field): "
          f"dojoguard {ours}, naive {naive}")


def timing(root: Path, chosen: faces.Settings, images: dict, allowed: np.ndarray, repeat: int, quick: bool):
    """The whole check as the proxy runs it (worker pool), beside naive use in one process."""
    sets = {"one group photo filling the frame (2-7 faces of 250-700 px)": groupphotos.filling_frames(root),
            "back-row group photo (25-45 faces of 40-90 px)": groupphotos.frames(root, 60)}
    if quick:
        sets = {k: v[:3] for k, v in sets.items()}

    async def pool_times(photos):
        checker = ImageChecker(images, None, {"class_story": "class_story"})
        try:
            await asyncio.gather(*(checker.run(worker.ping) for _ in range(checker.workers)))
            walls = []
            for _ in range(repeat):
                for photo in photos:
                    started = time.perf_counter()
                    analysis = await checker.analyse(photo.jpeg, allowed, True, requester="bench")
                    walls.append(time.perf_counter() - started)
                    if analysis.error:
                        raise RuntimeError(analysis.error)
            return walls, checker.workers
        finally:
            checker.close()

    print("\n== one whole check of a 12-megapixel photo (decode, detect, identify every face) ==")
    for label, photos in sets.items():
        walls, workers = asyncio.run(pool_times(photos))
        cpu = [cpu_time(lambda d: faces.combine([faces.analyse(d, chosen, allowed, True, part)
                                                 for part in (detection_plan.TOP, detection_plan.REST)]),
                        p.jpeg)[0] for p in photos]
        naive = [wall_time(naive_check, p.jpeg, allowed, chosen.tolerance)[0] for p in photos]
        m_ours, m_naive = statistics.median(walls), statistics.median(naive)
        print(f"{label}: {len(photos)} photos, {repeat} run(s) each through the pool of {workers} workers")
        print(f"  wall-clock median: dojoguard {m_ours:.2f} s (worst {max(walls):.2f} s), naive {m_naive:.2f} s "
              f"(one process); speed-up {m_naive / m_ours:.1f}x (targets <= 1.5 s and >= 3x)")
        print(f"  CPU seconds per photo, median: dojoguard {statistics.median(cpu):.2f} s (both halves), "
              f"naive {m_naive:.2f} s")


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
    parser.add_argument("--quick", action="store_true", help="fewer photos and one timing run")
    parser.add_argument("--repeat", type=int, default=None, help="timing runs per photo")
    parser.add_argument("--sections", default="recall,timing,identification,memory",
                        help="comma-separated sections to run (default: all)")
    args = parser.parse_args()
    if not args.faces_dir or not (Path(args.faces_dir) / "dlib-pascal").is_dir():
        print("give --faces-dir (or set DOJOGUARD_FACES_DIR) to the real photographs folder", file=sys.stderr)
        return 2
    root = Path(args.faces_dir)
    images = config.load()["images"]
    chosen = settings_from(images)
    plan = detection_plan.plan(groupphotos.FRAME, chosen.detect_megapixels)
    print(f"chosen settings (config images.*): detect_megapixels {chosen.detect_megapixels:g} (12 MP photo scanned "
          f"at {plan.scale:.2f}x, smallest face found about {plan.smallest_face_px} px), detect_threshold "
          f"{chosen.threshold:g}, tolerance {chosen.tolerance}, mode {images['mode']}")
    print(f"face engine: {faces.engine_build()}; top-levels detector: "
          f"{'limited to 2 levels' if faces.detector().top_limited else 'WHOLE (format not recognised: slower)'}")
    sections = set(args.sections.split(","))
    # An allow-list the size of a primary school's enrolled consenting pupils.
    allowed = np.random.default_rng(1).normal(0, 0.1, (300, 128))
    if "recall" in sections:
        recall(root, chosen, args.quick)
        negatives(root, chosen)
    if "timing" in sections:
        timing(root, chosen, images, allowed, args.repeat or (1 if args.quick else 2), args.quick)
    if "identification" in sections:
        identification(root, chosen)
    if "memory" in sections:
        memory([(p.jpeg, p.boxes) for p in groupphotos.filling_frames(root)], images, 300)
    return 0


if __name__ == "__main__":
    sys.exit(main())
