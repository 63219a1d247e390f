"""One of several processes incrementing a shared file counter under a Syros lock.

usage: counter_worker.py ADDRESS KEY COUNTER_FILE N

Each increment reads the file, pauses, and writes it back: without mutual exclusion, increments
get lost. Prints the fencing token of every lease it held.
"""

import sys
import time

import syros

address, key, path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
client = syros.Client([address], call_timeout=10.0)
for _ in range(n):
    with client.lock(key, ttl=5.0, wait=60.0) as lease:
        with open(path) as f:
            value = int(f.read())
        time.sleep(0.002)
        with open(path, "w") as f:
            f.write(str(value + 1))
        print(lease.fencing_token, flush=True)
