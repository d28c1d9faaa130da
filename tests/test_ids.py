import uuid

import numpy as np

from cortex.ids import CORTEX_NAMESPACE, map_id, map_ids


def test_unsigned_ints_and_uuids_are_kept():
    assert map_id(0) == (0, True)
    assert map_id(2**64 - 1) == (2**64 - 1, True)
    u = str(uuid.uuid4())
    assert map_id(u) == (u, True)
    assert map_id(np.int64(7)) == (7, True)


def test_digit_strings_become_ints_but_not_with_leading_zeros():
    assert map_id("0") == (0, True)
    assert map_id("17") == (17, True)
    q, kept = map_id("017")
    assert not kept and q == str(uuid.uuid5(CORTEX_NAMESPACE, "017"))
    q, kept = map_id(str(2**64))  # too big for u64
    assert not kept


def test_other_ids_become_deterministic_uuid5():
    a, kept = map_id("id1")
    assert not kept
    assert a == map_id("id1")[0] == str(uuid.uuid5(CORTEX_NAMESPACE, "id1"))
    assert map_id("id2")[0] != a
    assert map_id(-5)[0] == str(uuid.uuid5(CORTEX_NAMESPACE, "-5"))
    upper = str(uuid.uuid4()).upper()
    q, kept = map_id(upper)
    assert q == upper.lower() and not kept  # canonical form, original kept in payload


def test_vector_fast_path_matches_scalar_path():
    arr = np.arange(10, dtype=np.int64)
    assert map_ids(arr) == ([int(i) for i in arr], [True] * 10)
    mixed = ["a", 3, "4", "04"]
    assert map_ids(mixed) == ([map_id(x)[0] for x in mixed], [map_id(x)[1] for x in mixed])
