from otter.test_files import test_case

OK_FORMAT = False

name = "q2_fine_tune"
points = 3

@test_case(points=None, hidden=False)
def test_fine_tuning_keeps_the_mask_and_learns(fine_tune_masked, pruned, task):
    import fpcore
    import torch
    net = pruned.model
    state = {k: v.clone() for k, v in net.state_dict().items()}
    tuned = fine_tune_masked(net, task, epochs=3, lr=0.01, batch_size=32, weight_decay=0.0)
    assert tuned is not net, 'fine-tune a copy'
    for name, t in net.state_dict().items():
        assert torch.equal(t, state[name]), f"the original's {name} changed"
    assert torch.equal(tuned.mask, net.mask), 'keep the mask'
    assert not tuned.training, 'return the network in evaluation mode'
    x = task.prepare(task.val.x[:32].to(tuned.mask.device))
    with torch.no_grad():
        silent = tuned.activations(x)[:, net.mask == 0]
    assert silent.abs().max() == 0 if silent.numel() else True
    moved = any((not torch.equal(a, b) for a, b in zip(tuned.parameters(), net.parameters())))
    assert moved, 'the copy was not trained'

