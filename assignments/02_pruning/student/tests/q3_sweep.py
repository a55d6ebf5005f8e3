from otter.test_files import test_case

OK_FORMAT = False

name = "q3_sweep"
points = 3

@test_case(points=None, hidden=False)
def test_curve_matches_fpcore(curve, model, task, attack, order):
    import fpcore
    import numpy as np
    want = fpcore.prune_curve(model, task, attack, order=order)
    assert set(curve) == {'val', 'test', 'asr'}, 'return a dict with the keys "val", "test" and "asr"'
    for name, ref in (('val', want.acc['val']), ('test', want.acc['test']), ('asr', want.asr)):
        got = np.asarray(curve[name], dtype=float)
        assert got.shape == ref.shape, f'{name}: one number for each k = 0..C'
        assert np.allclose(got, ref, atol=1e-06), f"{name} differs from fpcore.prune_curve's at k = {int(np.argmax(np.abs(got - ref) > 1e-06))}"

