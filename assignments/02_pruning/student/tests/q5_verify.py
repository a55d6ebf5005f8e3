from otter.test_files import test_case

OK_FORMAT = False

name = "q5_verify"
points = 1

@test_case(points=None, hidden=False)
def test_observation_matches_the_curve(OBSERVED, model, task, attack, MAX_DROP):
    import fpcore
    from fpcore.chapter import verdict
    c = fpcore.prune_curve(model, task, attack)
    k = fpcore.choose_k(c.acc['val'], MAX_DROP)
    word = verdict(c.asr[k], c.asr[0])
    want = {'removes': 'a', 'weakens': 'b', 'does not remove': 'c'}[word]
    assert OBSERVED == want, f'the ASR goes from {c.asr[0]:.1%} to {c.asr[k]:.1%} at k = {k}'

