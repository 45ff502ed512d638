"""`lipgen batch` against separate `lipgen generate` calls: 20 jobs, one of them bad.

    python benchmarks/batch_speed.py [--jobs 20]

The jobs: the bundled GRID clips' speech (3 s each) onto the bundled photo and a fixture video, cycled, and one
job whose audio is not audio. Runs `lipgen batch` on the job list once, then `lipgen generate` once per job
(each loads the model and tracks the face again), and prints the outputs made, failures reported, exit codes
and seconds per job side by side.
"""

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lipgen.evaluation.portraits import DEFAULT_SPEECH
from lipgen.generate import SAMPLE_FACE

VIDEO = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "grid" / "s1" / "video" / "bbaf2n.mp4"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20, help="number of jobs, one of them bad (default 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bad = tmp / "bad.wav"
        bad.write_text("not audio")
        faces = [SAMPLE_FACE, VIDEO]
        jobs = [{"audio": DEFAULT_SPEECH[i % len(DEFAULT_SPEECH)], "face": faces[i % 2], "out": tmp / f"b{i}.mp4"}
                for i in range(args.jobs - 1)]
        jobs.insert(args.jobs // 2, {"audio": bad, "face": SAMPLE_FACE, "out": tmp / "bad_b.mp4"})
        with open(tmp / "jobs.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, ["audio", "face", "out"])
            writer.writeheader()
            writer.writerows(jobs)
        lipgen = [sys.executable, "-m", "lipgen"]
        start = time.perf_counter()
        run = subprocess.run([*lipgen, "batch", str(tmp / "jobs.csv"), "-q"], capture_output=True, text=True)
        batch_s = time.perf_counter() - start
        made = sum(Path(j["out"]).is_file() for j in jobs)
        print(run.stdout.strip())
        start, codes = time.perf_counter(), []
        for i, job in enumerate(jobs):
            out = tmp / f"g{i}.mp4"
            codes.append(subprocess.run([*lipgen, "generate", "--audio", str(job["audio"]), "--face", str(job["face"]),
                                         "-o", str(out), "-q"], capture_output=True).returncode)
        separate_s = time.perf_counter() - start
        separate_made = sum((tmp / f"g{i}.mp4").is_file() for i in range(len(jobs)))
        print(f"{'':24}{'lipgen batch':>16}{'separate generate':>20}")
        print(f"{'outputs made':24}{made:>16}{separate_made:>20}")
        print(f"{'failed jobs':24}{run.stdout.count('failed job'):>16}{sum(c != 0 for c in codes):>20}")
        print(f"{'exit code':24}{run.returncode:>16}{'one per call':>20}")
        print(f"{'seconds, all jobs':24}{batch_s:>16.1f}{separate_s:>20.1f}")
        print(f"{'seconds per job':24}{batch_s / len(jobs):>16.2f}{separate_s / len(jobs):>20.2f}")


if __name__ == "__main__":
    main()
