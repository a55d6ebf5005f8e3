from otter.test_files import test_case

OK_FORMAT = False

name = "q3_fine_prune"
points = 4

@test_case(points=None, hidden=False)
def test_fine_pruning_prunes_like_fpcore(defended, pruned):
    import fpcore
    import torch
    assert isinstance(defended, fpcore.Defended), 'return fpcore.Defended(...)'
    assert defended.k == pruned.k, f'the pruning defense stops at k = {pruned.k}, you at {defended.k}'
    assert torch.equal(defended.model.mask, pruned.model.mask), 'prune the same channels as the pruning defense'

@test_case(points=None, hidden=False)
def test_fine_pruning_beats_the_bar(defended, task, attack, REMOVED):
    import fpcore
    after = fpcore.evaluate(defended.model, task, attack)
    assert after['asr'] <= REMOVED, f"ASR {after['asr']:.1%}: the backdoor is not removed"
    assert after['acc'] >= 0.6, f"clean accuracy {after['acc']:.1%}: below the bar of 60 %"

