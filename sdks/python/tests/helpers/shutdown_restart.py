"""syros.shutdown() stops the core runtime; a new client afterwards gets a fresh one.

usage: shutdown_restart.py ADDRESS
"""

import sys

import syros
from syros import _syros

address = sys.argv[1]
client = syros.Client([address])
client.cache.set("shutdown-probe", b"1")
syros.shutdown()
assert not _syros.runtime_running()
try:
    client.cache.get("shutdown-probe")
    print("old client still answered after shutdown")
except syros.SyrosError as err:
    print("old client after shutdown:", type(err).__name__)
fresh = syros.Client([address])
assert fresh.cache.get("shutdown-probe") == b"1"
assert _syros.runtime_running()
print("ok")
