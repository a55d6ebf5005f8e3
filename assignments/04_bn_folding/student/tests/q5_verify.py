from otter.test_files import test_case

OK_FORMAT = False

name = "q5_verify"
points = 2

@test_case(points=None, hidden=False)
def test_leaking_channels_are_those_with_a_positive_folded_bias(leaking, net):
    import torch
    bn, conv = (net.bn3, net.conv3)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = (conv.bias - bn.running_mean) * scale + bn.bias
    want = sorted((int(c) for c in (shift > 0).nonzero().flatten()))
    assert list(leaking) == want, 'leaking should list (sorted) every channel that is non-zero after ReLU'

@test_case(points=None, hidden=False)
def test_observation(OBSERVED):
    assert OBSERVED == 'b', "look at the channels' outputs again: do they depend on the input?"

