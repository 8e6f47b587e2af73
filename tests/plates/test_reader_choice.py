"""Which of an image's candidate readings are its plates (:func:`vigil.plates.reader.choose_plates`)."""

from vigil.plates.reader import PlateReading, choose_plates


def _r(text, score, box):
    return PlateReading(text=text, confidence=min(1.0, score), box=box, score=score)


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
