"""Photos through the addon with the real image checker: faces blurred on redact, GPS tags stripped."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
from mitmproxy.test import taddons
from PIL import Image

from dojoguard import config
from dojoguard.proxy.addon import Guard
from dojoguard.proxy.services import open_services
from dojoguard.proxy.settings import Settings
from tests.proxy.conftest import CLASS_ID, write_config, write_flow

pytestmark = [pytest.mark.slow, pytest.mark.faces]

STORY = f"/api/dojoClass/{CLASS_ID}/storyFeed"


@pytest.fixture(scope="module")
def image_services(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    settings = Settings.from_config(config.load(write_config(folder)))
    policy = Path(__file__).parent / "policy" / "redact-faces.yaml"
    from dojoguard.clock import FixedClock
    from tests.proxy.conftest import MONDAY_10
    services = open_services(replace(settings, policy=str(policy)), FixedClock(MONDAY_10))
    assert services.checker is not None, services.missing
    yield services
    services.close()


def inline(photo: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(photo).decode()


def forwarded_photo(flow) -> bytes:
    value = json.loads(flow.request.content)["attachments"][0]["data"]
    return base64.b64decode(value.split(",", 1)[1])


async def test_redact_blurs_faces_and_keeps_the_rest(image_services, faces_dir):
    """A redact verdict forwards the post with the face blurred, the same size and format, other fields intact."""
    original = (faces_dir / "people" / "obama.jpg").read_bytes()
    guard = Guard(image_services)
    with taddons.context(guard):
        flow = write_flow(STORY, {"body": "Visitor day", "attachments": [{"type": "photo", "data": inline(original)}]})
        await guard.request(flow)
    assert flow.response is None
    sent = forwarded_photo(flow)
    assert sent != original
    before, after = Image.open(io.BytesIO(original)), Image.open(io.BytesIO(sent))
    assert (after.format, after.size) == (before.format, before.size)
    assert json.loads(flow.request.content)["body"] == "Visitor day"
    assert int(flow.request.headers["content-length"]) == len(flow.request.content)


async def test_gps_tags_are_stripped_from_allowed_photos(image_services, faces_dir):
    """A photo without faces goes through, without its GPS location tags."""
    image = Image.open(faces_dir / "no-faces" / "rocket.jpg")
    exif = image.getexif()
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)})
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    guard = Guard(image_services)
    with taddons.context(guard):
        flow = write_flow(STORY, {"body": "Rocket", "attachments": [{"type": "photo", "data": inline(buffer.getvalue())}]})
        await guard.request(flow)
    assert flow.response is None
    assert not Image.open(io.BytesIO(forwarded_photo(flow))).getexif().get_ifd(0x8825)


async def test_multipart_upload_keeps_its_boundary_and_part_headers(image_services, faces_dir):
    """A multipart photo upload is forwarded byte-for-byte when nothing needs changing."""
    photo = (faces_dir / "no-faces" / "coffee.png").read_bytes()
    content = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"coffee.png\"\r\n"
               b"Content-Type: image/png\r\n\r\n" + photo + b"\r\n--XyZ--\r\n")
    guard = Guard(image_services)
    with taddons.context(guard):
        flow = write_flow("/api/upload", content, content_type="multipart/form-data; boundary=XyZ")
        await guard.request(flow)
    assert flow.response is None
    assert flow.request.content == content
