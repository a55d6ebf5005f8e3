from otter.test_files import test_case

OK_FORMAT = False

name = "q3_fold_network"
points = 2

@test_case(points=None, hidden=False)
def test_folded_network_gives_the_same_outputs(fold_network, net, images):
    import torch
    from torch import nn
    folded = fold_network(net).eval()
    assert not any((isinstance(m, nn.BatchNorm2d) for m in folded.modules())), 'the folded network still has BatchNorm layers'
    with torch.no_grad():
        want, got = (net(images), folded(images))
    assert torch.allclose(got, want, atol=0.0001), f'outputs differ by {(got - want).abs().max():.2e}'
    assert sum((isinstance(m, nn.BatchNorm2d) for m in net.modules())) == 3, 'fold_network must not change the network it is given'

