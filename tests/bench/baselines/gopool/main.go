// gopool: the Go baseline of the benchmark suite. It runs a text batch the way Barista does
// (one job per non-empty line, the 1-based line number as its id) through the classic Go worker
// pool: a buffered jobs channel, a fixed number of goroutines ranging over it, a results
// channel closed by a sync.WaitGroup, and one writer. It writes the same result lines as
// Barista's results.jsonl:
//
//	{"id":"17","status":"ok","attempts":1,"ms":0.012,"output":"17"}
//
// Modes:
//
//	-mode echo    the output is the payload (Barista's echo plugin)
//	-mode fetch   GET the payload's URL; the output is {"status":S,"bytes":N} (http_fetch)
//
// Usage: gopool -mode echo|fetch -workers N -queue N -in FILE -out FILE
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

type job struct {
	id      int
	payload string
}

type result struct {
	id     int
	ok     bool
	ms     float64
	output string // the output when ok, the error otherwise
}

type processor func(payload string) (output string, ok bool)

func echo(payload string) (string, bool) { return payload, true }

func fetcher(workers int) processor {
	// One connection kept per worker, as each Barista worker keeps its own curl handle:
	// net/http's default of 2 idle connections per host would reconnect for most requests.
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns:        workers,
		MaxIdleConnsPerHost: workers,
	}}
	return func(url string) (string, bool) {
		resp, err := client.Get(url)
		if err != nil {
			return err.Error(), false
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err.Error(), false
		}
		if resp.StatusCode >= 400 {
			return "HTTP " + strconv.Itoa(resp.StatusCode), false
		}
		return `{"status":` + strconv.Itoa(resp.StatusCode) + `,"bytes":` + strconv.FormatInt(n, 10) + `}`, true
	}
}

// appendJSONString appends s quoted and escaped exactly as Barista does: `"` `\` and control
// characters escaped, invalid UTF-8 replaced by U+FFFD, everything else as is.
func appendJSONString(out []byte, s string) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		if c >= 0x80 {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n <= 1 {
				out = append(out, "\uFFFD"...)
				i++
			} else {
				out = append(out, s[i:i+n]...)
				i += n
			}
			continue
		}
		switch c {
		case '"':
			out = append(out, '\\', '"')
		case '\\':
			out = append(out, '\\', '\\')
		case '\n':
			out = append(out, '\\', 'n')
		case '\r':
			out = append(out, '\\', 'r')
		case '\t':
			out = append(out, '\\', 't')
		case '\b':
			out = append(out, '\\', 'b')
		case '\f':
			out = append(out, '\\', 'f')
		default:
			out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
	}
	return append(out, '"')
}

func appendResult(out []byte, r result) []byte {
	out = append(out, `{"id":"`...)
	out = strconv.AppendInt(out, int64(r.id), 10)
	if r.ok {
		out = append(out, `","status":"ok","attempts":1,"ms":`...)
	} else {
		out = append(out, `","status":"failed","attempts":1,"ms":`...)
	}
	out = strconv.AppendFloat(out, r.ms, 'f', 3, 64)
	if r.ok {
		if r.output != "" {
			out = append(out, `,"output":`...)
			out = appendJSONString(out, r.output)
		}
	} else {
		out = append(out, `,"error":`...)
		out = appendJSONString(out, r.output)
	}
	return append(out, '}', '\n')
}

func main() {
	mode := flag.String("mode", "echo", "echo or fetch")
	workers := flag.Int("workers", 2, "number of worker goroutines")
	queue := flag.Int("queue", 1024, "capacity of the jobs channel")
	in := flag.String("in", "", "the batch file (one payload per line)")
	outPath := flag.String("out", "", "where the result lines go")
	flag.Parse()

	var process processor
	switch *mode {
	case "echo":
		process = echo
	case "fetch":
		process = fetcher(*workers)
	default:
		fmt.Fprintf(os.Stderr, "gopool: unknown mode %q\n", *mode)
		os.Exit(64)
	}
	input, err := os.Open(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gopool:", err)
		os.Exit(1)
	}
	defer input.Close()
	output, err := os.Create(*outPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gopool:", err)
		os.Exit(1)
	}

	jobs := make(chan job, *queue)
	results := make(chan result, *queue)
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				start := time.Now()
				out, ok := process(j.payload)
				ms := float64(time.Since(start).Nanoseconds()) / 1e6
				results <- result{id: j.id, ok: ok, ms: ms, output: out}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	readErr := make(chan error, 1)
	go func() {
		defer close(jobs)
		scanner := bufio.NewScanner(input)
		scanner.Buffer(make([]byte, 64*1024), 1<<20+2)
		line := 0
		for scanner.Scan() {
			line++
			text := scanner.Text()
			if n := len(text); n > 0 && text[n-1] == '\r' {
				text = text[:n-1]
			}
			if text == "" {
				continue
			}
			jobs <- job{id: line, payload: text}
		}
		readErr <- scanner.Err()
	}()

	// The one writer.
	writer := bufio.NewWriterSize(output, 1<<20)
	var buf []byte
	failed := 0
	for r := range results {
		if !r.ok {
			failed++
		}
		buf = appendResult(buf[:0], r)
		if _, err := writer.Write(buf); err != nil {
			fmt.Fprintln(os.Stderr, "gopool:", err)
			os.Exit(1)
		}
	}
	if err := <-readErr; err != nil {
		fmt.Fprintln(os.Stderr, "gopool: reading the batch:", err)
		os.Exit(1)
	}
	if err := writer.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "gopool:", err)
		os.Exit(1)
	}
	if err := output.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "gopool:", err)
		os.Exit(1)
	}
	if failed > 0 {
		os.Exit(1)
	}
}
