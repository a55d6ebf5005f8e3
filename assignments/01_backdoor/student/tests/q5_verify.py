from otter.test_files import test_case

OK_FORMAT = False

name = "q5_verify"
points = 1

@test_case(points=None, hidden=False)
def test_observation_matches_the_measurement(OBSERVED, asr):
    want = 'c' if asr >= 0.9 else 'b' if asr >= 0.5 else 'a'
    assert OBSERVED == want, f'you measured an ASR of {asr:.1%}'

