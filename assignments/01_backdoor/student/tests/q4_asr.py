from otter.test_files import test_case

OK_FORMAT = False

name = "q4_asr"
points = 3

@test_case(points=None, hidden=False)
def test_asr_matches_fpcore(attack_success_rate, model, task, my_trigger, TARGET, asr):
    import fpcore
    attack = fpcore.Attack('mine', my_trigger, fpcore.triggers.all_to_one(TARGET))
    want = fpcore.evaluate(model, task, attack)['asr']
    got = attack_success_rate(model, task, my_trigger, TARGET)
    assert abs(got - want) < 1e-06, f"your ASR {got:.4f}, fpcore's {want:.4f}"
    assert abs(asr - want) < 1e-06, 'compute asr with your function'

@test_case(points=None, hidden=False)
def test_the_backdoor_works(model, task, asr, WORKS):
    import fpcore
    acc = fpcore.evaluate(model, task)['acc']
    assert asr >= WORKS, f'ASR {asr:.1%}: below {WORKS:.0%}'
    assert acc >= 0.6, f'clean accuracy {acc:.1%}: the backdoor shows'

