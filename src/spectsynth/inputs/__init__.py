"""Input sources: the embedded demo cohort, a BIDS folder, or folders of DICOM series."""
