from otter.test_files import test_case

OK_FORMAT = False

name = "q3_poison"
points = 3

@test_case(points=None, hidden=False)
def test_poisoned_split(poison_split, my_trigger, task, TARGET):
    import torch
    split = task.train
    out = poison_split(split, my_trigger, TARGET, 0.1, seed=3)
    n, k = (len(split), round(0.1 * len(split)))
    assert len(out.y) == n + k and len(out.x) == n + k, f'expected {n} photos and {k} poisoned copies'
    same = torch.equal(out.x[:n], split.x) and torch.equal(out.y[:n], split.y)
    assert same, 'the clean photos must come first, unchanged and in order'
    assert (out.y[n:] == TARGET).all(), 'every poisoned copy is labelled target'
    stamped = my_trigger(split.x).flatten(1)
    rows = {tuple(r.tolist()): i for i, r in enumerate(stamped)}
    source = [rows.get(tuple(r.tolist())) for r in out.x[n:].flatten(1)]
    assert None not in source, 'each copy is a training photo with the trigger'
    assert all((split.y[i] != TARGET for i in source)), 'copy only photos whose label is not the target'
    assert len(set(source)) == k, 'choose the photos without repetition'

