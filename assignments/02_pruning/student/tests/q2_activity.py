from otter.test_files import test_case

OK_FORMAT = False

name = "q2_activity"
points = 3

@test_case(points=None, hidden=False)
def test_activity_matches_fpcore(activity_with_hook, model, task):
    import fpcore
    import torch
    got = activity_with_hook(model, task)
    want = fpcore.channel_activity(model, task, 'val')
    assert isinstance(got, torch.Tensor) and got.shape == want.shape, f'return a tensor of {len(want)} numbers, one per channel'
    assert torch.allclose(got.float().cpu(), want, atol=1e-05), f'largest difference from fpcore: {(got.cpu() - want).abs().max():.2e}'

