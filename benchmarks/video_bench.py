"""Time and memory of the whole video check, and how fast broken videos fail.

Builds a 2-minute 1080p clip with PyAV (H.264, 30 frames a second, a slow
camera pan across a photo with faces: a group photo from --faces-dir, or the
shipped portrait tiled into a class photo), then runs the real image check on
it with the default settings (config.yaml's images section), in a class whose
audience is not all permitted, so every face is detected and identified (the
most expensive layer). Prints wall time, CPU time of the worker processes,
peak memory of each worker and of this process, frames sampled, the two
phases (sampling, checking frames) apart, and the time a cut-off or corrupt
copy of the clip takes to fail.

    python benchmarks/video_bench.py [--faces-dir PATH] [--seconds 120] [--clip FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import av
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dojoguard.clock import SystemClock
from dojoguard.consent_registry import faces, imagecheck, sample_photos, sample_videos, video, worker
from dojoguard.consent_registry.imagecheck import ImageChecker
from dojoguard.consent_registry.registry import BIOMETRIC, PersonKind, Registry

SIZE = (1920, 1080)
FPS = 30


def picture(faces_dir: Path | None) -> tuple[Image.Image, str]:
    if faces_dir is not None:
        path = faces_dir / "dlib-pascal" / "bald_guys.jpg"
        return Image.open(path).convert("RGB"), f"{path.name} (group photo)"
    sheet, _ = sample_photos.class_photo(columns=4, rows=2, tile=480)
    return sheet, "shipped portrait tiled 4 x 2"


def build(image: Image.Image, seconds: float, *, faststart_path: Path | None = None) -> bytes:
    frames = sample_videos.pan(image, seconds, size=SIZE, fps=FPS)
    if faststart_path is None:
        return sample_videos.encode(frames, fps=FPS)
    with av.open(str(faststart_path), "w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = out.add_stream(sample_videos.codec(), rate=FPS)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23"}
        for pixels in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode())
    return faststart_path.read_bytes()


def registry(folder: Path) -> Path:
    """A class of two: one pupil enrolled and permitted, one refused, so faces must be identified."""
    path = folder / "registry.sqlite"
    with Registry.open(path, clock=SystemClock()) as reg:
        ada = reg.add_person(PersonKind.PUPIL, "A1", "Ada", "Astronaut", reg_group="3O", year="3")
        bob = reg.add_person(PersonKind.PUPIL, "B1", "Bob", "Refused", reg_group="3O", year="3")
        for purpose, state in (("class_story", "granted"), (BIOMETRIC, "granted")):
            reg.set_consent(ada, purpose, state, source="paper form", informed_by="office")
        reg.set_consent(bob, "class_story", "refused", source="paper form", informed_by="office")
        data = (sample_photos.folder() / sample_photos.PORTRAIT).read_bytes()
        templates, _ = faces.templates_of(data, faces.Settings())
        reg.add_template(ada, templates[0], "sample")
        reg.learn_roster("mixed", [("d-ada", "Ada", "Astronaut"), ("d-bob", "Bob", "Refused")])
    return path


def worker_pids(checker: ImageChecker) -> list[int]:
    return checker.worker_pids()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces-dir", type=Path, default=os.environ.get("DOJOGUARD_FACES_DIR"))
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--clip", type=Path, help="keep the built clip in this file, and reuse it next time")
    args = parser.parse_args()
    images = yaml.safe_load(resources.files("dojoguard").joinpath("config.yaml").read_text("utf-8"))["images"]
    image, described = picture(Path(args.faces_dir) if args.faces_dir else None)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        if args.clip is not None and args.clip.exists():
            data = args.clip.read_bytes()
        else:
            data = build(image, args.seconds)
            if args.clip is not None:
                args.clip.write_bytes(data)
        faststart = build(image, 20, faststart_path=tmp / "fast.mp4")
        print(f"clip: {args.seconds:g} s, {SIZE[0]}x{SIZE[1]}, {FPS} fps, {sample_videos.codec()}, "
              f"{len(data) / 1e6:.1f} MB, from {described}; built in {time.perf_counter() - started:.0f} s")
        checker = ImageChecker(images, registry(tmp), {"class_story": "class_story"})
        try:
            async def warm():
                await asyncio.gather(*(checker.run(worker.ping, requester=f"warm{i}")
                                       for i in range(checker.workers)))
            asyncio.run(warm())
            pids = worker_pids(checker)
            cpu0 = sum(cpu_seconds(p) for p in pids)
            own0 = time.process_time()
            started = time.perf_counter()
            result = asyncio.run(checker.check(data, channel="class_story", class_id="mixed",
                                               content_type="video/mp4"))
            wall = time.perf_counter() - started
            cpu = sum(cpu_seconds(p) for p in pids) - cpu0 + time.process_time() - own0
            f = result.findings
            print(f"whole check (workers={checker.workers}): wall {wall:.1f} s, CPU {cpu:.1f} s; "
                  f"frames checked {f.frames_checked}; faces {f.faces_found} "
                  f"(permitted {f.faces_permitted}, not permitted {f.faces_not_permitted}); "
                  f"layer {result.layer}; error {f.error}")
            print("peak resident memory: workers " + ", ".join(f"{peak_mb(p):.0f} MB" for p in pids)
                  + f"; this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
                  "(it also built the clip: the proxy holds only the compressed frames, see below)")

            # The two phases apart: sampling (one job), then the frames (one job, or split in two).
            started = time.perf_counter()
            async def job(fn, *job_args, requester=None):
                deadline = asyncio.get_running_loop().time() + 600
                return await checker.run(fn, *job_args, requester=requester, deadline=deadline)

            sampled = asyncio.run(job(worker.sample_video, data, checker.video_limits))
            sampling = time.perf_counter() - started
            reasons = [fr.reason for fr in sampled.frames]
            print(f"sampling: {sampling:.1f} s for {sampled.frames_decoded} frames decoded; kept "
                  f"{len(sampled.frames)} ({reasons.count('interval')} regular, {reasons.count('scene')} scene "
                  f"changes), {sum(len(fr.jpeg) for fr in sampled.frames) / 1e6:.1f} MB compressed")

            _, allowed = checker._audience_and_allow_list("class_story", "mixed", False)

            async def frames(requesters: int) -> float:
                # The check's own jobs (imagecheck.VIDEO_FRAMES_PER_JOB frames each), asked for by
                # one requester (as the check does) or by two, which lets them use both workers.
                size = imagecheck.VIDEO_FRAMES_PER_JOB
                chunks = [sampled.frames[i:i + size] for i in range(0, len(sampled.frames), size)]
                begun = time.perf_counter()
                await asyncio.gather(*(job(worker.check_frames, chunk, checker.settings, allowed, True,
                                           requester=f"r{i % requesters}") for i, chunk in enumerate(chunks)))
                return time.perf_counter() - begun
            one = asyncio.run(frames(1))
            two = asyncio.run(frames(2)) if checker.workers > 1 else float("nan")
            print(f"checking the frames (detect and identify): one worker at a time {one:.1f} s; "
                  f"both workers {two:.1f} s")

            for name, broken in (("cut in half (index at the end)", data[:len(data) // 2]),
                                 ("cut at 90% (index first, 20 s clip)", faststart[:int(len(faststart) * 0.9)]),
                                 ("MP4 header then random bytes", data[:32] + os.urandom(5_000_000))):
                started = time.perf_counter()
                failed = asyncio.run(checker.check(broken, channel="class_story", class_id="mixed",
                                                   content_type="video/mp4"))
                print(f"{name}: failed in {time.perf_counter() - started:.2f} s, "
                      f"unreadable={failed.findings.unreadable} ({failed.findings.error})")
            assert isinstance(sampled, video.Sampled)
        finally:
            checker.close()


if __name__ == "__main__":
    main()
