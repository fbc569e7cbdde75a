package l7

import (
	"sort"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Consistent-hash load balancers: a host is found from a request's hash (see requestHash), so the same
// hash reaches the same host while the host set stays the same, and few hashes move when it changes.

// hashRing is Envoy's RING_HASH: every host gets ringSize/len(hosts) points on a ring of 64-bit hashes
// (the hash of "ADDRESS_N"); a request goes to the first point at or after its hash.
type hashRing struct {
	points []uint64
	hosts  []*Endpoint
}

func newHashRing(hosts []*Endpoint, minSize uint64) *hashRing {
	if minSize == 0 {
		minSize = 1024 // Envoy's default minimum_ring_size
	}
	perHost := (minSize + uint64(len(hosts)) - 1) / uint64(len(hosts))
	r := &hashRing{}
	type point struct {
		h  uint64
		ep *Endpoint
	}
	var ps []point
	for _, ep := range hosts {
		for i := uint64(0); i < perHost; i++ {
			ps = append(ps, point{xxhash.Sum64String(ep.Address + "_" + strconv.FormatUint(i, 10)), ep})
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].h < ps[j].h })
	for _, p := range ps {
		r.points = append(r.points, p.h)
		r.hosts = append(r.hosts, p.ep)
	}
	return r
}

func (r *hashRing) pick(h uint64) *Endpoint {
	i := sort.Search(len(r.points), func(i int) bool { return r.points[i] >= h })
	if i == len(r.points) {
		i = 0
	}
	return r.hosts[i]
}

// maglevTable is Envoy's MAGLEV: a lookup table of a prime size (65537 by default) that every host fills
// in turn along its own permutation, so each host owns an equal share and a request's hash indexes it.
type maglevTable struct {
	entries []*Endpoint
}

func newMaglevTable(hosts []*Endpoint, size uint64) *maglevTable {
	if size == 0 {
		size = 65537 // Envoy's default table_size
	}
	offset := make([]uint64, len(hosts))
	skip := make([]uint64, len(hosts))
	next := make([]uint64, len(hosts))
	for i, ep := range hosts {
		offset[i] = xxhash.Sum64String(ep.Address) % size
		skip[i] = xxhash.Sum64String(ep.Address+"_skip")%(size-1) + 1
	}
	t := &maglevTable{entries: make([]*Endpoint, size)}
	filled := uint64(0)
	for filled < size {
		for i := range hosts {
			c := (offset[i] + next[i]*skip[i]) % size
			for t.entries[c] != nil {
				next[i]++
				c = (offset[i] + next[i]*skip[i]) % size
			}
			t.entries[c] = hosts[i]
			next[i]++
			filled++
			if filled == size {
				break
			}
		}
	}
	return t
}

func (t *maglevTable) pick(h uint64) *Endpoint { return t.entries[h%uint64(len(t.entries))] }
