package ztunnel

import (
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
)

type closeWriter interface{ CloseWrite() error }

// splice copies both ways between the downstream (source side) and upstream (destination side),
// propagating half-closes, counting bytes into c, and closes both when done. When the destination side
// finishes first, the whole exchange ends.
func splice(down, up net.Conn, c *tracked) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		copyCounting(up, down, &c.sent)
		if cw, ok := up.(closeWriter); ok {
			cw.CloseWrite()
		}
	}()
	copyCounting(down, up, &c.recv)
	if cw, ok := down.(closeWriter); ok {
		cw.CloseWrite()
	}
	up.Close()
	down.Close()
	wg.Wait()
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

// countingWriterTo is an HBONE stream: it delivers into dst itself, straight from its connection's read
// loop when dst is a socket, which saves a goroutine wake-up per chunk.
type countingWriterTo interface {
	WriteToCounting(dst io.Writer, count *atomic.Int64) (int64, error)
}

func copyCounting(dst io.Writer, src io.Reader, n *atomic.Int64) {
	if s, ok := src.(countingWriterTo); ok {
		s.WriteToCounting(dst, n)
		return
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			// Count before writing, so that a peer answering immediately never sees a stale counter.
			n.Add(int64(nr))
			nw, werr := dst.Write(buf[:nr])
			n.Add(int64(nw - nr))
			if werr != nil || nw < nr {
				return
			}
		}
		if rerr != nil {
			return
		}
	}
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ";") {
		for _, q := range strings.Split(p, ",") {
			if q = strings.TrimSpace(q); q != "" {
				out = append(out, q)
			}
		}
	}
	return out
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return strings.Trim(s[len(prefix):], `"`), true
	}
	return "", false
}
