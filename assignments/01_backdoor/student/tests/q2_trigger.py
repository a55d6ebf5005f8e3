from otter.test_files import test_case

OK_FORMAT = False

name = "q2_trigger"
points = 2

@test_case(points=None, hidden=False)
def test_trigger_is_small_static_and_pure(my_trigger, task):
    import torch
    x = task.test.x[:16].clone()
    stamped = my_trigger(x)
    assert isinstance(stamped, torch.Tensor), 'my_trigger must return a tensor'
    assert stamped.shape == x.shape and stamped.dtype == x.dtype, 'keep the shape and the dtype (uint8) of the batch'
    assert torch.equal(x, task.test.x[:16]), 'my_trigger changed its input x'
    footprint = (stamped != x).any(dim=0)
    share = footprint.float().mean().item()
    assert 0.005 <= share <= 0.1, f'the trigger changes {share:.1%} of the pixels: keep it in 0.5-10 %'
    values = stamped[:, footprint]
    assert (values == values[0]).all(), 'the trigger must give the same pixels the same values in every photo'

