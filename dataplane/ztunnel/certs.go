package ztunnel

import (
	"context"
	"sort"
	"sync"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshlab/meshlab/identity/svidsource"
)

// CertProvider hands out the SVID source of an identity. ztunnel holds one per identity of the pods on
// its node and presents the source pod's identity on outbound tunnels (as Istio's ztunnel does, by
// impersonating its pods' service accounts).
type CertProvider interface {
	Source(ctx context.Context, id spiffeid.ID) (x509svid.Source, error)
}

// Certs is a CertProvider that fetches and rotates one svidsource.Source per identity through an Issuer.
type Certs struct {
	issuer svidsource.Issuer
	opts   []svidsource.Option

	mu      sync.Mutex
	sources map[spiffeid.ID]*svidsource.Source
}

// NewCerts returns a provider signing through issuer; opts apply to every source (e.g. WithTTL).
func NewCerts(issuer svidsource.Issuer, opts ...svidsource.Option) *Certs {
	return &Certs{issuer: issuer, opts: opts, sources: map[spiffeid.ID]*svidsource.Source{}}
}

// Source returns the rotating source for id, fetching the first SVID on first use.
func (c *Certs) Source(ctx context.Context, id spiffeid.ID) (x509svid.Source, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.sources[id]; ok {
		return s, nil
	}
	s, err := svidsource.New(ctx, c.issuer, id, c.opts...)
	if err != nil {
		return nil, err
	}
	c.sources[id] = s
	return s, nil
}

// Certificates lists the current SVID of every identity, sorted by ID (for `ztunnel-config certificates`).
func (c *Certs) Certificates() []*x509svid.SVID {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*x509svid.SVID
	for _, s := range c.sources {
		if svid, err := s.GetX509SVID(); err == nil {
			out = append(out, svid)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID.String() < out[j].ID.String() })
	return out
}

// Close stops every rotation.
func (c *Certs) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, s := range c.sources {
		s.Close()
		delete(c.sources, id)
	}
	return nil
}
