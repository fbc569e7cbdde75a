package scenarios

import (
	"fmt"
	"sort"
	"strings"
)

// Registry holds scenarios by name, in registration order.
type Registry struct {
	list   []*Scenario
	byName map[string]*Scenario
}

// NewRegistry returns a registry holding the given scenarios; it panics on a duplicate or empty name,
// which is a programming error.
func NewRegistry(list ...*Scenario) *Registry {
	r := &Registry{byName: map[string]*Scenario{}}
	for _, s := range list {
		r.Register(s)
	}
	return r
}

// Register adds a scenario.
func (r *Registry) Register(s *Scenario) {
	if s.Name == "" {
		panic("scenarios: scenario without a name")
	}
	if _, dup := r.byName[s.Name]; dup {
		panic("scenarios: duplicate scenario " + s.Name)
	}
	r.byName[s.Name] = s
	r.list = append(r.list, s)
}

// All returns every scenario in registration order.
func (r *Registry) All() []*Scenario { return append([]*Scenario(nil), r.list...) }

// Get returns the scenario called name.
func (r *Registry) Get(name string) (*Scenario, bool) {
	s, ok := r.byName[name]
	return s, ok
}

// Select returns the named scenarios in the order given, or an error naming the unknown ones.
func (r *Registry) Select(names ...string) ([]*Scenario, error) {
	var out []*Scenario
	var unknown []string
	seen := map[string]bool{}
	for _, n := range names {
		s, ok := r.byName[n]
		if !ok {
			unknown = append(unknown, n)
			continue
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, s)
		}
	}
	if len(unknown) > 0 {
		known := make([]string, 0, len(r.list))
		for _, s := range r.list {
			known = append(known, s.Name)
		}
		sort.Strings(known)
		return nil, fmt.Errorf("unknown scenario(s) %s; known: %s", strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	return out, nil
}
