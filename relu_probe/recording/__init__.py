"""Recording: which ReLU units are on for which inputs.

:mod:`.sites` names and selects the recording sites (``rp.sites``), :mod:`.hooks` is the one
module that touches torch hooks, :mod:`.inputs` turns what users pass into model calls,
:mod:`.model` leaves the model exactly as it was, :mod:`.sinks` is where the hooks write in
memory, and :mod:`.recorder` puts them together: :func:`record`, :class:`Recorder`,
:func:`list_sites`.
"""

from .recorder import Recorder, list_sites, record

__all__ = ["Recorder", "list_sites", "record"]
