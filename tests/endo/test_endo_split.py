"""Patients, the train / test split and one CT per patient (workflow_scripts/endo/layout.py and
the DAG it shapes, in dry runs): a test patient reaches no training stage, a patient without a CT
is evaluated without a registration, bad splits stop with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_endo_workflow import job_block, job_counts, snakemake

from workflow_scripts.endo.layout import EndoSequence, discover, patient_camera, patient_ct, resolve_split
from workflow_scripts.util import InputDataError


def _frames(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "00000001.jpg").write_bytes(b"")


@pytest.fixture
def patients(tmp_path) -> Path:
    """<root>/pA/{caseA, caseB}/ (frame folders), pA's CT; <root>/pB/caseC.mp4, no CT; a root-level
    sequence caseD/ with the root's CT; camera.yaml at the root and pB's own."""
    root = tmp_path / "data"
    _frames(root / "pA" / "caseA")
    _frames(root / "pA" / "caseB")
    (root / "pA" / "ct_surface.ply").write_bytes(b"")
    (root / "pB").mkdir()
    (root / "pB" / "caseC.mp4").write_bytes(b"")
    (root / "pB" / "camera.yaml").write_text("")
    (root / "pB" / "notes.txt").write_text("")
    _frames(root / "caseD")
    (root / "ct_surface.ply").write_bytes(b"")
    (root / "camera.yaml").write_text("")
    return root


def test_sequences_are_found_at_both_levels_with_their_patients(patients):
    found = discover(patients)
    assert [(s.name, s.patient, s.source.relative_to(patients).as_posix()) for s in found] == [
        ("caseA", "pA", "pA/caseA"), ("caseB", "pA", "pA/caseB"), ("caseC", "pB", "pB/caseC.mp4"),
        ("caseD", "", "caseD")]
    assert patient_ct(patients, "pA", {}) == patients / "pA" / "ct_surface.ply"
    assert patient_ct(patients, "pB", {}) is None  # no CT: depth metrics only
    assert patient_ct(patients, "", {}) == patients / "ct_surface.ply"
    assert patient_ct(patients, "pB", {"pB": str(patients / "ct_surface.ply")}) == patients / "ct_surface.ply"
    assert patient_camera(patients, "pB") == patients / "pB" / "camera.yaml"
    assert patient_camera(patients, "pA") == patients / "camera.yaml"
    _frames(patients / "pB" / "caseA")
    with pytest.raises(InputDataError, match="same sequence name 'caseA'"):
        discover(patients)


SEQS = [EndoSequence("a1", "pA", Path("a1")), EndoSequence("a2", "pA", Path("a2")),
        EndoSequence("b1", "pB", Path("b1")), EndoSequence("c1", "", Path("c1"))]


@pytest.mark.parametrize(("train", "test", "sides"), [
    ([], [], "tttt"),
    ([], ["pB"], "ttet"),  # a patient stands for its sequences
    (["pA"], [], "ttee"),  # test = every sequence not in train
    (["a1", "c1"], ["a2", "b1"], "teet"),
])
def test_split_sides_by_sequence_or_patient(train, test, sides):
    side = resolve_split(SEQS, train, test)
    assert "".join("t" if side[s.name] == "train" else "e" for s in SEQS) == sides


@pytest.mark.parametrize(("train", "test", "message"), [
    (["pA"], ["a2"], r"a2 on both sides"),
    ([], ["pC"], r"split.test names 'pC', which is neither a sequence nor a patient "
                 r"\(sequences: a1, a2, b1, c1; patients: pA, pB\)"),
    (["a1"], ["b1"], r"a2, c1 in neither train nor test"),
    ([], ["pA", "pB", "c1"], "every sequence is on the test side"),
])
def test_bad_splits_name_the_key_and_the_sequences(train, test, message):
    with pytest.raises(ValueError, match=message):
        resolve_split(SEQS, train, test)


def _config(tmp_path: Path, root: Path, **endo) -> Path:
    cfg = tmp_path / "real.yaml"
    cfg.write_text(yaml.safe_dump({"endoscopy": {"root": str(root), **endo}}))
    return cfg


def test_a_test_patient_reaches_no_training_stage_and_each_patient_its_own_ct(patients, tmp_path):
    cfg = _config(tmp_path, patients, split={"test": ["pB"]}, evaluate={"stages": ["teacher", "constant"]})
    run = snakemake("all", "-n", "-p", "--configfile", str(cfg), "--directory", str(tmp_path))
    assert run.returncode == 0, run.stderr
    counts = job_counts(run.stdout)
    # every sequence is prepared, predicted and evaluated; only pA's and the root's are registered
    assert counts["prepare_sfm_data"] == 4 and counts["evaluate_endo_depth"] == 8
    assert counts["register_ct"] == 6
    teacher = job_block(run.stdout, "train_teacher")
    assert "results/endo/caseA/sfm_data.npz" in teacher and "results/endo/caseD/frames" in teacher
    assert "caseC" not in teacher  # the test patient's sequence trains nowhere
    assert f"{patients}/pA/ct_surface.ply" in run.stdout and f"{patients}/ct_surface.ply" in run.stdout
    assert "registration/teacher/caseC" not in run.stdout
    assert "no CT surface for patient pB (caseC): depth metrics only" in run.stdout + run.stderr
    assert f"{patients}/pB/camera.yaml" in run.stdout  # pB's own camera


@pytest.mark.parametrize(("split", "phrase"), [
    ({"train": ["caseA"], "test": ["pA"]}, "caseA on both sides"),
    ({"test": ["caseX"]}, "endoscopy.split.test names 'caseX', which is neither a sequence nor a patient"),
])
def test_bad_split_stops_the_workflow_before_any_job(patients, tmp_path, split, phrase):
    run = snakemake("all", "-n", "--configfile", str(_config(tmp_path, patients, split=split)),
                    "--directory", str(tmp_path))
    out = run.stdout + run.stderr
    assert run.returncode != 0 and phrase in out and "Job stats" not in out, out[-2000:]
