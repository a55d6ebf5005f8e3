from otter.test_files import test_case

OK_FORMAT = False

name = "q1_predict"
points = 1

@test_case(points=None, hidden=False)
def test_prediction_is_a_choice(PREDICTION):
    assert PREDICTION in ('a', 'b', 'c'), 'set PREDICTION to "a", "b" or "c"'

