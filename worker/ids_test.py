"""Job ids: shape, entropy and the cheap shape check."""

from __future__ import annotations

import base64
import string

from hypothesis import given
from hypothesis import strategies as st

from worker.ids import ID_LENGTH, is_job_id, new_job_id

_URL_SAFE = set(string.ascii_letters + string.digits + "-_")


def test_new_ids_are_url_safe_128_bit_tokens() -> None:
    ids = {new_job_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    for job_id in ids:
        assert len(job_id) == ID_LENGTH and set(job_id) <= _URL_SAFE
        assert len(base64.urlsafe_b64decode(job_id + "==")) == 16
        assert is_job_id(job_id)
        # 10,000 draws would give about 156 leading dashes if ids were not redrawn.
        assert not job_id.startswith("-")


@given(st.text(max_size=64))
def test_is_job_id_accepts_only_22_url_safe_characters(text: str) -> None:
    assert is_job_id(text) == (len(text) == ID_LENGTH and set(text) <= _URL_SAFE)


@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text())))
def test_is_job_id_rejects_non_strings(value: object) -> None:
    assert not is_job_id(value)
