"""Recording: which ReLU units are on for which inputs.

:mod:`.sites` names and selects the recording sites (``rp.sites``), :mod:`.hooks` is the one
module that touches torch hooks, :mod:`.inputs` turns what users pass into model calls, and
:mod:`.model` leaves the model exactly as it was.
"""
