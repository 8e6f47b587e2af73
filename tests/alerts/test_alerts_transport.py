import pytest

from vigil.alerts.transport import (
    check_bind_endpoint,
    decode_reply,
    encode_ack,
    encode_nack,
    is_local_endpoint,
    split_topic,
    topic_for,
    topic_prefix,
)


@pytest.mark.parametrize(
    "endpoint, local",
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.0.0.1:*", True),
        ("tcp://127.8.0.1:5555", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("ipc:///tmp/vigil.ipc", True),
        ("inproc://x", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://192.168.1.10:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://[::]:5555", False),
        ("tcp://aggregator.example:5555", False),
        ("udp://127.0.0.1:5555", False),
    ],
)
def test_local_endpoints(endpoint, local):
    assert is_local_endpoint(endpoint) is local
    if local:
        check_bind_endpoint(endpoint)
    else:
        with pytest.raises(ValueError, match="no transport security"):
            check_bind_endpoint(endpoint)


def test_topics_are_fielded_not_space_split(make_event):
    ev = make_event(camera="gate 3/north", type="plate_on_list", severity="critical")
    topic = topic_for(ev)
    assert topic == b"gate%203%2Fnorth/plate_on_list/critical"
    assert split_topic(topic) == ("gate 3/north", "plate_on_list", "critical")
    assert topic.startswith(topic_prefix(camera="gate 3/north").encode())
    assert topic_prefix("a", "b", "info") == "a/b/info"
    assert not topic_for(make_event(camera="gate 30")).startswith(topic_prefix(camera="gate 3").encode())
    with pytest.raises(ValueError):
        topic_prefix(type="x")


def test_replies():
    assert decode_reply(encode_ack("abc", "stored")) == {"ack": "abc", "status": "stored"}
    assert decode_reply(encode_nack("abc", "bad"))["nack"] == "abc"
    for bad in (b"[]", b'{"x": 1}', b"nope"):
        with pytest.raises(ValueError):
            decode_reply(bad)
