// Command ringvectors writes consistent-hash ring test vectors (JSON, to
// stdout) computed by Go's own github.com/golang/groupcache/consistenthash,
// used exactly as groupcache.HTTPPool uses it:
//
//	m := consistenthash.New(replicas, nil) // nil => crc32.ChecksumIEEE
//	m.Add(peers...)                        // in the given order
//	owner := m.Get(key)
//
// Output schema:
//
//	{
//	  "generator": "<description>",
//	  "cases": [
//	    {
//	      "name": "<short case name>",
//	      "replicas": N,
//	      "peers": ["http://...", ...],          // Add order
//	      "owners": [[key, peerIndex], ...],     // peerIndex: 0-based index into "peers"
//	      "duplicatePoint": {                    // only in duplicate-point cases
//	        "hash": H,                           // the shared crc32 point value
//	        "pointInputs": [s1, s2],             // crc32(s1) == crc32(s2) == H
//	        "winner": "http://...",              // peer added last = owner of H
//	        "targetKeys": [...]                  // keys (also in owners) decided by H
//	      }
//	    }
//	  ]
//	}
//
// Regenerate (offline, GOPATH mode) from this folder:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=/tmp/gocache go build -o /tmp/ringvectors . &&
//	  /tmp/ringvectors > ../../fixtures/ring-vectors.json
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/golang/groupcache/consistenthash"
)

var specialKeys = []string{
	"", " ", "a b", "a+b", "a/b", "/lead", "100%", "q?x=1&y=2",
	"Привет", "😀", "日本語", "tab\tkey",
}

// standardKeys returns the 2000 deterministic keys followed by the special keys.
func standardKeys() []string {
	keys := make([]string, 0, 2000+len(specialKeys))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
	for i := 0; i < 2000; i++ {
		switch {
		case i < 1000: // key-0 .. key-999
			keys = append(keys, "key-"+strconv.Itoa(i))
		case i < 1400: // bare decimal numbers, spread out
			keys = append(keys, strconv.Itoa((i-1000)*7919))
		case i < 1900: // user:0 .. user:499
			keys = append(keys, "user:"+strconv.Itoa(i-1400))
		default: // 100 keys of exactly 300 ASCII chars
			n := i - 1900
			var b strings.Builder
			b.WriteString("long-" + strconv.Itoa(n) + "-")
			for j := 0; b.Len() < 300; j++ {
				b.WriteByte(alphabet[(j*7+n)%len(alphabet)])
			}
			keys = append(keys, b.String())
		}
	}
	return append(keys, specialKeys...)
}

type dupInfo struct {
	Hash       uint32   `json:"hash"`
	PointFor   []string `json:"pointInputs"` // the two strings hashed to the same value
	Winner     string   `json:"winner"`      // peer owning the point (the one added last)
	TargetKeys []string `json:"targetKeys"`  // keys whose owner is decided by that point
}

type ringCase struct {
	name     string
	replicas int
	peers    []string
	keys     []string
	dup      *dupInfo
}

func crc(s string) uint32 { return crc32.ChecksumIEEE([]byte(s)) }

// findDuplicate searches peer URLs "http://dup-<n>:8080" for two distinct
// peers that share a ring point (birthday search over 2^32). Returns ok=false
// if nothing is found within the time budget.
func findDuplicate(replicas int, budget time.Duration) (p, q string, i, j int, h uint32, ok bool) {
	type owner struct {
		peer int
		rep  int
	}
	seen := make(map[uint32]owner)
	deadline := time.Now().Add(budget)
	for n := 0; time.Now().Before(deadline); n++ {
		peer := "http://dup-" + strconv.Itoa(n) + ":8080"
		for r := 0; r < replicas; r++ {
			hv := crc(strconv.Itoa(r) + peer)
			if o, found := seen[hv]; found && o.peer != n {
				return "http://dup-" + strconv.Itoa(o.peer) + ":8080", peer, o.rep, r, hv, true
			}
			seen[hv] = owner{n, r}
		}
	}
	return "", "", 0, 0, 0, false
}

// keysDecidedBy returns up to n keys "dup-target-<k>" whose ring lookup lands
// on the point value h (i.e. crc(key) in (previous point, h], with wrap-around).
func keysDecidedBy(points []uint32, h uint32, n int) []string {
	sort.Slice(points, func(a, b int) bool { return points[a] < points[b] })
	var out []string
	for k := 0; len(out) < n && k < 50_000_000; k++ {
		key := "dup-target-" + strconv.Itoa(k)
		kh := crc(key)
		idx := sort.Search(len(points), func(x int) bool { return points[x] >= kh })
		if idx == len(points) {
			idx = 0
		}
		if points[idx] == h {
			out = append(out, key)
		}
	}
	return out
}

func main() {
	std := standardKeys()
	var cases []ringCase

	// (a) 3 local peers, 50 replicas.
	cases = append(cases, ringCase{name: "3-peers-50-replicas", replicas: 50,
		peers: []string{"http://127.0.0.1:8001", "http://127.0.0.1:8002", "http://127.0.0.1:8003"}, keys: std})

	// (b) 8 peers, 50 replicas.
	var b []string
	for i := 1; i <= 8; i++ {
		b = append(b, "http://10.0.0."+strconv.Itoa(i)+":3000")
	}
	cases = append(cases, ringCase{name: "8-peers-50-replicas", replicas: 50, peers: b, keys: std})

	// (c) 5 peers, 3 replicas: few points, so gaps and wrap-around matter.
	cases = append(cases, ringCase{name: "5-peers-3-replicas", replicas: 3,
		peers: []string{"http://node-a:80", "http://node-b:80", "http://node-c:80", "http://node-d:80", "http://node-e:80"}, keys: std})

	// (d) 64 peers, 50 replicas.
	var d []string
	for i := 1; i <= 64; i++ {
		d = append(d, "http://10.1.0."+strconv.Itoa(i)+":8080")
	}
	cases = append(cases, ringCase{name: "64-peers-50-replicas", replicas: 50, peers: d, keys: std})

	// (e) duplicate point: two peers sharing one hash value; the peer added
	// last owns it. Emitted in both Add orders.
	dupNote := "duplicate-point cases (e) skipped: no collision found within budget"
	if p, q, i, j, h, ok := findDuplicate(50, 30*time.Second); ok {
		var pts []uint32
		for r := 0; r < 50; r++ {
			pts = append(pts, crc(strconv.Itoa(r)+p), crc(strconv.Itoa(r)+q))
		}
		inputs := []string{strconv.Itoa(i) + p, strconv.Itoa(j) + q}
		// The colliding point inputs hash exactly to the duplicated point.
		targets := append(append([]string{}, inputs...), keysDecidedBy(pts, h, 8)...)
		for _, order := range [][]string{{p, q}, {q, p}} {
			keys := append(append([]string{}, targets...), std...)
			cases = append(cases, ringCase{
				name:     "duplicate-point-last-added-wins-" + strings.TrimPrefix(order[1], "http://"),
				replicas: 50, peers: order, keys: keys,
				dup: &dupInfo{Hash: h, PointFor: inputs, Winner: order[1], TargetKeys: targets},
			})
		}
		dupNote = fmt.Sprintf("duplicate-point cases (e): crc32(%q) == crc32(%q) == %d; the peer added last owns that point", inputs[0], inputs[1], h)
	}

	generator := "ringvectors (test/interop/ringvectors/main.go), " + runtime.Version() +
		", github.com/golang/groupcache/consistenthash (Debian golang-github-golang-groupcache-dev) used as HTTPPool does: " +
		"consistenthash.New(replicas, nil) [crc32 IEEE], Add(peers...) in the listed order, Get(key). " +
		"owners is an array of [key, peerIndex] pairs, peerIndex being a 0-based index into peers. " +
		"Keys per case: key-0..key-999, 400 decimal numbers, user:0..user:499, 100 keys of 300 ASCII chars, 12 special keys " +
		"(empty, space, +, /, %, ?, &, Cyrillic, emoji, CJK, tab), then for each peer the point inputs \"0\"+peer and \"<replicas-1>\"+peer " +
		"(key hash == a ring point). " + dupNote

	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	js := func(v interface{}) string {
		var sb strings.Builder
		enc := json.NewEncoder(&sb)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			panic(err)
		}
		return strings.TrimSuffix(sb.String(), "\n")
	}
	fmt.Fprintf(w, "{\n  \"generator\": %s,\n  \"cases\": [\n", js(generator))
	for ci, c := range cases {
		// Boundary keys: the exact input strings of ring points, so the key's
		// hash equals a point (checks ">=" rather than ">" in the search).
		c.keys = append([]string{}, c.keys...)
		for _, p := range c.peers {
			c.keys = append(c.keys, "0"+p, strconv.Itoa(c.replicas-1)+p)
		}
		m := consistenthash.New(c.replicas, nil)
		m.Add(c.peers...)
		index := make(map[string]int, len(c.peers))
		for i, p := range c.peers {
			index[p] = i
		}
		fmt.Fprintf(w, "    {\n      \"name\": %s,\n      \"replicas\": %d,\n      \"peers\": %s,\n", js(c.name), c.replicas, js(c.peers))
		if c.dup != nil {
			fmt.Fprintf(w, "      \"duplicatePoint\": %s,\n", js(c.dup))
		}
		if c.dup != nil {
			for _, k := range c.dup.TargetKeys {
				if got := m.Get(k); got != c.dup.Winner {
					panic("duplicate-point self-check failed for " + k + ": " + got)
				}
			}
		}
		fmt.Fprintf(w, "      \"owners\": [\n")
		for ki, k := range c.keys {
			owner := m.Get(k)
			idx, ok := index[owner]
			if !ok {
				panic("owner not in peers: " + owner)
			}
			sep := ","
			if ki == len(c.keys)-1 {
				sep = ""
			}
			fmt.Fprintf(w, "        [%s, %d]%s\n", js(k), idx, sep)
		}
		sep := ","
		if ci == len(cases)-1 {
			sep = ""
		}
		fmt.Fprintf(w, "      ]\n    }%s\n", sep)
	}
	fmt.Fprintf(w, "  ]\n}\n")
}
