"""The store's class was ActivationCache (the name of TransformerLens's own cache); it is ActivationStore
now, and the old name still answers for one release, with a DeprecationWarning."""

import warnings

import pytest

import interp
import interp.store
from interp.store import ActivationStore


def test_the_old_name_is_the_store_and_warns():
    with pytest.warns(DeprecationWarning, match="ActivationStore"):
        old = interp.store.ActivationCache
    assert old is ActivationStore


def test_the_old_name_warns_from_the_package_front_door():
    with pytest.warns(DeprecationWarning, match="ActivationStore"):
        old = interp.ActivationCache
    assert old is ActivationStore


def test_the_new_name_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert interp.ActivationStore is ActivationStore
        from interp.store import ActivationStore as again  # noqa: F401


def test_other_missing_names_still_fail():
    with pytest.raises(AttributeError):
        interp.store.ActivationKache  # noqa: B018
