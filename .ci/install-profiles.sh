#!/usr/bin/env bash
# Make `snakemake --profile slurm` and `snakemake --profile local` work as typed.
#
# Snakemake 9 looks a bare profile name up in the current directory, in
# ${XDG_CONFIG_HOME:-~/.config}/snakemake/ and in /etc/xdg/snakemake/ -- not in the workflow's
# profiles/ folder. This script links this repository's profiles/slurm and profiles/local there
# (symbolic links, so later changes in the repository apply at once).
#
#   bash .ci/install-profiles.sh            # link into ~/.config/snakemake/
#   bash .ci/install-profiles.sh --remove   # remove the links this script made
#
# An existing profile of the same name that is not a link to this repository is left alone
# (the script stops with an error saying so); use `--profile profiles/slurm` in that case.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${XDG_CONFIG_HOME:-$HOME/.config}/snakemake
mode=${1:-install}

case $mode in
install | --remove) ;;
*)
    echo "usage: $0 [--remove]" >&2
    exit 2
    ;;
esac

mkdir -p "$dest"
status=0
for name in slurm local; do
    src=$repo/profiles/$name
    link=$dest/$name
    if [[ $mode == --remove ]]; then
        if [[ -L $link && $(readlink "$link") == "$src" ]]; then
            rm "$link"
            echo "removed $link"
        fi
        continue
    fi
    if [[ ! -f $src/config.yaml ]]; then
        echo "error: $src/config.yaml is missing; run this script from a complete checkout." >&2
        exit 1
    fi
    if [[ -L $link ]]; then
        if [[ $(readlink "$link") == "$src" ]]; then
            echo "$link -> $src (already linked)"
            continue
        fi
        if [[ ! -e $link ]]; then
            # A dangling link, e.g. to a checkout that was moved: point it here.
            ln -sfn "$src" "$link"
            echo "$link -> $src (replaced a dangling link)"
            continue
        fi
    fi
    if [[ -e $link || -L $link ]]; then
        echo "error: $link already exists and is not this repository's profile; leaving it alone." \
            "Use 'snakemake --profile $src' instead, or move $link away and run this again." >&2
        status=1
        continue
    fi
    ln -s "$src" "$link"
    echo "$link -> $src"
done
exit "$status"
