from otter.test_files import test_case

OK_FORMAT = False

name = "q4_stop"
points = 3

@test_case(points=None, hidden=False)
def test_stopping_rule_matches_fpcore(my_choose_k, curve, k, asr_at_k, MAX_DROP):
    import fpcore
    want = fpcore.choose_k(curve['val'], MAX_DROP)
    assert my_choose_k(curve['val'], MAX_DROP) == want, f'fpcore stops at k = {want}'
    assert k == want and asr_at_k == curve['asr'][want], 'compute k and asr_at_k with your function and your curve'
    assert my_choose_k([0.9, 0.9, 0.85], 10) == 2, 'no k breaks the rule'

