"""`microdx report`: a PNG of per-layer bytes and RAM against a board's limits and a Markdown summary, written whole
or not at all."""
import json

from microdx import bundled
from microdx.cli import main


def test_report_writes_a_png_and_a_summary_with_the_board_verdicts(tmp_path, capsys):
    blob = bundled.blob("speaker-jvowels", "rp2040")
    assert main(["report", str(blob), "--board", "stm32f411", "--out", str(tmp_path), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    png, md = tmp_path / "rp2040_report.png", tmp_path / "rp2040_report.md"
    assert r == {"png": str(png), "md": str(md)}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = md.read_text()
    assert "# speaker_jvowels on stm32f411" in text and "![per-layer bytes and RAM](rp2040_report.png)" in text
    assert f"blob: {blob.stat().st_size:,} bytes, 3 layers, 10,016 MACs" in text
    assert "board stm32f411:\n  flash  fits" in text and "heap   fits" in text
    assert text.count("| dense | i8 |") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rp2040_report.md", "rp2040_report.png"]


def test_report_of_a_bad_blob_is_refused_and_leaves_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.dxb"
    bad.write_bytes(b"DXB1" + bytes(40))
    out = tmp_path / "out"
    assert main(["report", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("microdx: ") and "Traceback" not in err, err
    assert not out.exists() or not any(out.iterdir())
