from otter.test_files import test_case

OK_FORMAT = False

name = "q4_silence"
points = 2

@test_case(points=None, hidden=False)
def test_silenced_channels_output_zero(silence, fold_bn, net, inputs3):
    import torch
    folded = fold_bn(net.conv3, net.bn3)
    off = [0, 5, 17, 40]
    with torch.no_grad():
        before = torch.relu(folded(inputs3))
        after = torch.relu(silence(folded, off)(inputs3))
    assert after[:, off].abs().max() == 0, 'a silenced channel still fires'
    rest = [c for c in range(before.shape[1]) if c not in off]
    assert torch.equal(after[:, rest], before[:, rest]), 'silence changed channels it was not asked to'

