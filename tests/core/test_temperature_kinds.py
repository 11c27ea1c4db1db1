"""uqseg.core.temperature_kinds: temperature scaling applies to logits (a plain head's, DisMax /
IsoMax+'s distance logits) and is refused, naming the owner and the kind, for EDL's log alpha,
probabilities and unknown kinds. The scaled models and eval_selective follow it
(tests/cls/test_cls_classifiers.py, tests/tools/test_eval_selective.py)."""
import pytest

from uqseg.core.output_files import FILE_KINDS
from uqseg.core.scores import OUTPUT_KINDS
from uqseg.core.temperature_kinds import TEMPERATURE_KINDS, check_temperature_kind


def test_the_kinds_of_logits_are_scaled():
    assert set(TEMPERATURE_KINDS) == {'logits', 'distance_logits'} and set(TEMPERATURE_KINDS) < set(OUTPUT_KINDS)
    for kind in TEMPERATURE_KINDS:
        assert check_temperature_kind(kind, 'owner') == kind


@pytest.mark.parametrize('kind,what', [('log_alpha', r"log alpha \(evidential, kind 'log_alpha'\)"),
                                       ('probs', r"probabilities \(kind 'probs'\)"),
                                       ('evidence', "outputs of the unknown kind 'evidence'")])
def test_other_kinds_are_refused_naming_the_owner_and_the_kind(kind, what):
    with pytest.raises(ValueError, match=rf"^model.npz: the file holds {what}, not logits; temperature scaling "
                                         r"divides logits and applies to the kinds \('logits', 'distance_logits'\)"):
        check_temperature_kind(kind, 'model.npz', 'the file holds')


def test_every_file_kind_is_decided():
    refused = []
    for kind in FILE_KINDS:
        try:
            check_temperature_kind(kind, 'x')
        except ValueError:
            refused.append(kind)
    assert refused == ['log_alpha', 'probs']
