"""One builder for the BIDS-derivatives file names of the results folder.

:func:`bids` spells ``<root>/sub-<s>/<datatype>/sub-<s>_<key>-<value>_..._<suffix><extension>``
(like the ``bids()`` helper of hippunfold and snakebids), so that every per-subject name of the
workflow is made the same way.  The entities of BIDS's entity table are written in the table's
order (``sub``, ``ses``, ..., ``trc``, ..., ``space``, ..., ``label``, ``desc``), whatever order
they are given in; ``desc`` and the entities outside the table (``from``, ``to``, ``mode`` of the
transforms, written ``from_=`` because ``from`` is a Python keyword) come last, in the order
given, since the derivatives' transform names put ``desc`` either before ``from-`` (a scan's
transform: ``trc-H2O_desc-cbf_from-pet_to-T1w``) or after ``to-`` (``from-T1w_to-atlas_desc-striatumL``).

Any value may be a Snakemake wildcard (``subject="{subject}"``); ``None`` leaves an entity out;
:func:`entity_wildcard` marks a wildcard that holds a whole optional entity (``trc="{trc}"``
matching ``_trc-FDG`` or nothing).
This module imports nothing beyond the standard library, so that the Snakefile, the rules and
every rule's environment can use it.
"""

from __future__ import annotations

# BIDS's entity table in its order (BIDS 1.11, bidsschematools' ``rules.entities``; the unit
# test compares it with the installed schema).
BIDS_VERSION = "1.11.2"
ENTITY_ORDER = (
    "sub", "tpl", "ses", "cohort", "sample", "task", "tracksys", "acq", "nuc", "voi", "ce", "trc",
    "stain", "rec", "dir", "run", "mod", "echo", "flip", "inv", "mt", "part", "proc", "hemi",
    "space", "split", "recording", "chunk", "atlas", "seg", "scale", "res", "den", "label", "desc",
)
# Position of each entity of the table in a name; ``desc`` floats with the entities outside it.
_RANK = {k: i for i, k in enumerate(ENTITY_ORDER[:-1])}
# Keyword names that are not the entity's key.
ALIASES = {"subject": "sub", "session": "ses", "tracer": "trc", "acquisition": "acq",
           "reconstruction": "rec", "from_": "from"}


class EntityWildcard(str):
    """A Snakemake wildcard that holds a whole optional entity with its leading underscore
    (``"{trc}"`` matching ``"_trc-FDG"`` or ``""``): written as it is, glued to what precedes it."""


def entity_wildcard(wildcard: str) -> EntityWildcard:
    """Mark ``wildcard`` (e.g. ``"{desc}"``) as an optional entity for :func:`bids`."""
    if not (wildcard.startswith("{") and wildcard.endswith("}")):
        raise ValueError(f"entity_wildcard(): {wildcard!r} is not a wildcard such as '{{desc}}'")
    return EntityWildcard(wildcard)


def entity_key(name: str) -> str:
    """The entity key a keyword argument stands for (``tracer`` -> ``trc``, ``from_`` -> ``from``)."""
    return ALIASES.get(name, name)


def bids(root: str | None | bool = None, *, subject: str, suffix: str, datatype: str | None = None,
         extension: str = ".nii.gz", session: str | None = None, **entities: str | None) -> str:
    """``<root>/sub-<subject>[/ses-<session>][/<datatype>]/<name>``: one BIDS file name.

    ``entities`` are the other key-value pairs (``space="MNI152"``, ``desc="brain"``,
    ``label="GM"``, ``trc="FDG"``, ``from_="T1w"``, ``to="MNI152"``, ``mode="image"``); see the
    module's docstring for their order.  ``root`` ``None`` gives the path relative to the
    dataset's root, ``False`` the file name alone (:func:`bids_name`).  A value ``None`` leaves the entity out; an empty value or one holding
    ``_``, ``-`` or ``/`` (outside a Snakemake wildcard) is refused, since it would make a name no
    BIDS tool can parse.
    """
    given = [("sub", subject), ("ses", session)] + [(entity_key(k), v) for k, v in entities.items()]
    pairs = [(k, v) for k, v in given if v is not None]
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"bids(): an entity is given twice in {keys}")
    for key, value in pairs:
        if not isinstance(value, EntityWildcard):
            _check_label(key, str(value))
    table = sorted((p for p in pairs if p[0] in _RANK), key=lambda p: _RANK[p[0]])
    rest = [p for p in pairs if p[0] not in _RANK]
    name = ""
    for key, value in table + rest:
        name += value if isinstance(value, EntityWildcard) else f"{'_' if name else ''}{key}-{value}"
    name += f"_{suffix}{extension}"
    if root is False:
        return name
    folders = [f"sub-{subject}"] + ([f"ses-{session}"] if session is not None else [])
    folders += [datatype] if datatype else []
    return "/".join(([str(root)] if root is not None else []) + folders + [name])


def bids_name(*, subject: str, suffix: str, extension: str = ".nii.gz", session: str | None = None,
              **entities: str | None) -> str:
    """The file name alone (no folders) that :func:`bids` gives for the same arguments."""
    return bids(False, subject=subject, suffix=suffix, extension=extension, session=session,
                **entities)


def bids_label(text: str) -> str:
    """A BIDS label made from free text such as an experiment name: its letters and digits only
    (``s3_pix2pix`` -> ``s3pix2pix``)."""
    out = "".join(c for c in str(text) if c.isalnum())
    if not out:
        raise ValueError(f"{text!r} has no letters or digits to make a BIDS label from")
    return out


def _check_label(key: str, value: str) -> None:
    bare = _without_wildcards(value) if "{" in value else value
    if not value or "_" in bare or "-" in bare or "/" in bare:
        raise ValueError(f"bids(): {key}-{value!r} is not a BIDS label (letters and digits only)")


def _without_wildcards(value: str) -> str:
    out, depth = [], 0
    for c in value:
        depth += c == "{"
        if depth == 0:
            out.append(c)
        depth -= c == "}" and depth > 0
    return "".join(out)


def entities_of(entity_string: str) -> dict[str, str]:
    """``"_trc-FDG_desc-cbf"`` -> ``{"trc": "FDG", "desc": "cbf"}`` (``""`` -> ``{}``).

    For the workflow's wildcards that hold optional entities with their leading underscore.
    """
    pairs = [p for p in entity_string.split("_") if p]
    out = {}
    for p in pairs:
        key, sep, value = p.partition("-")
        if not sep or not value:
            raise ValueError(f"{entity_string!r} is not a string of BIDS entities (_key-value...)")
        out[key] = value
    return out
