"""Which of an image's candidate readings are its plates (:func:`vigil.plates.reader.choose_plates`)."""

from vigil.plates.reader import PlateReading, choose_plates


def _r(text, score, box, lines=1, fmt=None, country=None):
    return PlateReading(
        text=text, confidence=min(1.0, score), box=box, score=score, lines=lines, format=fmt, country=country
    )


def test_best_score_first_and_one_reading_per_place():
    plate = _r("AB123CD", 1.5, (100, 200, 200, 222))
    sign = _r("HOTEL", 0.4, (10, 10, 150, 50))
    inside = _r("B123C", 0.9, (120, 201, 190, 221))  # part of the plate: the same place
    got = choose_plates([sign, inside, plate], max_plates=3)
    assert [g.text for g in got] == ["AB123CD", "HOTEL"]
    assert choose_plates([sign, inside, plate], max_plates=1) == [plate]
    assert choose_plates([], max_plates=1) == []


def test_the_same_text_from_a_smaller_box_over_it_is_the_plate():
    # a two-line candidate (a sticker's line above the plate, read as nothing) and the plate's
    # own line read the same text: the tighter box is kept, whatever the order of their scores
    grouped = _r("WA56660", 1.514, (235, 287, 317, 333))
    plate = _r("WA56660", 1.509, (235, 313, 316, 334))
    assert choose_plates([grouped, plate], max_plates=1) == [plate]
    assert choose_plates([plate, grouped], max_plates=1) == [plate]
    # a different text over the same place does not move the box
    other = _r("WA5666", 1.2, (235, 313, 316, 334))
    assert choose_plates([grouped, other], max_plates=1) == [grouped]


def test_a_two_line_reading_that_holds_a_one_line_reading_is_the_plate():
    # "1413XJ" alone fits a Dutch format and scores higher; with the "K" read above it the two
    # lines fit an Austrian one: the whole plate wins, in either order
    part = _r("1413XJ", 1.52, (423, 330, 554, 371), fmt="NL-car", country="NL")
    whole = _r("K1413XJ", 1.25, (422, 299, 554, 372), lines=2, fmt="AT-capital", country="AT")
    assert choose_plates([part, whole], max_plates=1) == [whole]
    assert choose_plates([whole, part], max_plates=1) == [whole]
    # a top line that makes no format, or a reading that does not hold the line, changes nothing
    junk = _r("X1413XJ", 1.2, (422, 299, 554, 372), lines=2)
    assert choose_plates([part, junk], max_plates=1) == [part]
    other = _r("K1418XJ", 1.2, (422, 299, 554, 372), lines=2, fmt="AT-capital", country="AT")
    assert choose_plates([part, other], max_plates=1) == [part]
    # at an Italian camera, an Italian plate with a badge read above it stays the Italian plate
    home = _r("AB123CD", 1.9, (100, 200, 200, 222), fmt="IT-car", country="IT")
    badge = _r("EAB123CD", 1.3, (100, 180, 200, 222), lines=2, fmt="XX-made-up", country="DE")
    assert choose_plates([home, badge], max_plates=1, region="IT") == [home]
    assert choose_plates([home, badge], max_plates=1, region="auto") == [badge]
