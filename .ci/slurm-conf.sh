# Sourced by .ci/slurm-up.sh and .ci/slurm-down.sh: the configuration file the local test cluster
# writes and the first line that marks it as ours (slurm-down.sh removes only a file carrying it).
CONF=/etc/slurm/slurm.conf
MARKER="# Written by spectsynth .ci/slurm-up.sh (local single-node test cluster)."
