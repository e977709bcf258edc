"""Images and human text are found wherever a write carries them, and put back in place."""

from __future__ import annotations

import base64
import json

import pytest

from dojoguard.proxy import body

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 2


def test_raw_image_body_is_one_image():
    """A raw upload body (S3-style PUT) is one image slot, whatever its content type says."""
    found = body.read(JPEG, "application/octet-stream")
    assert found.format == "image" and found.images[0].where == ("raw",)


def test_base64_images_in_json_are_found_with_their_path():
    """A base64 photo inside JSON, plain or as a data: URI, is found with the path to it."""
    doc = {"body": "Trip!", "attachments": [{"data": "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()}],
           "thumb": base64.b64encode(JPEG).decode()}
    found = body.read(json.dumps(doc).encode(), "application/json")
    assert sorted(s.where for s in found.images) == [("attachments", 0, "data"), ("thumb",)]
    assert all(s.data == JPEG for s in found.images)
    assert found.texts == ["Trip!"]


def test_multipart_image_and_text_parts_are_found():
    """In a multipart upload the photo part and the caption part are both found."""
    content = (b"--b\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nOur trip\r\n"
               b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jpg\"\r\n"
               b"Content-Type: image/jpeg\r\n\r\n" + JPEG + b"\r\n--b--\r\n")
    found = body.read(content, "multipart/form-data; boundary=b")
    assert found.images[0].where == ("part", 1) and found.texts == ["Our trip"]


def test_rebuild_replaces_only_the_image():
    """Replacing an image in JSON keeps the data: prefix and every other field."""
    doc = {"body": "Trip!", "photo": "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()}
    found = body.read(json.dumps(doc).encode(), "application/json")
    rebuilt = json.loads(body.rebuild(found, {("photo",): b"\xff\xd8\xffBLUR"}))
    assert rebuilt["body"] == "Trip!"
    assert rebuilt["photo"] == "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8\xffBLUR").decode()


@pytest.mark.parametrize("content,ctype", [(b"{not json", "application/json"),
                                           (b"\xff\xfe", "application/json"),
                                           (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
                                           (b"--x\r\n", "multipart/form-data")])
def test_unreadable_bodies_raise(content, ctype):
    """A body that is not what its Content-Type says raises BodyError (the write then fails closed)."""
    with pytest.raises(body.BodyError):
        body.read(content, ctype)


def test_skeleton_keeps_shape_not_values():
    """The JSON skeleton names keys and types, never values."""
    assert body.skeleton({"body": "secret", "ids": ["a", "b"], "n": 2, "ok": True}) == \
        {"body": "string", "ids": ["string"], "n": "number", "ok": "boolean"}
