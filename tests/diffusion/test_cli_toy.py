"""`gen3d toy`: the figure command runs, writes a PNG, and rejects bad flags with a clear message."""

from PIL import Image

from gen3d.cli import main
from gen3d.cli.toy import SAMPLER_NAMES
from gen3d.diffusion.samplers import sampler_names


def test_sampler_list_in_cli_matches_library():
    assert list(SAMPLER_NAMES) == sampler_names()


def test_toy_figure_all_samplers(tmp_path):
    out = tmp_path / "toy.png"
    rc = main(["toy", "--sampler", "heun", "--steps", "3", "--samples", "200", "--trajectories", "2",
               "--out", str(out), "--quiet", "--seed", "1"])
    assert rc == 0
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 800 and im.height > 600  # 3 x 4 panels
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically: no temp file left


def test_toy_figure_only_one_and_errors(tmp_path, capsys):
    out = tmp_path / "one.png"
    assert main(["toy", "--sampler", "flow_euler", "--only", "--steps", "2", "--samples", "50",
                 "--out", str(out), "--quiet"]) == 0
    with Image.open(out) as im:
        assert im.width < 1000  # two panels
    assert main(["toy", "--out", str(tmp_path / "x.jpg"), "--quiet"]) == 2
    assert ".png" in capsys.readouterr().err
    assert main(["toy", "--sampler", "all", "--only", "--out", str(out)]) == 2
