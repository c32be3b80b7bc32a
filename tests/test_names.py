import pytest

from actionfusion.datasets.ntu.names import SampleName, format_sample_name, parse_sample_name
from actionfusion.errors import SampleNameError


def test_parse_fields_and_label():
    s = parse_sample_name("S001C002P003R002A013")
    assert (s.setup, s.camera, s.performer, s.replication, s.action) == (1, 2, 3, 2, 13)
    assert s.label == 12


@pytest.mark.parametrize(
    "text", ["S001C002P003R002A013.skeleton", "x/y/S001C002P003R002A013_rgb.avi", "S001C002P003R002A013"]
)
def test_parse_ignores_paths_and_suffixes(text):
    assert str(parse_sample_name(text)) == "S001C002P003R002A013"


def test_format_is_inverse_over_many_names():
    for setup in (1, 17, 32):
        for action in (1, 60, 120):
            name = SampleName(setup, 3, 106, 2, action)
            assert parse_sample_name(format_sample_name(name)) == name


@pytest.mark.parametrize(
    "bad", ["", "S1C2P3R2A13", "S001C002P003R002", "s001c002p003r002a013", "S001C002P003R002A000", "S001C002P003R002A01x"]
)
def test_bad_names_raise_typed_error(bad):
    with pytest.raises(SampleNameError):
        parse_sample_name(bad)


def test_format_rejects_out_of_range():
    with pytest.raises(SampleNameError):
        format_sample_name(SampleName(1000, 1, 1, 1, 1))
