"""Rule realism: the simulated data's measured properties beside their target bands (qc/realism.tsv)."""

from spectsynth.logs import rule_log
from spectsynth.realism import run_realism


def main(smk):
    with rule_log(smk):
        inputs = {k: v for k, v in smk.input.items() if k != "shards" and k != "territories"}
        run_realism(inputs, dict(smk.output.items()), shards=dict(smk.params.shards),
                    territories=dict(smk.params.territories), normal_sbr=dict(smk.params.normal_sbr),
                    data_range=float(smk.params.data_range), win_size=int(smk.params.win_size),
                    subtitle=str(smk.params.subtitle))


main(snakemake)  # noqa: F821
