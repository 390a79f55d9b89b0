"""Rule measure_scan_registration_error: simulated PET/SPECT registration error, FOV and SSIM QC."""

from spectsynth.logs import rule_log
from spectsynth.scan_qc import run_scan_qc


def main(smk):
    with rule_log(smk):
        run_scan_qc(list(smk.params.scans), dict(smk.params.datasets), dict(smk.params.datasets_cfg),
                    dict(smk.output.items()), data_range=float(smk.params.data_range),
                    win_size=int(smk.params.win_size))


main(snakemake)  # noqa: F821
