"""The made-up school the stand-in serves: one teacher, one class, three pupils, their skills."""

from __future__ import annotations

TEACHER = {"_id": "5f0000000000000000000a01", "title": "Mrs.", "firstName": "Ex", "lastName": "Ample",
           "emailAddress": "teacher@example.org"}
PASSWORD = "correct horse"
# A login with this password is answered with the one-time-code challenge first.
OTC_PASSWORD = "needs a code"
OTC_CODE = "123456"

CLASS_ID = "5f0000000000000000000c01"
SCHOOL_ID = "5f0000000000000000000e01"
CLASS = {
    "_id": CLASS_ID,
    "name": "3B",
    "year": "2026",
    "schoolId": SCHOOL_ID,
    "collaborators": [dict(TEACHER, sharingStatus="owner", isMe=True)],
}
PUPILS = [
    {"_id": "5f0000000000000000000501", "firstName": "Ada", "lastName": "L.", "positivePoints": 12,
     "negativePoints": 2},
    {"_id": "5f0000000000000000000502", "firstName": "Bo", "lastName": "K.", "positivePoints": 7,
     "negativePoints": 0},
    {"_id": "5f0000000000000000000503", "firstName": "Cy", "lastName": "M.", "positivePoints": 3,
     "negativePoints": 1},
]
BEHAVIORS = [
    # A class set up as St Wilfrid's policy asks: skills named after its five areas, plus one
    # the teacher added that is not among them, and a "needs work" skill ClassDojo ships.
    {"_id": "5f00000000000000000b0101", "name": "Is polite", "points": 1, "positive": True},
    {"_id": "5f00000000000000000b0102", "name": "Working hard", "points": 2, "positive": True},
    {"_id": "5f00000000000000000b01f1", "name": "Off task", "points": -1, "positive": False},
]
THREAD_ID = "5f00000000000000000d0001"
PARENT_ID = "5f0000000000000000000f01"
# The thread's messages, oldest first, as ClassDojo lists them to the teacher: the parent's and the
# teacher's own, each with an id, a sender, a time and a body.
THREAD_MESSAGES = [
    {"_id": "5f00000000000000000d1001", "threadId": THREAD_ID, "senderId": PARENT_ID, "senderType": "parent",
     "createdAt": "2026-11-30T08:12:00.000Z", "body": "Good morning, Ada has a dentist appointment at 2pm."},
    {"_id": "5f00000000000000000d1002", "threadId": THREAD_ID, "senderId": TEACHER["_id"], "senderType": "teacher",
     "createdAt": "2026-11-30T08:40:00.000Z", "body": "Thank you for letting me know."},
]

# Story posts the class's and the school's feeds list (an item's targetType says which story it is on).
CLASS_POST_ID = "6a0000000000000000000001"
SCHOOL_POST_ID = "6a0000000000000000000002"
CLASS_STORY = [
    {"_id": CLASS_POST_ID, "time": "2026-11-27T15:00:00.000Z", "type": "textAndAttachment",
     "senderId": TEACHER["_id"], "targetId": CLASS_ID, "targetType": "class",
     "contents": {"body": "Our class trip!", "attachments": []}},
]
SCHOOL_STORY = [
    {"_id": SCHOOL_POST_ID, "time": "2026-11-27T16:00:00.000Z", "type": "textAndAttachment",
     "senderId": TEACHER["_id"], "targetId": SCHOOL_ID, "targetType": "school",
     "contents": {"body": "Christmas fair on Friday", "attachments": []}},
]
