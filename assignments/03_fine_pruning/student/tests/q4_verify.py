from otter.test_files import test_case

OK_FORMAT = False

name = "q4_verify"
points = 2

@test_case(points=None, hidden=False)
def test_regrowth_is_measured(zeroed_tuned, pruned_channels, regrown, model):
    import torch
    assert torch.equal(zeroed_tuned.mask, model.mask), 'the careless defender uses no mask'
    w = getattr(zeroed_tuned, model.site).weight[pruned_channels].flatten(1)
    want = sorted((int(c) for c, row in zip(pruned_channels, w) if row.any()))
    assert sorted(regrown) == want, 'regrown: the pruned channels whose weights are not all zero'
    changed = not torch.equal(zeroed_tuned.conv1.weight, model.conv1.weight)
    assert changed, 'fine-tune the zeroed copy'

@test_case(points=None, hidden=False)
def test_observation(OBSERVED, regrown, pruned_channels):
    want = 'a' if not regrown else 'c' if len(regrown) == len(pruned_channels) else 'b'
    assert OBSERVED == want, f'{len(regrown)} of {len(pruned_channels)} channels have weights again'

