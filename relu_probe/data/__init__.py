"""The recorded data: its schema, how every stage reads it, and its files.

:mod:`.schema` names the layout (dims, coords, variables) and builds recordings;
:mod:`.access` checks a recording once and gives the stages their view of it
(:class:`~relu_probe.data.access.Recording`); :mod:`.netcdf` is relu_probe's one netCDF
encoding (``rp.io``); :mod:`.store` and :mod:`.monitor_store` are the bit-packed zarr stores
of recordings and training snapshots (``rp.load``); :mod:`.reduce` sums over samples chunk by
chunk.
"""
