from otter.test_files import test_case

OK_FORMAT = False

name = "q2_fold"
points = 3

@test_case(points=None, hidden=False)
def test_fold_matches_conv_then_bn(fold_bn, net, inputs3):
    import torch
    from torch import nn
    folded = fold_bn(net.conv3, net.bn3)
    assert isinstance(folded, nn.Conv2d), 'fold_bn must return an nn.Conv2d'
    assert folded.bias is not None, 'the folded convolution needs a bias'
    with torch.no_grad():
        want = net.bn3(net.conv3(inputs3))
        got = folded(inputs3)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-05), f'folded(x) differs from bn(conv(x)) by {(got - want).abs().max():.2e}'

@test_case(points=None, hidden=False)
def test_fold_changes_nothing(fold_bn, net):
    import copy
    import torch
    from torch import nn
    conv, bn = (copy.deepcopy(net.conv3), copy.deepcopy(net.bn3))
    assert isinstance(fold_bn(conv, bn), nn.Conv2d), 'fold_bn must return an nn.Conv2d'
    for a, b in ((conv, net.conv3), (bn, net.bn3)):
        pairs = zip(a.state_dict().items(), b.state_dict().values())
        for (name, x), y in pairs:
            assert torch.equal(x, y), f'fold_bn changed {name} of its input'

