// Command openloop offers a fixed rate of HTTP GETs and reports latency
// percentiles measured from the moment each request was due, not from when
// a connection became free: a closed-loop generator such as wrk waits for a
// response before it sends the next request, so a slow proxy also slows the
// load and its queueing never shows in the percentiles ("coordinated
// omission", Gil Tene). Standard library only, built in GOPATH mode from
// Debian's golang-go by bench/proxy.ts.
//
//	openloop -url http://127.0.0.1:8080 -rate 10000 -duration 5s [-connections 64] [-keys 10000] [-prefix /t]
//
// Output: one JSON object {"sent", "completed", "errors", "p50", "p99", "p999", "max"} (milliseconds).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

func main() {
	base := flag.String("url", "", "base URL of the proxy")
	rate := flag.Float64("rate", 1000, "requests per second offered")
	duration := flag.Duration("duration", 5*time.Second, "how long to offer the rate")
	connections := flag.Int("connections", 64, "most connections open at once")
	keys := flag.Int("keys", 10000, "distinct paths, sent in turn")
	prefix := flag.String("prefix", "/t", "path prefix (the backend's answer size)")
	flag.Parse()
	if *base == "" || *rate <= 0 {
		fmt.Fprintln(os.Stderr, "openloop: -url and a positive -rate are required")
		os.Exit(2)
	}

	transport := &http.Transport{
		MaxConnsPerHost:     *connections,
		MaxIdleConnsPerHost: *connections,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	paths := make([]string, *keys)
	for i := range paths {
		paths[i] = fmt.Sprintf("%s%s/users/%d", *base, *prefix, i+1)
	}

	total := int(*rate * duration.Seconds())
	latencies := make([]float64, total)
	failed := make([]bool, total)
	interval := time.Duration(float64(time.Second) / *rate)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func(i int, due time.Time) {
			defer wg.Done()
			res, err := client.Get(paths[i%len(paths)])
			if err == nil {
				_, err = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if err == nil && res.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", res.StatusCode)
				}
			}
			// From when the request was due: time spent waiting for a connection counts.
			latencies[i] = float64(time.Since(due)) / float64(time.Millisecond)
			failed[i] = err != nil
		}(i, due)
	}
	wg.Wait()

	ok := make([]float64, 0, total)
	errors := 0
	for i, ms := range latencies {
		if failed[i] {
			errors++
		} else {
			ok = append(ok, ms)
		}
	}
	sort.Float64s(ok)
	at := func(q float64) float64 {
		if len(ok) == 0 {
			return 0
		}
		return ok[min(len(ok)-1, int(q*float64(len(ok))))]
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"sent": total, "completed": len(ok), "errors": errors,
		"p50": at(0.50), "p99": at(0.99), "p999": at(0.999), "max": at(1),
	})
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}
