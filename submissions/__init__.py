"""The reference submissions, installed as ``algoperf.reference_submissions`` (package data) so
that `algoperf demo` runs the submissions of the installation it belongs to. Each folder is loaded
by path (``algoperf.submission``), never imported from here."""
