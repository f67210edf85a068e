import pytest

from globalconv.registry import Registry


def test_registry_registers_names_and_rejects_duplicates_and_unknowns():
    things = Registry("thing")

    @things.register("b")
    class B:
        pass

    @things.register("a")
    class A:
        pass

    assert things.available() == ["a", "b"] and things.get("a") is A and A.name == "a"
    with pytest.raises(ValueError, match="thing 'a' is registered twice"):
        things.register("a")(type("Other", (), {}))
    with pytest.raises(ValueError, match="unknown thing 'c'; available: a, b"):
        things.get("c")
    things.unregister("a")
    assert things.available() == ["b"]
