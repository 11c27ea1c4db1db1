"""DecodeHeadWrapper: the one spelling of a head extension and the classes it makes."""
import copy
import pickle

import pytest
from mmseg.models.decode_heads import FCNHead

from uqseg.seg.models.heads import ASLPHead

FCN = dict(type='FCNHead', in_channels=8, channels=4, num_convs=1, loss_decode=dict(type='SCBCELoss'))


def test_head_may_be_given_by_position_or_by_keyword():
    a, b = ASLPHead(dict(FCN), num_samples=2), ASLPHead(head=dict(FCN), num_samples=2)
    assert type(a) is type(b) and isinstance(a, FCNHead)


def test_a_made_class_refuses_another_head_type():
    made = type(ASLPHead(dict(FCN), num_samples=2))
    with pytest.raises(TypeError, match="wraps FCNHead, not head='UPerHead'"):
        made(head=dict(FCN, type='UPerHead'))


def test_the_removed_head_type_spelling_says_what_to_write():
    with pytest.raises(TypeError, match=r"head_type= is no longer accepted; write head=dict\(type='FCNHead'"):
        ASLPHead(dict(FCN), head_type='FCNHead')


def test_a_subclass_of_a_made_class_keeps_its_class_through_copy_and_pickle():
    made = type(ASLPHead(dict(FCN), num_samples=2))
    sub = type('MyASLPFCNHead', (made,), {'__module__': __name__})
    globals()['MyASLPFCNHead'] = sub  # picklable by reference, as a user's own class would be
    head = sub(head=dict(FCN), num_samples=2)
    assert type(copy.deepcopy(head)) is sub
    assert type(pickle.loads(pickle.dumps(head))) is sub
    plain = made(head=dict(FCN), num_samples=2)
    assert type(copy.deepcopy(plain)) is made and type(pickle.loads(pickle.dumps(plain))) is made
