"""whisperer-server as a child process of a black-box test: started on a free port, its log
collected, stopped with SIGTERM."""

import subprocess
import threading
import time


def start_server(binary, db, *options):
    """Starts `binary --db db --listen 127.0.0.1:0 options...` and waits until it listens.

    Returns (process, the API's base URL ending in '/', the list its log lines go to). Raises
    AssertionError with the log when it does not start within 15 s."""
    process = subprocess.Popen([binary, "--db", db, "--listen", "127.0.0.1:0", *options],
                               stderr=subprocess.PIPE, text=True)
    log = []
    deadline = time.time() + 15
    while time.time() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        log.append(line)
        if "listening on http://" in line:
            base = line.split("listening on ")[1].split()[0]
            threading.Thread(target=lambda: [log.append(l) for l in process.stderr], daemon=True).start()
            return process, base, log
    process.kill()
    raise AssertionError("whisperer-server did not start:\n" + "".join(log))


def stop_server(process):
    """SIGTERM, then the exit status (or "killed" when it does not exit within 20 s)."""
    process.terminate()
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        return "killed"
