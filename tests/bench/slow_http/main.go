// slow_http: the web site of the scrape benchmark. It listens on a free loopback port
// (127.0.0.1:0), prints that port as its first stdout line, and answers every request after
// -delay (10ms by default) with 200 and a small body. It stops on SIGTERM, SIGINT or when its
// standard input is closed, so that it never outlives the benchmark script.
//
// Usage: slow_http [-delay 10ms]
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

var body = []byte("barista bench ok\n")

func main() {
	delay := flag.Duration("delay", 10*time.Millisecond, "how long each request waits before its answer")
	flag.Parse()

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "slow_http:", err)
		os.Exit(1)
	}
	fmt.Println(listener.Addr().(*net.TCPAddr).Port)

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(*delay)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})
	server := &http.Server{Handler: handler}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop <- syscall.SIGTERM
	}()
	go func() {
		<-stop
		server.Close()
	}()
	if err := server.Serve(listener); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "slow_http:", err)
		os.Exit(1)
	}
}
