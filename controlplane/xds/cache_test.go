package xds

import (
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

func mustCluster(t *testing.T, name, content string) *discovery.Resource {
	t.Helper()
	r, err := Marshal(name, &cluster.Cluster{Name: name, AltStatName: content})
	if err != nil {
		t.Fatalf("Marshal() = %v", err)
	}
	return r
}

func TestCacheClearByDependency(t *testing.T) {
	svcA := ConfigKey{"Service", "default", "a"}
	svcB := ConfigKey{"Service", "default", "b"}
	dr := ConfigKey{"DestinationRule", "default", "a"}
	tests := []struct {
		name  string
		clear []ConfigKey
		want  []string // keys left
	}{
		{"a service drops what depends on it", []ConfigKey{svcA}, []string{"b"}},
		{"a shared dependency drops both", []ConfigKey{dr}, []string{"b"}},
		{"an unrelated config drops nothing", []ConfigKey{{"Service", "other", "a"}}, []string{"a", "a+b", "b"}},
		{"both services drop all", []ConfigKey{svcA, svcB}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCache(WithAssertions(nil))
			tok := c.Token()
			c.Add("a", []ConfigKey{svcA, dr}, tok, mustCluster(t, "a", "1"))
			c.Add("b", []ConfigKey{svcB}, tok, mustCluster(t, "b", "1"))
			c.Add("a+b", []ConfigKey{svcA, svcB, dr}, tok, mustCluster(t, "ab", "1"))
			set := map[ConfigKey]struct{}{}
			for _, k := range tt.clear {
				set[k] = struct{}{}
			}
			c.Clear(set)
			var got []string
			for _, k := range []string{"a", "a+b", "b"} {
				if _, ok := c.Get(k); ok {
					got = append(got, k)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("left %v, want %v", got, tt.want)
			}
			if c.Len() != len(tt.want) {
				t.Errorf("Len() = %d, want %d", c.Len(), len(tt.want))
			}
		})
	}
}

// TestCacheDropsStaleWrites: a value built before its input was invalidated must not be stored.
func TestCacheDropsStaleWrites(t *testing.T) {
	svc := ConfigKey{"Service", "default", "a"}
	c := NewCache()
	before := c.Token()
	c.Clear(map[ConfigKey]struct{}{svc: {}}) // the change lands while "a" is being built
	c.Add("a", []ConfigKey{svc}, before, mustCluster(t, "a", "old"))
	if _, ok := c.Get("a"); ok {
		t.Error("a value built from invalidated input was stored")
	}
	c.Add("other", []ConfigKey{{"Service", "default", "b"}}, before, mustCluster(t, "b", "1"))
	if _, ok := c.Get("other"); !ok {
		t.Error("a value whose inputs did not change was dropped")
	}
	c.Add("a", []ConfigKey{svc}, c.Token(), mustCluster(t, "a", "new"))
	if _, ok := c.Get("a"); !ok {
		t.Error("a value built after the change was dropped")
	}
	before = c.Token()
	c.ClearAll()
	c.Add("b", nil, before, mustCluster(t, "b", "1"))
	if c.Len() != 0 {
		t.Errorf("Len() after ClearAll and a stale write = %d, want 0", c.Len())
	}
}

func TestCacheAssertionMode(t *testing.T) {
	var conflicts []error
	c := NewCache(WithAssertions(func(err error) { conflicts = append(conflicts, err) }))
	c.Add("k", nil, c.Token(), mustCluster(t, "a", "1"))
	c.Add("k", nil, c.Token(), mustCluster(t, "a", "1")) // same value: fine
	if len(conflicts) != 0 {
		t.Fatalf("conflicts after an identical write: %v", conflicts)
	}
	c.Add("k", nil, c.Token(), mustCluster(t, "a", "2"))
	if len(conflicts) != 1 || !strings.Contains(conflicts[0].Error(), `key "k" written with two different values`) {
		t.Fatalf("conflicts = %v, want one for key k", conflicts)
	}

	// Without a handler the assertion panics.
	p := NewCache(WithAssertions(nil))
	p.Add("k", nil, p.Token(), mustCluster(t, "a", "1"))
	defer func() {
		if recover() == nil {
			t.Error("conflicting write did not panic")
		}
	}()
	p.Add("k", nil, p.Token(), mustCluster(t, "a", "2"))
}

func TestCacheWithoutAssertionsOverwrites(t *testing.T) {
	c := NewCache()
	c.Add("k", nil, c.Token(), mustCluster(t, "a", "1"))
	c.Add("k", nil, c.Token(), mustCluster(t, "a", "2"))
	r, _ := c.Get("k")
	if want := mustCluster(t, "a", "2").Version; r.Version != want {
		t.Errorf("version = %s, want the second write %s", r.Version, want)
	}
}

func TestCacheWildcardDependencies(t *testing.T) {
	tests := []struct {
		name  string
		clear ConfigKey
		want  []string // keys left
	}{
		{"a new service evicts what depends on every service", ConfigKey{"Service", "ns-1", "new"}, []string{"exact", "namespace", "other-kind"}},
		{"a service in the namespace evicts the namespace wildcard", ConfigKey{"Service", "ns-0", "new"}, []string{"exact", "other-kind"}},
		{"the exact key evicts all three", ConfigKey{"Service", "ns-0", "a"}, []string{"other-kind"}},
		{"another kind evicts only its own", ConfigKey{"Pod", "ns-0", "p"}, []string{"all-services", "exact", "namespace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCache(WithAssertions(nil))
			tok := c.Token()
			all := []*discovery.Resource{mustCluster(t, "a", "1"), mustCluster(t, "b", "1")}
			c.AddAll("all-services", []ConfigKey{{Kind: "Service"}}, tok, all)
			c.AddAll("namespace", []ConfigKey{{Kind: "Service", Namespace: "ns-0"}}, tok, nil)
			c.Add("exact", []ConfigKey{{"Service", "ns-0", "a"}}, tok, mustCluster(t, "a", "1"))
			c.Add("other-kind", []ConfigKey{{Kind: "Pod"}}, tok, mustCluster(t, "p", "1"))
			c.Clear(map[ConfigKey]struct{}{tt.clear: {}})
			var got []string
			for _, k := range []string{"all-services", "exact", "namespace", "other-kind"} {
				if _, ok := c.GetAll(k); ok {
					got = append(got, k)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("left %v, want %v", got, tt.want)
			}
			// A value built before the clear from "every service" is stale too.
			c.AddAll("all-services", []ConfigKey{{Kind: "Service"}}, tok, all)
			if _, ok := c.GetAll("all-services"); ok && tt.clear.Kind == "Service" {
				t.Error("a stale write through a wildcard dependency was stored")
			}
		})
	}
}

// TestCacheStaleWriteIsNotAConflict: a late write built from invalidated inputs is dropped before the
// assertion looks at it (it races with newer generations, it does not reveal a missing input).
func TestCacheStaleWriteIsNotAConflict(t *testing.T) {
	svc := ConfigKey{"Service", "default", "a"}
	c := NewCache(WithAssertions(func(err error) { t.Error(err) }))
	old := c.Token()
	c.Clear(map[ConfigKey]struct{}{svc: {}})
	c.AddAll("k", []ConfigKey{svc}, c.Token(), []*discovery.Resource{mustCluster(t, "a", "new")})
	c.AddAll("k", []ConfigKey{svc}, old, []*discovery.Resource{mustCluster(t, "a", "old")})
	if got, _ := c.GetAll("k"); len(got) != 1 || got[0].Version != mustCluster(t, "a", "new").Version {
		t.Errorf("GetAll() = %v, want the new value kept", got)
	}
}
