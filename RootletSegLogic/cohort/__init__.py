"""Cohorts: a BIDS dataset in; a BIDS derivatives dataset, a status table, the group Bland–Altman and an HTML QC
report out; resumable; one task per image on Dask workers (local cluster, an existing scheduler, or SLURM).

bids.py (discovery, derivatives lookup), task.py (the per-subject task, run on a worker), records.py (resume
records, status TSV, dataset_description.json), runners.py (Dask clients, task submission), slurm.py (SLURM
options for dask-jobqueue), batch.py (the workflow the `batch` command calls), group.py (group statistics and the
report from the subjects' records), phantom_bids.py (a phantom BIDS dataset for tests, benchmarks and trials).
"""
