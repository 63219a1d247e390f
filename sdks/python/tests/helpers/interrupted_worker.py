"""Runs a worker until Ctrl-C (SIGINT) and says how it ended. usage: ADDRESS SERVICE"""

import sys

import syros

client = syros.Client([sys.argv[1]])
worker = client.worker(sys.argv[2])
worker.action("noop")(lambda task: None)
print("running", flush=True)
try:
    worker.run()
except KeyboardInterrupt:
    print("stopped by KeyboardInterrupt", flush=True)
    sys.exit(0)
print("run() returned without an interrupt", flush=True)
sys.exit(1)
