"""The translate command line's bulk mode: when it applies, and the errors it gives before Ray starts
(the runs on Ray are in test_bulk_ray.py)."""
import pytest

from liquidlfm.translate.__main__ import _bulk_mode, main
from tests.bulk.helpers import write_jsonl


class Args:
    def __init__(self, input=None, output=None, bulk=False, format=None):
        self.input, self.output, self.bulk, self.format = input, output, bulk, format


def test_bulk_mode_is_chosen_by_input_or_output(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "out").mkdir()
    assert _bulk_mode(Args("c.jsonl", "out.md"))
    assert _bulk_mode(Args("c.parquet", "x"))
    assert _bulk_mode(Args(str(tmp_path / "docs"), "x"))
    assert _bulk_mode(Args("lines.txt", "out/"))
    assert _bulk_mode(Args("lines.txt", str(tmp_path / "out")))
    assert _bulk_mode(Args("lines.txt", "x.txt", bulk=True))
    assert _bulk_mode(Args("lines.txt", "x.txt", format="text"))
    assert not _bulk_mode(Args("README.md", "README.ko.md"))  # the single-document mode stays as it was
    assert not _bulk_mode(Args(None, None))


@pytest.mark.parametrize("args, message", [
    (["--to", "ko", "--actors", "2", "Hello."], "--actors: bulk options"),
    (["--to", "ko", "--input", "x.md", "--output", "y.md", "--n-seq", "4", "--ray", "auto"],
     "--ray, --n-seq: bulk options"),
    (["--to", "ko", "--input", "c.jsonl"], "bulk mode needs --output FOLDER"),
    (["--to", "ko", "--bulk", "--output", "out/", "Hello."], "do not also give text"),
])
def test_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_input_errors_exit_2_before_ray_starts(tmp_path, capsys):
    dup = write_jsonl(tmp_path / "dup.jsonl", [{"id": 1, "text": "a"}, {"id": 1, "text": "b"}])
    assert main(["--to", "ko", "--input", str(dup), "--output", str(tmp_path / "out")]) == 2
    assert "duplicate id 1" in capsys.readouterr().err
    ok = write_jsonl(tmp_path / "ok.jsonl", [{"id": 1, "text": "a"}])
    assert main(["--to", "klingon", "--input", str(ok), "--output", str(tmp_path / "out")]) == 2
    assert "klingon" in capsys.readouterr().err
    assert main(["--to", "ko", "--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "out")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
