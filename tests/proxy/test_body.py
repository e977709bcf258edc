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


def test_every_string_in_json_is_text_whatever_its_key_or_place():
    """Strings under any key, inside lists and at the top level are all given to the content rules."""
    doc = {"body": "hello", "text": "sh1t", "x": ["in a list", {"deep": {"deeper": "nested"}}], "n": 5,
           "contents": {"body": "story"}}
    assert body.read(json.dumps(doc).encode(), "application/json").texts == \
        ["hello", "sh1t", "in a list", "nested", "story"]
    assert body.read(b'"just a string"', "application/json").texts == ["just a string"]


def test_ids_and_inline_pictures_are_left_out_but_every_other_string_is_read():
    """ObjectIds, UUIDs and pictures are not text; any other string is, however much it looks like base64."""
    long = "Dear-parents-this-week-has-been-a-total-load-of-sh1t-" * 7
    doc = {"_id": "5f0000000000000000000c01", "uuid": "123e4567-e89b-12d3-a456-426614174000",
           "blob": "QUJD" * 100, "id": "sh1t", "short": "QUJD", "code": "07123456789", "long": long,
           "tail": "what+a+load+of+sh1t+" + "QUJD" * 100}
    texts = body.read(json.dumps(doc).encode(), "application/json").texts
    assert texts == ["QUJD" * 100, "sh1t", "QUJD", "07123456789", long, "what+a+load+of+sh1t+" + "QUJD" * 100]


def test_a_repeated_json_key_is_refused():
    """``{"body": "hello", "body": "sh1t"}`` is refused: parsers differ on which copy wins."""
    with pytest.raises(body.BodyError, match="repeats a key"):
        body.read(b'{"body": "hello", "body": "sh1t"}', "application/json")
    with pytest.raises(body.BodyError):
        body.read(b'{"a": {"x": 1, "x": 1}}', "application/json")


@pytest.mark.parametrize("content,ctype", [
    ('{"body": "sh1t"}'.encode("utf-16"), "application/json; charset=utf-16"),
    ("sh1t".encode("utf-16"), "text/plain; charset=utf-16"),
    (b"+AHM-h1t", "text/plain; charset=utf-7"),
    ("body=caf\u00e9".encode("latin-1"), "application/x-www-form-urlencoded; charset=iso-8859-1"),
    ("caf\u00e9".encode(), "text/plain; charset=us-ascii"),
    (b"body=hello&_charset_=utf-7", "application/x-www-form-urlencoded"),
    (b"--B\r\nContent-Disposition: form-data; name=\"body\"\r\nContent-Type: text/plain; charset=utf-16\r\n\r\n"
     + "sh1t".encode("utf-16") + b"\r\n--B--\r\n", "multipart/form-data; boundary=B"),
    (b"--B\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\n+AHM-h1t\r\n--B--\r\n",
     "multipart/form-data; charset=utf-7; boundary=B"),
    (b"--B\r\nContent-Disposition: form-data; name=\"_charset_\"\r\n\r\nutf-7\r\n--B\r\n"
     b"Content-Disposition: form-data; name=\"body\"\r\n\r\n+AHM-h1t\r\n--B--\r\n", "multipart/form-data; boundary=B"),
])
def test_text_in_a_charset_other_than_utf8_is_refused(content, ctype):
    """Text in UTF-16, UTF-7, Latin-1, or ASCII that is not, in any body or part or by _charset_, is refused."""
    with pytest.raises(body.BodyError):
        body.read(content, ctype)


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "application/json; charset=UTF8",
                                   "application/json; charset=us-ascii", "application/json"])
def test_utf8_and_ascii_charsets_are_read(ctype):
    """JSON declared UTF-8 or ASCII (in any spelling), or not declared, is read."""
    assert body.read(b'{"body": "hello"}', ctype).texts == ["hello"]


@pytest.mark.parametrize("ctype", ["multipart/form-data; boundary=A; boundary=B", "application/json; x",
                                   "application/json; charset=utf-8; charset=utf-16", "text/plain boundary"])
def test_an_unreadable_content_type_is_a_body_error(ctype):
    """A Content-Type outside RFC 9110's grammar, or with a repeated parameter, makes the body unreadable."""
    with pytest.raises(body.BodyError):
        body.read(b'{"body": "hello"}', ctype)


def test_form_fields_keep_every_value_of_a_repeated_name():
    """A name sent twice in a form keeps both values (Many), and every value is text."""
    found = body.read(b"body=hello&body=sh1t&points[]=-5&kind=text", "application/x-www-form-urlencoded")
    assert found.fields == {"body": body.Many(("hello", "sh1t")), "points": "-5", "kind": "text"}
    assert found.texts == ["hello", "sh1t", "-5", "text"]


def test_multipart_fields_json_parts_and_text_files_are_all_read():
    """Every form field (any name, any type), the strings in a JSON part and a UTF-8 text file are text."""
    content = (b"--b\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nsh1t\r\n"
               b"--b\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nagain\r\n"
               b"--b\r\nContent-Disposition: form-data; name=\"payload\"\r\nContent-Type: application/json\r\n\r\n"
               b"{\"a\": [\"\\u0073h1t in json\"]}\r\n"
               b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"n.txt\"\r\n"
               b"Content-Type: text/plain\r\n\r\nnotes\r\n"
               b"--b\r\nContent-Disposition: form-data; name=\"g\"; filename=\"x.bin\"\r\n"
               b"Content-Type: application/octet-stream\r\n\r\n\xff\xfe\x00\r\n--b--\r\n")
    found = body.read(content, "multipart/form-data; boundary=b")
    assert found.texts == ["sh1t", "again", "sh1t in json", "notes"]
    assert found.fields["kind"] == body.Many(("sh1t", "again"))


def test_a_body_without_a_type_is_still_read_for_words():
    """A body with no Content-Type that is UTF-8 (JSON or not) is read for its words; binary bytes are not."""
    assert body.read(b'{"body": "sh1t"}', None).texts == ["sh1t"]
    assert body.read(b"plain sh1t", "application/octet-stream").texts == ["plain sh1t"]
    assert body.read(b"\xff\xfe\x00\x01", None).texts == []


def test_a_proto_key_is_refused():
    """A ``__proto__`` key, which a JavaScript server merging the object would take as every object's, is refused."""
    with pytest.raises(body.BodyError, match="__proto__"):
        body.read(b'{"body": "hi", "x": {"__proto__": {"points": -5}}}', "application/json")


def test_a_picture_inside_an_untyped_json_body_is_still_a_picture():
    """A body sent with no Content-Type is read as JSON when it is, and a picture inside it goes to the image checks."""
    import base64
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.effect_noise((64, 64), 60).convert("RGB").save(png, "PNG")  # large enough to be inline data
    content = json.dumps({"caption": "Sports day", "photo": base64.b64encode(png.getvalue()).decode()}).encode()
    found = body.read(content, None)
    assert found.texts == ["Sports day"]
    assert [s.content_type for s in found.images] == ["image/png"]
