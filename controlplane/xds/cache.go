package xds

import (
	"bytes"
	"fmt"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// Cache holds encoded resources so that proxies sharing an input share the encoding. A key must be built
// from every input of the generator that produced the value (for proxy-independent parts: the names and
// versions of the configs used, never the proxy); each entry declares the configs it depends on, and a
// change to one of them evicts exactly the entries that declared it. An entry is one resource (Add) or a
// list of them (AddAll), such as every cluster of one part of a proxy's config.
//
// A dependency may be a wildcard: a ConfigKey with an empty Name stands for every config of its Kind in
// its Namespace, and one with an empty Namespace and Name for every config of its Kind. Generators use
// them for inputs that are "all of a kind" (every Service a sidecar can reach), where a new object must
// evict the entry too.
//
// Generation races with invalidation: a value built from inputs that were invalidated while it was being
// built must not be stored. Take a token before reading inputs (the server puts one in
// PushRequest.CacheToken) and pass it to Add, which drops the value if a dependency was cleared since.
type Cache struct {
	mu           sync.Mutex
	entries      map[string]cacheEntry
	byDep        map[ConfigKey]map[string]struct{}
	epoch        uint64
	clearedAt    map[ConfigKey]uint64
	clearedAllAt uint64
	hits, misses uint64

	assert     bool
	onConflict func(error)
}

type cacheEntry struct {
	res  []*discovery.Resource
	deps []ConfigKey
}

// CacheToken marks when generation started, for Cache.Add.
type CacheToken uint64

// CacheOption configures a Cache.
type CacheOption func(*Cache)

// WithAssertions turns on the test-only assertion mode: writing a key that is present with a different
// value calls onConflict (or panics when onConflict is nil). A conflict means a key is missing an input.
func WithAssertions(onConflict func(error)) CacheOption {
	return func(c *Cache) { c.assert, c.onConflict = true, onConflict }
}

// NewCache returns an empty cache.
func NewCache(opts ...CacheOption) *Cache {
	c := &Cache{entries: map[string]cacheEntry{}, byDep: map[ConfigKey]map[string]struct{}{}, clearedAt: map[ConfigKey]uint64{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Token returns the token to pass to Add for values whose inputs are read from now on.
func (c *Cache) Token() CacheToken {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheToken(c.epoch)
}

// Get returns the value stored under key with Add.
func (c *Cache) Get(key string) (*discovery.Resource, bool) {
	res, ok := c.GetAll(key)
	if !ok || len(res) != 1 {
		return nil, false
	}
	return res[0], true
}

// GetAll returns the list stored under key with AddAll. It is shared: callers must not modify it.
func (c *Cache) GetAll(key string) ([]*discovery.Resource, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if ok {
		c.hits++
	} else {
		c.misses++
	}
	return e.res, ok
}

// Add stores res under key, to be evicted when any of deps changes. It is a no-op when one of deps (or
// everything) was cleared after token was taken.
func (c *Cache) Add(key string, deps []ConfigKey, token CacheToken, res *discovery.Resource) {
	c.AddAll(key, deps, token, []*discovery.Resource{res})
}

// AddAll is Add for a list of resources (possibly empty), stored and returned as one value.
func (c *Cache) AddAll(key string, deps []ConfigKey, token CacheToken, res []*discovery.Resource) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := uint64(token)
	if c.clearedAllAt > t {
		return
	}
	for _, d := range deps {
		if c.clearedAt[d] > t {
			return // built from an input that changed since: stale, not a conflict
		}
	}
	if old, ok := c.entries[key]; ok && c.assert && !sameResources(old.res, res) {
		err := fmt.Errorf("xds cache: key %q written with two different values (%s then %s): the key is missing an input", key, versions(old.res), versions(res))
		if c.onConflict == nil {
			panic(err)
		}
		c.onConflict(err)
	}
	if old, ok := c.entries[key]; ok {
		c.unindex(key, old.deps)
	}
	c.entries[key] = cacheEntry{res: res, deps: deps}
	for _, d := range deps {
		set := c.byDep[d]
		if set == nil {
			set = map[string]struct{}{}
			c.byDep[d] = set
		}
		set[key] = struct{}{}
	}
}

func sameResources(a, b []*discovery.Resource) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameResource(a[i], b[i]) {
			return false
		}
	}
	return true
}

// versions describes a value in a conflict message.
func versions(res []*discovery.Resource) string {
	if len(res) == 1 {
		return res[0].GetVersion()
	}
	return fmt.Sprintf("%d resources", len(res))
}

func sameResource(a, b *discovery.Resource) bool {
	return a.GetName() == b.GetName() && a.GetResource().GetTypeUrl() == b.GetResource().GetTypeUrl() &&
		bytes.Equal(a.GetResource().GetValue(), b.GetResource().GetValue())
}

func (c *Cache) unindex(key string, deps []ConfigKey) {
	for _, d := range deps {
		if set := c.byDep[d]; set != nil {
			delete(set, key)
			if len(set) == 0 {
				delete(c.byDep, d)
			}
		}
	}
}

// Clear evicts the entries that depend on any of configs, including through a wildcard that covers one
// of them.
func (c *Cache) Clear(configs map[ConfigKey]struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	for k := range configs {
		for _, d := range [...]ConfigKey{k, {Kind: k.Kind, Namespace: k.Namespace}, {Kind: k.Kind}} {
			c.clearedAt[d] = c.epoch
			for key := range c.byDep[d] {
				c.unindex(key, c.entries[key].deps)
				delete(c.entries, key)
			}
		}
	}
}

// ClearAll evicts everything.
func (c *Cache) ClearAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.clearedAllAt = c.epoch
	c.entries = map[string]cacheEntry{}
	c.byDep = map[ConfigKey]map[string]struct{}{}
	// Per-key clear marks older than clearedAllAt are implied by it.
	c.clearedAt = map[ConfigKey]uint64{}
}

// Len returns the number of entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Stats returns how many Gets found their key and how many did not.
func (c *Cache) Stats() (hits, misses uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}
