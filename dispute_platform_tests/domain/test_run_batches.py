"""How the SQS sensor cuts a tick's new disputes into intake runs."""

from hypothesis import given
from hypothesis import strategies as st

from dispute_platform.sensors import even_batches


@given(n=st.integers(min_value=0, max_value=2000), most=st.integers(min_value=1, max_value=300))
def test_even_batches_keep_order_respect_the_cap_and_differ_by_at_most_one(n, most):
    items = list(range(n))
    batches = even_batches(items, most)
    assert [x for batch in batches for x in batch] == items
    assert len(batches) == -(-n // most)  # no more runs than the cap forces
    if batches:
        sizes = [len(b) for b in batches]
        assert max(sizes) <= most and max(sizes) - min(sizes) <= 1


def test_one_over_the_cap_splits_in_halves_not_a_lone_straggler():
    assert [len(b) for b in even_batches(list(range(101)), 100)] == [51, 50]
    assert [len(b) for b in even_batches(list(range(500)), 250)] == [250, 250]
