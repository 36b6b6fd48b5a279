// Command gonode is a real Go groupcache node (github.com/golang/groupcache,
// HTTPPool with default options) used by the interop tests.
//
//	gonode -addr 127.0.0.1:PORT -self http://127.0.0.1:PORT \
//	       -peers http://127.0.0.1:A,http://127.0.0.1:B -group interop -cache-bytes 67108864
//
// Once the listener is bound it prints exactly one line to stdout:
//
//	LISTENING http://<bound host:port>
//
// Everything else (warnings, errors) goes to stderr. SIGTERM/SIGINT exit 0.
//
// The pool is the handler for every path under /_groupcache/ (no ServeMux, so
// no path cleaning). Extra endpoints: /get?key=K, /loads, /stats, /owner?key=K,
// and POST /owners with a JSON array of keys, answered by a JSON array of
// their owners (one request for thousands of keys).
//
// With -exit-on-eof it also exits when stdin reaches EOF, so that a test
// runner that dies without a chance to stop it leaves no node behind.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang/groupcache"
	"github.com/golang/groupcache/consistenthash"
)

const basePath = "/_groupcache/" // HTTPPool's default
const replicas = 50              // HTTPPool's default

type loadCounter struct {
	mu     sync.Mutex
	total  int64
	perKey map[string]int64
}

func (c *loadCounter) inc(key string) {
	c.mu.Lock()
	c.total++
	c.perKey[key]++
	c.mu.Unlock()
}

func (c *loadCounter) snapshot() map[string]interface{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	per := make(map[string]int64, len(c.perKey))
	for k, v := range c.perKey {
		per[k] = v
	}
	return map[string]interface{}{"total": c.total, "perKey": per}
}

func writeJSON(w http.ResponseWriter, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// queryKey returns the "key" query parameter; present-but-empty is the valid
// empty key, absent is an error.
func queryKey(r *http.Request) (string, bool) {
	vals, ok := r.URL.Query()["key"]
	if !ok || len(vals) == 0 {
		return "", false
	}
	return vals[0], true
}

func cacheStatsJSON(s groupcache.CacheStats) map[string]int64 {
	return map[string]int64{
		"Bytes":     s.Bytes,
		"Items":     s.Items,
		"Gets":      s.Gets,
		"Hits":      s.Hits,
		"Evictions": s.Evictions,
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (port 0 = pick a free port)")
	self := flag.String("self", "", "this node's base URL as it appears in -peers (default: http://<bound address>)")
	peersFlag := flag.String("peers", "", "comma-separated peer base URLs, order preserved (default: just -self)")
	groupName := flag.String("group", "interop", "group name")
	cacheBytes := flag.Int64("cache-bytes", 64<<20, "group cacheBytes (main + hot)")
	exitOnEOF := flag.Bool("exit-on-eof", false, "exit when stdin reaches EOF (the parent is gone)")
	flag.Parse()

	if *exitOnEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		}()
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gonode: listen:", err)
		os.Exit(1)
	}
	bound := "http://" + ln.Addr().String()
	if *self == "" {
		*self = bound
	} else if *self != bound {
		fmt.Fprintf(os.Stderr, "gonode: warning: -self %s differs from bound address %s\n", *self, bound)
	}

	var peers []string
	for _, p := range strings.Split(*peersFlag, ",") {
		if p = strings.TrimSpace(p); p != "" {
			peers = append(peers, p)
		}
	}
	if len(peers) == 0 {
		peers = []string{*self}
	}

	pool := groupcache.NewHTTPPoolOpts(*self, &groupcache.HTTPPoolOptions{})
	pool.Set(peers...)

	// HTTPPool does not expose its ring; build an identical one for /owner.
	ring := consistenthash.New(replicas, nil)
	ring.Add(peers...)

	loads := &loadCounter{perKey: make(map[string]int64)}
	group := groupcache.NewGroup(*groupName, *cacheBytes, groupcache.GetterFunc(
		func(ctx context.Context, key string, dest groupcache.Sink) error {
			loads.inc(key)
			if strings.HasPrefix(key, "slow:") {
				time.Sleep(200 * time.Millisecond)
			}
			if strings.HasPrefix(key, "fail:") {
				return errors.New("go loader failed for " + key)
			}
			return dest.SetBytes([]byte("go:" + key))
		}))

	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		switch {
		case strings.HasPrefix(path, basePath):
			pool.ServeHTTP(w, r)
		case path == "/loads":
			writeJSON(w, loads.snapshot())
		case path == "/stats":
			st := &group.Stats
			writeJSON(w, map[string]interface{}{
				"group": group.Name(),
				"stats": map[string]int64{
					"Gets":           st.Gets.Get(),
					"CacheHits":      st.CacheHits.Get(),
					"PeerLoads":      st.PeerLoads.Get(),
					"PeerErrors":     st.PeerErrors.Get(),
					"Loads":          st.Loads.Get(),
					"LoadsDeduped":   st.LoadsDeduped.Get(),
					"LocalLoads":     st.LocalLoads.Get(),
					"LocalLoadErrs":  st.LocalLoadErrs.Get(),
					"ServerRequests": st.ServerRequests.Get(),
				},
				"mainCache": cacheStatsJSON(group.CacheStats(groupcache.MainCache)),
				"hotCache":  cacheStatsJSON(group.CacheStats(groupcache.HotCache)),
			})
		case path == "/get":
			key, ok := queryKey(r)
			if !ok {
				http.Error(w, "missing key parameter", http.StatusBadRequest)
				return
			}
			var b []byte
			if err := group.Get(r.Context(), key, groupcache.AllocatingByteSliceSink(&b)); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(b)
		case path == "/owner":
			key, ok := queryKey(r)
			if !ok {
				http.Error(w, "missing key parameter", http.StatusBadRequest)
				return
			}
			owner := ring.Get(key)
			if owner == "" { // empty ring: HTTPPool loads locally
				owner = *self
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprint(w, owner)
		case path == "/owners":
			var keys []string
			if err := json.NewDecoder(r.Body).Decode(&keys); err != nil {
				http.Error(w, "expected a JSON array of keys: "+err.Error(), http.StatusBadRequest)
				return
			}
			owners := make([]string, len(keys))
			for i, key := range keys {
				owners[i] = ring.Get(key)
			}
			writeJSON(w, owners)
		default:
			http.NotFound(w, r)
		}
	})

	srv := &http.Server{Handler: root}
	done := make(chan struct{})
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		close(done)
	}()

	fmt.Fprintln(os.Stdout, "LISTENING "+bound)
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "gonode: serve:", err)
		os.Exit(1)
	}
	<-done
}
