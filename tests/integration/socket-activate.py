#!/usr/bin/env python3
"""Run a server as systemd would with socket activation, for the tests.

usage: socket-activate.py OUT PATH CMD [ARGS...]

Binds a listening socket on 127.0.0.1 (any port), starts CMD with it as fd 3
and LISTEN_FDS=1 / LISTEN_PID set (its stdout and stderr to OUT), asks
http://127.0.0.1:PORT/PATH until it answers 200 (5 s at most), then stops
it with SIGTERM.  Prints the length of the body, a space and the server's
exit status; the body goes to OUT.body.
"""
import os
import signal
import socket
import subprocess
import sys
import time

out, path, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(64)
port = ls.getsockname()[1]
pid = os.fork()
if pid == 0:
    os.dup2(ls.fileno(), 3)
    os.set_inheritable(3, True)  # dup2 onto itself keeps CLOEXEC
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.execv(cmd[0], cmd)
ls.close()
body = b""
for _ in range(50):
    p = subprocess.run(["curl", "-sf", "--max-time", "5", "http://127.0.0.1:%d/%s" % (port, path)],
                       capture_output=True)
    if p.returncode == 0:
        body = p.stdout
        break
    time.sleep(0.1)
with open(out + ".body", "wb") as f:
    f.write(body)
os.kill(pid, signal.SIGTERM)
_, st = os.waitpid(pid, 0)
print(len(body), os.waitstatus_to_exitcode(st))
