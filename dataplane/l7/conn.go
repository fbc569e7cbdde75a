package l7

import "sync"

// bufPool holds copy buffers for response bodies, so that proxying does not allocate one per response.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
