// baton-example-go: a small HTTP service that upgrades cleanly under batond. It does the three
// things a service under baton must do:
//  1. take its listening socket from batond: fd 3, when LISTEN_FDS is set for this pid;
//  2. say when it is ready: READY=1 in a datagram to the socket in NOTIFY_SOCKET;
//  3. drain on SIGTERM: stop accepting (the next generation accepts from the same socket),
//     answer each open connection's last request with "Connection: close", return from main
//     so that its deferred cleanup runs, and exit 0.
//
// Test hooks: the cleanup appends its line to $EXAMPLE_CLEANUP_FILE too; EXAMPLE_IGNORE_TERM=1
// ignores SIGTERM, so that batond has to SIGKILL the process and its cleanup never runs.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	clientTimeout = 5 * time.Second  // to send a request, and between two on one connection
	drainTimeout  = 20 * time.Second // under the stop_grace of baton.conf, 30s
)

var draining atomic.Bool

func main() {
	ln := takeListener()
	gen := os.Getenv("BATON_GENERATION")
	// Deferred calls run only when main returns on its own, as it does at the end of a drain;
	// never when the process is killed (SIGKILL at stop_grace), nor after os.Exit or log.Fatal.
	defer cleanup(gen)
	// Before READY=1: from now on a SIGTERM is news, no longer the end of the process.
	term, stop := termContext()
	defer stop()

	var open atomic.Int64
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hello(w, r, gen) }),
		ReadHeaderTimeout: clientTimeout,
		IdleTimeout:       clientTimeout,
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
	}
	accepting := make(chan struct{})
	go func() {
		srv.Serve(ln)
		close(accepting)
	}()
	notify("READY=1")
	<-term.Done()

	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	draining.Store(true)
	// This closes the socket in this process only: batond keeps it open, and the connections in
	// its queue wait there for the next generation.
	ln.Close()
	<-accepting
	// Not srv.Shutdown or srv.SetKeepAlivesEnabled(false) yet: both close idle keep-alive
	// connections at once, when the client may have sent its next request on one already; it
	// would read an end or a reset instead of an answer. Each connection ends instead after
	// its next answer, which says "Connection: close", or when its client is idle too long.
	for open.Load() > 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	// At once when nothing is left; past the deadline it closes what is idle, and main returns.
	srv.Shutdown(ctx)
}

// takeListener takes the socket batond passes at fd 3, when LISTEN_PID says it is for us.
func takeListener() net.Listener {
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if n < 1 || os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		fmt.Fprintln(os.Stderr, "example: no socket in LISTEN_FDS: run me under batond")
		os.Exit(1)
	}
	f := os.NewFile(3, "http")
	ln, err := net.FileListener(f) // a duplicate of fd 3, close-on-exec
	if err != nil {
		fmt.Fprintln(os.Stderr, "example: fd 3:", err)
		os.Exit(1)
	}
	f.Close()
	return ln
}

// termContext is done at the first SIGTERM; never with EXAMPLE_IGNORE_TERM=1, the test hook:
// then only SIGKILL stops the process.
func termContext() (context.Context, context.CancelFunc) {
	if os.Getenv("EXAMPLE_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
		return context.WithCancel(context.Background())
	}
	return signal.NotifyContext(context.Background(), syscall.SIGTERM)
}

// notify sends one datagram to $NOTIFY_SOCKET: a path, or an abstract address when it starts
// with '@'. Go's net package already reads a leading '@' so (syscall.SockaddrUnix turns it into
// the NUL byte of an abstract address): the name goes as it is.
func notify(message string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err == nil {
		_, err = c.Write([]byte(message))
		c.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "example: NOTIFY_SOCKET:", err)
	}
}

func hello(w http.ResponseWriter, r *http.Request, gen string) {
	if draining.Load() {
		// The client's next request goes on a new connection: the next generation's.
		w.Header().Set("Connection", "close")
	}
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "hello from pid %d gen %s\n", os.Getpid(), gen)
}

// A real service would flush its buffers or close its database here; this one leaves a trace.
func cleanup(gen string) {
	line := fmt.Sprintf("example: pid %d gen %s: drained, cleanup done\n", os.Getpid(), gen)
	os.Stderr.WriteString(line)
	if path := os.Getenv("EXAMPLE_CLEANUP_FILE"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err == nil {
			f.WriteString(line)
			f.Close()
		}
	}
}
