"""`python -m studio queue ...` against the data directory's database."""

from __future__ import annotations

import json

from queue_helpers import run_cli


def test_cli_add_list_cancel_export_import(capsys, data_dir, image, tmp_path):
    d = ["--data-dir", str(data_dir)]
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"prompt": "from json", "total_seconds": 2}))
    code, out, _ = run_cli(capsys, "queue", *d, "add", "--json", str(params), "--image", str(image), "--set", "steps=7")
    assert code == 0
    job_id = out.strip()
    code, _, err = run_cli(capsys, "queue", *d, "add", "--set", "steps=0", "--set", "nope=1")
    assert code == 2 and "invalid steps" in err and "invalid nope" in err
    code, out, _ = run_cli(capsys, "queue", "list", *d, "--json")
    [job] = json.loads(out)
    assert job["id"] == job_id and job["status"] == "PENDING" and job["title"] == "from json"
    code, out, _ = run_cli(capsys, "queue", *d, "show", job_id)
    assert json.loads(out)["params"]["steps"] == 7
    zip_path = tmp_path / "q.zip"
    assert run_cli(capsys, "queue", *d, "export", str(zip_path))[0] == 0 and zip_path.is_file()
    assert run_cli(capsys, "queue", *d, "cancel", job_id)[0] == 0
    code, out, _ = run_cli(capsys, "queue", *d, "list")
    assert "CANCELLED" in out and job_id in out
    code, out, _ = run_cli(capsys, "queue", *d, "import", str(zip_path))
    assert code == 0 and "Imported 1 job" in out
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    code, _, err = run_cli(capsys, "queue", *d, "import", str(bad))
    assert code == 2 and "malformed JSON" in err
    code, out, _ = run_cli(capsys, "queue", *d, "list", "--json")
    # the pending job (imported) before the finished one
    assert [j["status"] for j in json.loads(out)] == ["PENDING", "CANCELLED"]



def test_cli_add_refuses_an_image_as_video_and_a_video_as_image(capsys, data_dir, image, small_video):
    d = ["--data-dir", str(data_dir)]
    code, out, err = run_cli(capsys, "queue", *d, "add", "--type", "Video", "--set", f"input_video={image}")
    assert code == 2 and out == "" and err == "invalid input_video: start.png is an image, not a video\n"
    code, out, err = run_cli(capsys, "queue", *d, "add", "--image", str(small_video))
    assert code == 2 and err == "invalid start_image: small.mp4 is a video, not an image\n"
    code, out, _ = run_cli(capsys, "queue", *d, "list", "--json")
    assert json.loads(out) == []
