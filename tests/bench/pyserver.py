#!/usr/bin/env python3
"""The Python HTTP server of the peers benchmark (peers.py): one process, one thread, the
standard library's selectors, HTTP/1.1 with keep-alive.

It serves on the socket it is passed: fd 3 when LISTEN_FDS is set (batond), the first socket
of SERVER_STARTER_PORT (start_server, or prefork), else one it binds itself with --listen
HOST:PORT (under supervisord). It sends READY=1 to NOTIFY_SOCKET when there is one. On SIGTERM
it drains: it stops accepting (the connections still queued wait for the next generation,
where the socket is shared), answers each connection's next request with "Connection: close",
gives an idle one a second to send it, closes every connection without a reset (its FIN first,
then it reads to the client's) and exits 0.
"""

import os
import selectors
import signal
import socket
import sys
import time

IDLE_WAIT = 1.0  # when draining, how long an idle connection may take to send a request
LINGER = 1.0  # after our FIN, how long the client may take to close
HEAD_MAX = 8192

generation = os.environ.get("BATON_GENERATION") or os.environ.get("SERVER_STARTER_GENERATION", "-")
body = ("gen=%s pid=%d\n" % (generation, os.getpid())).encode()


def response(close):
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
            b"Connection: %s\r\n\r\n%s" % (len(body), b"close" if close else b"keep-alive", body))


RESPONSE = {False: response(False), True: response(True)}


def listening_socket():
    """The socket passed by the supervisor, or the one --listen binds."""
    if os.environ.get("LISTEN_FDS"):
        pid = os.environ.get("LISTEN_PID")
        if pid and pid != str(os.getpid()):
            sys.exit("pyserver: LISTEN_PID %s is not this process" % pid)
        fd = 3
    elif os.environ.get("SERVER_STARTER_PORT"):
        fd = int(os.environ["SERVER_STARTER_PORT"].split(";")[0].rsplit("=", 1)[1])
    elif sys.argv[1:2] == ["--listen"] and len(sys.argv) == 3:
        host, port = sys.argv[2].rsplit(":", 1)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(1024)
        sock.setblocking(False)
        return sock
    else:
        sys.exit("usage: pyserver.py [--listen HOST:PORT], or a socket in LISTEN_FDS or "
                 "SERVER_STARTER_PORT")
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)  # shared: accept must not wait when another process was first
    return sock


def notify(message):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(message, path)


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.inbuf = b""
        self.out = b""
        self.closing = False  # the last answer is in out: then our FIN
        self.lingering = False  # our FIN is sent: reading to the client's
        self.deadline = None


class Server:
    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.listener = listening_socket()
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")
        self.wake_r, wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        wake_w.setblocking(False)
        signal.set_wakeup_fd(wake_w.fileno())
        signal.signal(signal.SIGTERM, lambda *_: None)
        signal.signal(signal.SIGINT, lambda *_: None)
        self.wake_w = wake_w
        self.sel.register(self.wake_r, selectors.EVENT_READ, "signal")
        self.conns = set()
        self.draining = False

    def accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ECONNABORTED and the like: that connection only
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = Conn(sock)
            self.conns.add(c)
            self.sel.register(sock, selectors.EVENT_READ, c)

    def read(self, c):
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data or c.lingering:
            if not data:
                self.close(c)
            return
        c.inbuf += data
        self.answer(c)

    def answer(self, c):
        """Answers every whole request in c.inbuf."""
        while not c.closing:
            end = c.inbuf.find(b"\r\n\r\n")
            if end < 0:
                if len(c.inbuf) > HEAD_MAX:
                    self.close(c)
                    return
                break
            head = c.inbuf[:end].lower()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.startswith(b"content-length:"):
                    length = int(line[15:])
            if len(c.inbuf) < end + 4 + length:
                break
            c.inbuf = c.inbuf[end + 4 + length:]
            close = (self.draining or b"connection: close" in head or
                     head.split(b"\r\n", 1)[0].endswith(b"http/1.0"))
            c.out += RESPONSE[close]
            c.closing = close
        c.deadline = None
        self.write(c)

    def write(self, c):
        if c.out:
            try:
                n = c.sock.send(c.out)
                c.out = c.out[n:]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.close(c)
                return
        if c.out:
            self.sel.modify(c.sock, selectors.EVENT_WRITE, c)
            return
        self.sel.modify(c.sock, selectors.EVENT_READ, c)
        if c.closing:
            self.linger(c)
        elif self.draining and not c.inbuf:
            c.deadline = time.monotonic() + IDLE_WAIT

    def linger(self, c):
        """Closing with input unread would reset: our FIN first, then the client's."""
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(c)
            return
        c.lingering = True
        c.deadline = time.monotonic() + LINGER

    def close(self, c):
        self.sel.unregister(c.sock)
        c.sock.close()
        self.conns.discard(c)

    def drain(self):
        self.draining = True
        self.sel.unregister(self.listener)
        self.listener.close()
        now = time.monotonic()
        for c in self.conns:
            if not c.inbuf and not c.out and not c.closing:
                c.deadline = now + IDLE_WAIT

    def expire(self):
        now = time.monotonic()
        for c in [c for c in self.conns if c.deadline is not None and c.deadline <= now]:
            if c.lingering:
                self.close(c)
            elif not c.inbuf and not c.out:
                c.closing = True
                self.linger(c)
            else:
                self.close(c)  # a request begun and not finished in the second it had

    def timeout(self):
        deadlines = [c.deadline for c in self.conns if c.deadline is not None]
        return max(0, min(deadlines) - time.monotonic()) if deadlines else None

    def run(self):
        notify(b"READY=1")
        while not self.draining or self.conns:
            for key, events in self.sel.select(self.timeout() if self.draining else None):
                what = key.data
                if what == "listen":
                    self.accept()
                elif what == "signal":
                    if self.wake_r.recv(64) and not self.draining:
                        self.drain()
                elif events & selectors.EVENT_WRITE:
                    self.write(what)
                else:
                    self.read(what)
            if self.draining:
                self.expire()


if __name__ == "__main__":
    Server().run()
