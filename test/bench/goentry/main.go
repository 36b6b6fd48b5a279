// Command goentry measures what Go's groupcache holds in memory per cached
// entry, for bench B10: one local group (no peers) sized for about -n
// entries of -size-byte values takes 3n distinct keys through Group.Get, as
// a Go node would, so the cache is full and evicting, as in B10's other
// rows. It prints one JSON line: the heap growth after runtime.GC() per
// entry held, and what groupcache counts per entry (key + value bytes).
//
//	goentry -n 100000 -size 100
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/golang/groupcache"
)

func heap() uint64 {
	var m runtime.MemStats
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func main() {
	n := flag.Int("n", 100000, "entries")
	size := flag.Int("size", 100, "value bytes")
	flag.Parse()
	value := make([]byte, *size)
	// Keys are key:100000 and up, ten bytes each, as in B10's other rows.
	g := groupcache.NewGroup("entries", int64(*n*(10+*size)), groupcache.GetterFunc(func(_ context.Context, key string, dest groupcache.Sink) error {
		return dest.SetBytes(value)
	}))
	var sink []byte
	before := heap()
	for i := 0; i < 3**n; i++ {
		if err := g.Get(context.Background(), fmt.Sprintf("key:%d", 100000+i), groupcache.AllocatingByteSliceSink(&sink)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	sink = nil
	after := heap()
	stats := g.CacheStats(groupcache.MainCache)
	out, _ := json.Marshal(map[string]interface{}{
		"goVersion":       runtime.Version(),
		"items":           stats.Items,
		"countedPerEntry": float64(stats.Bytes) / float64(stats.Items),
		"heapPerEntry":    float64(after-before) / float64(stats.Items),
	})
	fmt.Println(string(out))
	runtime.KeepAlive(g)
}
