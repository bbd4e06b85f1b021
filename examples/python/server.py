#!/usr/bin/env python3
"""baton's Python example: a small HTTP service that upgrades cleanly under
batond, with the standard library only. It does the three things a service
under baton must do:
 1. take its listening socket from batond: fd 3, when LISTEN_PID is this process;
 2. say when it is ready: READY=1 in a datagram to the socket in NOTIFY_SOCKET;
 3. drain on SIGTERM: stop accepting (the next generation accepts from the same
    socket), finish the requests in flight, answer with "Connection: close",
    close idle keep-alive connections without a reset, run its cleanup, exit 0.
With HEALTH_DIR set (baton-checked.conf) it also answers "ok" on a UNIX socket of
its own, HEALTH_DIR/PID.sock, and `server.py --check` is the check that asks the
process $BATON_PID there.
Test hooks: the cleanup appends its line to $EXAMPLE_CLEANUP_FILE too;
EXAMPLE_IGNORE_TERM=1 ignores SIGTERM, so that batond has to SIGKILL the process
and its cleanup never runs.
"""

import contextlib
import http.server
import os
import select
import signal
import socket
import sys
import threading

IDLE_WAIT = 1.0  # when draining, how long an idle connection may take to send a request
CLIENT_TIMEOUT = 2  # to send a request once begun, and to close once answered

generation = os.environ.get("BATON_GENERATION", "?")
draining = False
# Readable once draining: it wakes the connections that wait for a request.
drain_read, drain_write = os.pipe()


def take_listening_socket():
    """batond passes the sockets at fds 3, 4, ... and LISTEN_PID says which process they are for."""
    pid, fds = os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS", "")
    if pid != str(os.getpid()) or not fds.isdigit() or int(fds) < 1:
        sys.exit("example: no socket in LISTEN_FDS: run me under batond")
    sock = socket.socket(fileno=3)
    # Shared with batond and the other processes: accept must not wait when another process
    # took the connection first.
    sock.setblocking(False)
    return sock


def notify(message):
    """Sends one datagram to $NOTIFY_SOCKET: a path, or an abstract address when it starts
    with '@'."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(message.encode(), path)
    except OSError as e:
        print("example: NOTIFY_SOCKET: %s" % e, file=sys.stderr)


def readable(fds, timeout=None):
    """The fds of those given that have input, or an error, within timeout seconds."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return poller.poll(None if timeout is None else timeout * 1000)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = CLIENT_TIMEOUT
    # Unbuffered, so that poll() on the socket tells whether the next request has begun.
    rbufsize = 0

    def handle(self):
        self.close_connection = False
        while not self.close_connection and self.request_begins():
            self.handle_one_request()
        # Our side first, so that the client reads the whole answer and then the end, and the
        # socket once the client has closed too: closing with its data unread would reset it.
        try:
            self.connection.shutdown(socket.SHUT_WR)
            while self.connection.recv(4096):
                pass
        except OSError:
            pass

    def request_begins(self):
        """Waits for the next request; once draining, for IDLE_WAIT at most."""
        fd = self.connection.fileno()
        return fd in dict(readable([fd, drain_read])) or bool(readable([fd], IDLE_WAIT))

    def do_GET(self):
        if self.path != "/":
            self.send_error(404)
            return
        body = ("hello from pid %d gen %s\n" % (os.getpid(), generation)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if draining:
            self.send_header("Connection", "close")  # its next request goes to the next generation
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code="-", size="-"):
        pass  # errors only


def health_path(pid):
    return os.path.join(os.environ["HEALTH_DIR"], "%d.sock" % pid)


def answer_health(sock):
    """Says "ok" to each connection; a real service would say it only when it can serve."""
    while True:
        conn, _ = sock.accept()
        with conn:
            conn.sendall(b"ok\n")


def serve_health():
    """HEALTH_DIR/PID.sock: a socket of this process's own, for its check (the shared socket
    reaches whichever process accepts first)."""
    path = health_path(os.getpid())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by a killed process of the same pid
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.listen()
    threading.Thread(target=answer_health, args=(sock,), daemon=True).start()
    return path


def check():
    """`server.py --check`: exits 0 if the process $BATON_PID answers "ok", else says why."""
    path = health_path(int(os.environ["BATON_PID"]))
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(path)
            answer = s.recv(16)
    except OSError as e:
        sys.exit("%s: %s" % (path, e.strerror or e))
    sys.exit(None if answer == b"ok\n" else "%s answered %r" % (path, answer))


def cleanup():
    """A real service would flush its buffers or close its database here; this one leaves
    a trace."""
    line = "example: pid %d gen %s: drained, cleanup done\n" % (os.getpid(), generation)
    sys.stderr.write(line)
    if os.environ.get("EXAMPLE_CLEANUP_FILE"):
        with open(os.environ["EXAMPLE_CLEANUP_FILE"], "a") as f:
            f.write(line)


def main():
    global draining
    # Blocked before any thread starts, so that every thread inherits the mask and SIGTERM waits
    # for sigwait() below, between two statements of this thread.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    # A server around batond's socket, which must never be bound: the socket it made goes.
    server = http.server.ThreadingHTTPServer(("", 0), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = take_listening_socket()
    server.daemon_threads = False  # so that server_close() waits for every connection
    threading.Thread(target=server.serve_forever).start()
    health = serve_health() if os.environ.get("HEALTH_DIR") else None
    notify("READY=1")
    signal.sigwait({signal.SIGTERM})
    while os.environ.get("EXAMPLE_IGNORE_TERM") == "1":  # the test hook: only SIGKILL stops it
        signal.sigwait({signal.SIGTERM})
    draining = True
    if health:  # stopping: it is checked no more
        with contextlib.suppress(FileNotFoundError):
            os.unlink(health)
    os.write(drain_write, b"\n")
    server.shutdown()  # stop accepting: the connections still queued wait for the next generation
    server.server_close()  # closes the socket in this process only; waits for the connections
    cleanup()


if __name__ == "__main__":
    check() if sys.argv[1:] == ["--check"] else main()
