// baton's Node.js example: a small HTTP service that upgrades cleanly under batond, with
// Node's standard library only. It does the three things a service under baton must do:
//  1. take its listening socket from batond: fd 3, when LISTEN_PID is this process;
//  2. say when it is ready: a newline written to fd 4, the pipe of `ready = fd:4`;
//  3. drain on SIGTERM: stop accepting (the next generation accepts from the same socket),
//     finish the requests in flight, answer with "Connection: close", close idle keep-alive
//     connections without a reset, run its cleanup and exit 0.
// Why not `ready = notify`: READY=1 goes in a datagram on a unix socket, and Node's standard
// library has no datagram unix sockets. Running systemd-notify would need systemd, and the
// message would come from its pid, not this one. A newline on an inherited pipe needs nothing.
// Test hooks: the cleanup appends its line to $EXAMPLE_CLEANUP_FILE too; EXAMPLE_IGNORE_TERM=1
// ignores SIGTERM, so that batond has to SIGKILL the process and its cleanup never runs.
'use strict';

const fs = require('fs');
const http = require('http');
const net = require('net');

const READY_FD = 4; // baton.conf: ready = fd:4, the descriptor after the one socket
const IDLE_WAIT_MS = 1000; // when draining, how long an idle connection may take to send a request
const generation = process.env.BATON_GENERATION || '?';
let draining = false;

// batond passes the sockets at fds 3, 4, ... and LISTEN_PID says which process they are for.
if (process.env.LISTEN_PID !== String(process.pid) || !(Number(process.env.LISTEN_FDS) >= 1)) {
  console.error('example: no socket in LISTEN_FDS: run me under batond');
  process.exit(1);
}

const server = http.createServer((req, res) => {
  const ok = req.method === 'GET' && req.url === '/';
  const body = ok ? `hello from pid ${process.pid} gen ${generation}\n` : 'Not Found\n';
  const headers = { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) };
  if (draining) {
    headers.Connection = 'close'; // its next request goes to the next generation
  }
  res.writeHead(ok ? 200 : 404, headers);
  res.end(body);
});
// A connection quiet for its timeout ends with our FIN, not a reset, and is closed when the
// client has not closed its side a timeout later.
server.on('timeout', (socket) => {
  if (socket.writableEnded) {
    socket.destroy();
  } else {
    socket.end();
    socket.setTimeout(IDLE_WAIT_MS);
  }
});

// The HTTP server does not listen itself: since Node 19 its close() destroys the idle keep-alive
// connections at once, and the next request of one may already be on its way. This listener
// accepts, hands each connection to it, and stops accepting with no more than that.
const connections = new Set();
const listener = net.createServer((socket) => {
  connections.add(socket);
  socket.on('close', () => connections.delete(socket));
  server.emit('connection', socket);
});

listener.listen({ fd: 3 }, () => {
  fs.writeSync(READY_FD, '\n');
  fs.closeSync(READY_FD);
});

process.on('SIGTERM', () => {
  if (process.env.EXAMPLE_IGNORE_TERM === '1') {
    return; // the test hook: only SIGKILL stops this process
  }
  draining = true;
  // This closes the socket in this process only: batond keeps it open, and the connections in
  // its queue wait there for the next generation. The callback runs once every connection closed.
  listener.close(cleanup);
  for (const socket of connections) {
    socket.setTimeout(IDLE_WAIT_MS);
  }
});

// A real service would flush its buffers or close its database here; this one leaves a trace.
// Then nothing is left to wait for, and Node exits with status 0.
function cleanup() {
  const line = `example: pid ${process.pid} gen ${generation}: drained, cleanup done\n`;
  process.stderr.write(line);
  if (process.env.EXAMPLE_CLEANUP_FILE) {
    fs.appendFileSync(process.env.EXAMPLE_CLEANUP_FILE, line);
  }
}
